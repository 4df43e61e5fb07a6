"""The Notify path of ``notify send`` (and ``notify settle``'s resend): templates checked
first, letters left in flight reconciled by reference, then the pending letters sent a group
at a time, the intent committed before the calls and the outcome after (see the package doc).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.channels import (
    AmbiguousSend,
    ChannelError,
    DailyLimitReached,
    LetterChannel,
    LetterRejected,
    ReconcileDecision,
    Reconciliation,
    reconcile,
)
from csa_closure.channels.notify import SERVICE_WIDE_CAUSES
from csa_closure.context import Context
from csa_closure.domain.states import LetterStatus
from csa_closure.errors import ConcurrentChange
from csa_closure.letters import LettersConfig
from csa_closure.letters.kinds import LetterKind, LetterPurpose, Recipient
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox import quota
from csa_closure.stages.letters_outbox.common import (
    REASON_DUPLICATED,
    REASON_UNCONFIRMED,
    SEND_STAGE,
    TOOLKIT,
    flag_debts,
    slices,
)
from csa_closure.stages.letters_outbox.outcomes import (
    apply_statuses,
    fail_letters,
    record_dispatched,
)
from csa_closure.stages.letters_outbox.outgoing import (
    Composed,
    compose_rows,
    read_batch_letters,
    still_due,
)
from csa_closure.stages.letters_outbox.send.options import (
    IN_FLIGHT,
    OPEN_STATUSES,
    RECORD_TRIES,
    SendOptions,
    SendResult,
    Stop,
    StopCode,
)
from csa_closure.stages.letters_outbox.send.sender import Sender, composed_frame
from csa_closure.stages.letters_outbox.templates import check_templates
from csa_closure.store import failpoints
from csa_closure.store.letters import change_letters, letter_changes
from csa_closure.store.runs import Run
from csa_closure.store.schema import letters

log = logging.getLogger(__name__)


def template_stop(
    ctx: Context,
    batch_id: int,
    channel: LetterChannel,
    config: LettersConfig,
    options: SendOptions,
) -> Stop | None:
    """Each template the batch's letters still to send use, checked at Notify before the first
    letter (:mod:`.templates`); a stop naming every problem, or None. Not asked when the day's
    quota is used up: no letter goes today, and the next run checks again."""
    get_template = getattr(channel, "get_template", None)
    if get_template is None:
        return None
    with ctx.engine.connect() as conn:
        today = quota.quota_state(conn, channel.name, ctx.as_of, options.daily_limit)
        if today.remaining == 0:
            return None
        rows = conn.execute(
            select(letters.c.purpose, letters.c.recipient)
            .where(
                letters.c.batch_id == batch_id,
                letters.c.status.in_(OPEN_STATUSES),
            )
            .distinct()
        ).all()
    kinds = [LetterKind(LetterPurpose(p), Recipient(r)) for p, r in rows]
    try:
        problems = check_templates(get_template, kinds, config)
    except ChannelError as exc:
        return Stop(exc.code, f"checking the batch's templates at Notify: {exc}")
    if not problems:
        return None
    return Stop(
        StopCode.TEMPLATE_MISMATCH,
        f"batch {batch_id} refused before any letter was sent, its templates at Notify do not"
        " match the letters configuration: " + " | ".join(problems),
    )


@dataclass
class _Outcome:
    item: Composed
    kind: str  # accepted | unknown | failed
    notify_id: str | None = None
    code: str | None = None
    failure_reason: str | None = None


class NotifySender(Sender):
    """The Notify path: reconcile what an earlier run left in flight, then send the pending
    letters a group at a time, intent before the calls, outcome after (the module doc)."""

    def __init__(
        self,
        run: Run,
        batch_id: int,
        channel: LetterChannel,
        config: LettersConfig,
        options: SendOptions,
        result: SendResult,
        progress: Progress = NO_PROGRESS,
    ) -> None:
        super().__init__(run, batch_id, channel.name, config, options, result, progress)
        self.channel = channel
        self.ambiguous_in_a_row = 0

    def send(self) -> Stop | None:
        """Templates checked, what is in flight reconciled, then what is pending sent."""
        return (
            template_stop(self.ctx, self.batch_id, self.channel, self.config, self.options)
            or self.reconcile_in_flight()
            or self.send_pending()
        )

    # --- reconcile what an earlier run left in flight -----------------------------------

    def reconcile_in_flight(self) -> Stop | None:
        with self.ctx.engine.connect() as conn:
            rows = read_batch_letters(conn, self.batch_id, IN_FLIGHT)
        if rows.height == 0:
            return None
        rows = rows.sort("attempted_at", "letter_id", nulls_last=False)
        task = "notify send: reconciling"
        self.progress.start(task, rows.height)
        found: list[Reconciliation] = []
        stop = None
        for n, row in enumerate(rows.iter_rows(named=True), start=1):
            if n % 200 == 0:
                self._heartbeat()
            attempted = row["attempted_at"] or self.ctx.clock() - timedelta(days=365)
            try:
                found.append(
                    reconcile(
                        self.channel,
                        row["reference"],
                        attempted_at=attempted,
                        now=self.ctx.clock(),
                        settle=self.options.settle,
                    )
                )
            except DailyLimitReached as exc:
                stop = Stop(StopCode.DAILY_LIMIT, str(exc))
                break
            except ChannelError as exc:
                stop = Stop(exc.code, f"reconciling letters in flight: {exc}")
                break
            self.progress.advance(task)
        self.progress.finish(task)
        decided = rows.head(len(found)).with_columns(
            pl.Series("decision", [r.decision.value for r in found], dtype=pl.String),
            pl.Series(
                "new_status",
                [r.adopted.status.value if r.adopted else None for r in found],
                dtype=pl.String,
            ),
            pl.Series(
                "found_id", [r.adopted.notify_id if r.adopted else None for r in found], pl.String
            ),
            pl.Series("found", [len(r.found) for r in found], dtype=pl.Int64),
        )
        for start in range(0, decided.height, 500):
            self._record_reconciled(decided.slice(start, 500))
        for decision, n in decided.group_by("decision").len().iter_rows():
            self.result.reconciled[decision] = self.result.reconciled.get(decision, 0) + int(n)
        return stop

    def _record_reconciled(self, decided: pl.DataFrame) -> None:
        decision = pl.col("decision")
        found = decided.filter(
            decision.is_in(
                [
                    ReconcileDecision.SENT.value,
                    ReconcileDecision.DUPLICATED.value,
                    ReconcileDecision.TECHNICAL_FAILURE.value,
                ]
            )
        ).with_columns(
            pl.col("found_id").alias("notify_id"),
            pl.lit(self.ctx.clock()).alias("sent_at"),
            pl.lit(None, dtype=pl.String).alias("failure_reason"),
            pl.concat_str(
                pl.lit("RECONCILED:"), decision, pl.lit(":"), pl.col("found").cast(pl.String)
            ).alias("reason"),
        )
        resend = decided.filter(decision == ReconcileDecision.RESEND.value)
        unsure = decided.filter(decision == ReconcileDecision.CANNOT_TELL.value)
        with self.run.chunk() as conn:
            moved, flagged = apply_statuses(
                conn,
                self.run,
                found,
                source=self.source,
                config=self.config,
                set_columns=("notify_id", "sent_at", "failure_reason"),
            )
            self.result.debts_moved += moved
            self.result.debts_flagged += flagged
            self.result.debts_flagged += flag_debts(
                conn,
                self.run,
                found.filter(decision == ReconcileDecision.DUPLICATED.value).select(
                    "debt_id", pl.lit(REASON_DUPLICATED).alias("reason")
                ),
                tracing=False,
                caseworker=True,
            )
            change_letters(
                conn,
                self.run,
                letter_changes(resend, LetterStatus.PENDING.value, "RECONCILED:NOT_AT_NOTIFY"),
                source=self.source,
            )
            change_letters(
                conn,
                self.run,
                letter_changes(
                    unsure.filter(pl.col("status") == LetterStatus.SENDING.value),
                    LetterStatus.UNKNOWN.value,
                    "RECONCILED:CANNOT_TELL",
                ),
                source=self.source,
            )
            self.result.debts_flagged += flag_debts(
                conn,
                self.run,
                unsure.select("debt_id", pl.lit(REASON_UNCONFIRMED).alias("reason")),
                tracing=False,
                caseworker=True,
            )

    def _screen(self, rows: pl.DataFrame) -> list[Composed]:
        """Cancel letters no longer due, hold the unsendable; compose the rest."""
        rows = rows.with_columns(still_due(self.ctx.as_of))
        ready, refused = compose_rows(
            rows.filter(pl.col("not_due").is_null()), self.config, self.ctx.as_of
        )
        self._set_aside(rows, refused)
        return ready

    def send_pending(self, only_ids: Sequence[int] | None = None) -> Stop | None:
        task = "notify send: letters"
        total = self._pending_count()
        self.progress.start(task, total if only_ids is None else len(only_ids))
        try:
            for rows in self._pages(only_ids):
                ready = self._screen(rows)
                for group in slices(ready, self.options.intent_group):
                    stop = self._send_group(group)
                    self.progress.advance(task, len(group))
                    if stop is not None:
                        return stop
        finally:
            self.progress.finish(task)
        return None

    def _send_group(self, group: Sequence[Composed]) -> Stop | None:
        ctx, as_of, name = self.ctx, self.ctx.as_of, self.channel.name
        with self.run.chunk() as conn:
            n = quota.reserve(conn, name, as_of, len(group), self.options.daily_limit)
            if n == 0:
                return self._quota_stop(conn)
            short = n < len(group)  # the quota had room for only part of the group
            group = group[:n]
            change_letters(
                conn,
                self.run,
                letter_changes(
                    composed_frame(
                        group,
                        LetterStatus.PENDING.value,
                        as_of,
                        channel=[name] * len(group),
                        attempted_at=[ctx.clock()] * len(group),
                    ),
                    LetterStatus.SENDING.value,
                    "SEND_INTENT",
                ),
                source=TOOLKIT,
                set_columns=["letter_date", "channel", "attempted_at"],
                count_attempt=True,
            )
        done: list[_Outcome] = []
        stop: Stop | None = None
        try:
            stop = self._call_each(group, done)
        except BaseException:
            # interrupted (Ctrl-C, an unexpected error) during a call: that letter may have
            # reached Notify, so it is unknown; the rest were never tried
            if len(done) < len(group):
                done.append(_Outcome(group[len(done)], "unknown", code="INTERRUPTED"))
            self._record_group(done, group[len(done) :], None)
            raise
        self._record_group(done, group[len(done) :], stop)
        if stop is None and short:
            with self.ctx.engine.connect() as conn:
                stop = self._quota_stop(conn)
        return stop

    def _call_each(self, group: Sequence[Composed], done: list[_Outcome]) -> Stop | None:
        for item in group:
            try:
                receipt = self.channel.send(item.letter)
            except AmbiguousSend as exc:
                done.append(_Outcome(item, "unknown", code=exc.code))
                self.ambiguous_in_a_row += 1
                if self.ambiguous_in_a_row >= self.options.max_ambiguous_in_a_row:
                    return Stop(
                        StopCode.OUTAGE,
                        f"{self.ambiguous_in_a_row} sends in a row got no clear answer from"
                        f" {self.channel.name} (last: {exc.cause}): it looks like an outage."
                        " Their letters are `unknown`; run `notify send` again once the service"
                        " is back: they are looked up by reference before anything is resent",
                    )
                continue
            except LetterRejected as exc:
                if exc.stops_batch:
                    cause = SERVICE_WIDE_CAUSES.get(
                        exc.code, "fix the service or the letters configuration"
                    )
                    return Stop(
                        StopCode.BATCH_REJECTED,
                        f"{self.channel.name} refused a letter for a reason every letter would"
                        f" share ({exc.code}: {exc.reason}): {cause}; the batch is stopped"
                        " after that one letter, which stays pending. Run `notify send` again"
                        " once it is fixed",
                    )
                self.ambiguous_in_a_row = 0
                done.append(
                    _Outcome(
                        item,
                        "failed",
                        code=exc.code,
                        failure_reason=f"{exc.code}: {exc.reason}"[:200],
                    )
                )
                continue
            except DailyLimitReached as exc:
                return Stop(StopCode.DAILY_LIMIT, str(exc))
            except ChannelError as exc:
                return Stop(exc.code, str(exc))
            failpoints.reach(SEND_STAGE, "after_send")
            self.ambiguous_in_a_row = 0
            done.append(_Outcome(item, "accepted", notify_id=receipt.notify_id))
        return None

    def _record_group(
        self, done: Sequence[_Outcome], not_called: Sequence[Composed], stop: Stop | None
    ) -> None:
        """One transaction: what the channel said about each letter called, and the letters
        never called back to ``pending`` (their quota given back)."""
        as_of, now = self.ctx.as_of, self.ctx.clock()
        sending = LetterStatus.SENDING.value
        accepted = [o for o in done if o.kind == "accepted"]
        unknown = [o for o in done if o.kind == "unknown"]
        failed = [o for o in done if o.kind == "failed"]
        moved = flagged = 0
        for attempt in range(1, RECORD_TRIES + 1):
            try:
                with self.run.chunk() as conn:
                    moved = self._record_accepted(conn, accepted, as_of, now)
                    if unknown:
                        rows = composed_frame(
                            [o.item for o in unknown],
                            sending,
                            as_of,
                            failure_reason=[o.code for o in unknown],
                        )
                        change_letters(
                            conn,
                            self.run,
                            letter_changes(
                                rows, LetterStatus.UNKNOWN.value, pl.col("failure_reason")
                            ),
                            source=self.source,
                            set_columns=["failure_reason"],
                        )
                    if failed:
                        rows = composed_frame(
                            [o.item for o in failed],
                            sending,
                            as_of,
                            code=[o.code for o in failed],
                            failure_reason=[o.failure_reason for o in failed],
                        )
                        flagged = fail_letters(conn, self.run, rows, source=self.source)
                    if not_called:
                        why = f"NOT_SENT:{stop.code if stop else 'INTERRUPTED'}"
                        change_letters(
                            conn,
                            self.run,
                            letter_changes(
                                composed_frame(not_called, sending, as_of),
                                LetterStatus.PENDING.value,
                                why,
                            ),
                            source=TOOLKIT,
                        )
                        quota.release(conn, self.channel.name, as_of, len(not_called))
                    if stop is not None and stop.code == StopCode.DAILY_LIMIT:
                        quota.mark_limit_reached(conn, self.channel.name, as_of)
                break
            except ConcurrentChange:
                if attempt == RECORD_TRIES:
                    raise
        self.result.accepted += len(accepted)
        self.result.unknown += len(unknown)
        self.result.failed += len(failed)
        self.result.debts_moved += moved
        self.result.debts_flagged += flagged
        if accepted:
            log.debug("batch %s: %d letters accepted", self.batch_id, len(accepted))

    def _record_accepted(
        self, conn: Connection, accepted: Sequence[_Outcome], as_of: date, now: Any
    ) -> int:
        if not accepted:
            return 0
        rows = composed_frame(
            [o.item for o in accepted],
            LetterStatus.SENDING.value,
            as_of,
            notify_id=[o.notify_id for o in accepted],
            sent_at=[now] * len(accepted),
            failure_reason=[None] * len(accepted),
        )
        change_letters(
            conn,
            self.run,
            letter_changes(
                rows, LetterStatus.ACCEPTED.value, pl.concat_str(pl.lit("ACCEPTED:"), "notify_id")
            ),
            source=self.source,
            set_columns=["notify_id", "sent_at", "failure_reason"],
        )
        if not any(o.item.row["purpose"] == "representation" for o in accepted):
            return 0
        return record_dispatched(conn, self.run, rows, self.config)

    def _quota_stop(self, conn: Connection) -> Stop:
        state = quota.quota_state(conn, self.channel.name, self.ctx.as_of, self.options.daily_limit)
        if state.limit_reached:
            return Stop(
                StopCode.DAILY_LIMIT,
                f"{self.channel.name} said its daily limit is reached for {state.day}: the batch"
                " stops here; run `notify send` again with the next day's --as-of to resume",
            )
        return Stop(
            StopCode.QUOTA_USED,
            f"the daily quota of {state.limit:,} letters for {self.channel.name} on {state.day}"
            " is used: the batch stops here; run `notify send` again with the next day's"
            " --as-of to resume",
        )
