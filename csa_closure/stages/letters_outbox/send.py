"""``notify send``: send an approved batch through GOV.UK Notify (or the fake) or as print files.

**Claim.** The sender holds the lease ``letter_batch:<id>`` for the whole run (renewed in every
transaction it commits), so of two operators sending one batch exactly one proceeds; the other
is refused, naming the holder. A batch is sent through one channel and with one letters
configuration: once a letter of it has been tried, another channel or configuration is refused.

**Notify, one letter at a time, exactly once.** Notify has no idempotency key, so:

0. *Templates first.* Before the first letter, every template the batch's letters use is
   fetched from Notify and compared with the letters configuration
   (:mod:`.templates`): a difference refuses the batch before anything is sent.
1. *Reconcile first.* Every letter left ``sending`` or ``unknown`` by an earlier run is looked
   up by its reference (:func:`~csa_closure.channels.reconcile`) before anything new is sent:
   found -> recorded as Notify has it (never sent again); found twice -> recorded and flagged for
   a person; found only as a technical failure -> recorded as that (never resent: Notify's
   guidance; ``notify settle`` decides); not found -> back to ``pending`` (safe to send
   again); too soon to tell -> left for the next run; too old to tell (past Notify's
   retention) -> flagged for a person.
2. *Intent before the call.* Letters go in small groups (``intent_group``, default 100). For
   each group one transaction reserves the group in the day's quota and marks its letters
   ``sending`` with the attempt time and the letter date; only then is Notify called, once per
   letter. A crash at any moment leaves at most one group ``sending``, which step 1 settles by
   reference on the re-run: no letter is ever sent twice, none is lost. (One transaction per
   group instead of per letter keeps the database's share of a send small; the price is that a
   crash costs up to ``intent_group`` lookups by reference. At 100 instead of 20 the store's
   two transactions a group are shared by five times the letters: the default demo went from
   73 s to 58 s of CPU (2026-12-03); a crash then costs about two seconds of lookups at
   Notify's 3,000 requests a minute.)
3. *Outcome after the calls.* One transaction per group records what Notify said: accepted
   (with Notify's id; a final-chance letter starts its debt's response window), ``unknown``
   (timeout, dropped connection, 5xx: reconciled before any resend), ``failed`` (400: the
   reason, with no personal data; the debt flagged), and letters never called (the batch
   stopped first) back to ``pending`` with their quota given back.

The batch **stops** (status ``stopped``, with the reason; run ``notify send`` again to resume)
when the day's quota is used (checked before every group; Notify's own daily limit, 429
``TooManyRequestsError``, marks the day used up), or Notify refuses the key (403), or a
rejection says every letter would fail (the service may not send letters, a template deleted
or of the wrong type, a team key or trial mode: stopped after that one letter, with the cause
named), or Notify stays
unavailable, or ``max_ambiguous_in_a_row`` sends in a row were ambiguous (an outage). Stops that
need a person raise :class:`BatchStopped` after everything is recorded; the daily quota does
not (resume with the next day's ``--as-of``).

**Print files.** The batch's letters are marked ``sending`` (the intent), composed and written
as Notify's bulk-upload CSV per template plus ``manifest.json`` (owner-only, written once), then
marked ``sent``. A re-run after a crash finds the complete files by their manifest and only
records them; sending a sent batch again writes nothing. The letters are screened and composed
a page at a time as frames (:func:`~csa_closure.letters.compose.compose_frame`, which composes
exactly what ``prepare_letter`` does) and the files streamed page by page
(:func:`~csa_closure.channels.write_print_frames`), so a batch of any size is never in memory.

Letters are composed at send time, for their recipient only, with the date kept on the letter
from its first send intent, so a resend says exactly what the first attempt said. Before
composing, every letter is checked to be still due (:func:`.outgoing.still_due`): no longer due
-> ``cancelled``; addressed to a party who is no longer the case's parent, an address no longer
usable or a fact missing -> ``held`` and the debt flagged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from csa_closure.channels import (
    AmbiguousSend,
    ChannelError,
    DailyLimitReached,
    LetterChannel,
    LetterRejected,
    PrintBatchConflict,
    PrintFileChannel,
    ReconcileDecision,
    Reconciliation,
    reconcile,
    write_print_frames,
)
from csa_closure.channels.notify import SERVICE_WIDE_CAUSES
from csa_closure.channels.printfile import MANIFEST_NAME, PrintBatch, file_sha256
from csa_closure.channels.reconcile import SETTLE
from csa_closure.context import Context
from csa_closure.errors import ConcurrentChange, CsaClosureError, ExitCode, UsageError
from csa_closure.letters import LettersConfig
from csa_closure.letters.kinds import LetterKind, LetterPurpose, Recipient
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox import quota
from csa_closure.stages.letters_outbox.common import (
    GOVUK_NOTIFY,
    REASON_DUPLICATED,
    REASON_UNCONFIRMED,
    SEND_STAGE,
    SOURCE_FOR_CHANNEL,
    TOOLKIT,
    BatchStatus,
    batch_lease,
    batch_row,
    flag_debts,
    slices,
)
from csa_closure.stages.letters_outbox.outcomes import (
    apply_statuses,
    cancel_letters,
    fail_letters,
    hold_letters,
    record_dispatched,
)
from csa_closure.stages.letters_outbox.outgoing import (
    Composed,
    Unsendable,
    compose_frame_rows,
    compose_rows,
    letter_date_of,
    read_batch_letters,
    read_batch_outbox,
    read_for_composing,
    read_letters_by_id,
    still_due,
    unsendable_frame,
    without_address,
)
from csa_closure.stages.letters_outbox.templates import check_templates
from csa_closure.states import LetterStatus
from csa_closure.store import events, failpoints
from csa_closure.store.letters import change_letters, letter_changes
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import events as events_table
from csa_closure.store.schema import letter_batches, letters

log = logging.getLogger(__name__)

OPEN_STATUSES = (LetterStatus.PENDING.value, LetterStatus.SENDING.value, LetterStatus.UNKNOWN.value)
IN_FLIGHT = (LetterStatus.SENDING.value, LetterStatus.UNKNOWN.value)
SENDABLE_BATCH_STATUSES = (
    BatchStatus.APPROVED.value,
    BatchStatus.SENDING.value,
    BatchStatus.STOPPED.value,
    BatchStatus.SENT.value,
)
RECORD_TRIES = 3
PRINTING_EVENT = "batch.printing"  # detail: the directory the batch's files are written in


class StopCode:
    QUOTA_USED = "QUOTA_USED"  # our persisted daily quota for the channel is used
    DAILY_LIMIT = "DAILY_LIMIT"  # the channel said its daily limit is reached
    FORBIDDEN = "FORBIDDEN"
    MISCONFIGURED = "MISCONFIGURED"
    UNAVAILABLE = "UNAVAILABLE"
    OUTAGE = "OUTAGE"  # several ambiguous sends in a row
    BATCH_REJECTED = "BATCH_REJECTED"  # a 400 every letter would get
    TEMPLATE_MISMATCH = "TEMPLATE_MISMATCH"  # Notify's templates and the configuration differ
    RECONCILE_WAIT = "RECONCILE_WAIT"  # not a stop: letters wait to be reconciled


RESUME_TOMORROW = (StopCode.QUOTA_USED, StopCode.DAILY_LIMIT)


@dataclass(frozen=True)
class Stop:
    code: str
    message: str  # never personal data

    @property
    def needs_person(self) -> bool:
        return self.code not in RESUME_TOMORROW


@dataclass
class SendOptions:
    daily_limit: int | None = quota.DEFAULT_DAILY_LIMIT  # None: no daily limit (print files)
    intent_group: int = 100  # letters whose intent is committed together before their calls
    max_ambiguous_in_a_row: int = 3  # then the batch stops: an outage
    settle: timedelta = SETTLE  # how long Notify may take to show a letter it accepted
    read_size: int = 2_000  # letters read (and composed) at a time
    # print files: letters screened, marked and composed at a time (each marking one
    # transaction); the files take every chunk in turn, streamed
    print_chunk: int = 20_000

    def __post_init__(self) -> None:
        if self.intent_group < 1 or self.read_size < 1 or self.print_chunk < 1:
            raise UsageError("the intent group, read size and print chunk must be at least 1")
        if self.daily_limit is not None and self.daily_limit < 0:
            raise UsageError("the daily limit cannot be negative")


@dataclass
class PrintFiles:
    directory: str
    manifest_sha256: str
    written: bool  # False: the files were there already (a re-run)
    files: list[dict[str, Any]]


@dataclass
class SendResult:
    """What a send did. JSON keys are these names (runbooks/03-letters.md)."""

    run_id: int | None
    batch_id: int
    channel: str
    as_of: str
    batch_status: str = ""
    stop_code: str | None = None
    stop_message: str | None = None
    accepted: int = 0  # Notify accepted (this run)
    sent: int = 0  # written to print files (this run)
    unknown: int = 0  # ambiguous: reconciled by reference before any resend
    failed: int = 0  # refused by the channel (400)
    held: int = 0  # not sendable now (address, recipient changed, fact missing)
    cancelled: int = 0  # no longer due
    reconciled: dict[str, int] = field(default_factory=dict)  # decision -> letters
    debts_moved: int = 0  # final-chance letters that started a response window
    debts_flagged: int = 0
    remaining: int = 0  # letters of the batch still pending, sending or unknown
    by_status: dict[str, int] = field(default_factory=dict)  # the batch's letters now
    quota: dict[str, Any] = field(default_factory=dict)
    print_files: PrintFiles | None = None


class BatchStopped(CsaClosureError):
    """The send stopped and needs a person (the message says why and what to do); everything
    done before the stop is recorded. ``result`` has the figures."""

    exit_code = ExitCode.VERIFY_FAILED

    def __init__(self, message: str, result: SendResult) -> None:
        super().__init__(message)
        self.result = result


# --- the entry point ---------------------------------------------------------------------------


def send_batch(
    ctx: Context,
    batch_id: int,
    channel: LetterChannel | PrintFileChannel,
    config: LettersConfig,
    *,
    options: SendOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> SendResult:
    """Send approved batch ``batch_id`` through ``channel`` (see the module doc)."""
    options = options or SendOptions()
    refuse_example_config(channel.name, config)
    parameters = {
        "batch_id": batch_id,
        "channel": channel.name,
        "letters_config": config.source,
        "letters_config_sha256": config.sha256,
        "daily_limit": options.daily_limit,
        "intent_group": options.intent_group,
    }
    if isinstance(channel, PrintFileChannel):
        parameters["out_dir"] = str(Path(channel.out_dir).resolve())
    result = SendResult(None, batch_id, channel.name, ctx.as_of.isoformat())
    with stage_run(ctx, SEND_STAGE, parameters, claims=[batch_lease(batch_id)]) as run:
        result.run_id = run.run_id
        with run.chunk() as conn:
            work = _start(conn, run, batch_id, channel.name, config)
        sender = _Sender(run, batch_id, channel, config, options, result, progress)
        stop = None
        if work:
            if isinstance(channel, PrintFileChannel):
                stop = sender.print_files(channel.out_dir)
            else:
                stop = (
                    _template_stop(ctx, batch_id, channel, config, options)
                    or sender.reconcile_in_flight()
                    or sender.send_pending()
                )
        with run.chunk() as conn:
            _finish(conn, run, batch_id, stop, result, options)
        run.counts.update(_counts(result))
        if stop is not None and stop.needs_person:
            raise BatchStopped(stop.message, result)
    return result


def _template_stop(
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
                letters.c.status.in_(
                    [
                        LetterStatus.PENDING.value,
                        LetterStatus.SENDING.value,
                        LetterStatus.UNKNOWN.value,
                    ]
                ),
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


def refuse_example_config(channel: str, config: LettersConfig) -> None:
    """A live Notify send with the bundled example templates would send letters nobody wrote."""
    if channel == GOVUK_NOTIFY and config.example:
        raise UsageError(
            f"refusing a live Notify send with the example letters configuration ({config.source}):"
            " its template ids are not your service's. Point CSA_CLOSURE_LETTERS_CONFIG (or"
            " --letters-config) at the live configuration (example = false)"
        )


def _counts(result: SendResult) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "sent": result.sent,
        "unknown": result.unknown,
        "failed": result.failed,
        "held": result.held,
        "cancelled": result.cancelled,
        "reconciled": dict(result.reconciled),
        "debts_moved": result.debts_moved,
        "remaining": result.remaining,
        "stop_code": result.stop_code,
    }


def _start(conn: Connection, run: Run, batch_id: int, channel: str, config: LettersConfig) -> bool:
    """Check the batch may be sent through ``channel``; mark it ``sending``. False when
    nothing is left to do (a sent batch sent again)."""
    batch = batch_row(conn, batch_id)
    if batch.status == BatchStatus.BUILT.value:
        raise UsageError(
            f"batch {batch_id} is not approved: someone other than {batch.built_by} (who built it)"
            f" runs `csa-closure notify approve {batch_id}` first"
        )
    if batch.status not in SENDABLE_BATCH_STATUSES:
        raise UsageError(f"batch {batch_id} is {batch.status}: it cannot be sent")
    tried = conn.execute(
        select(func.count())
        .select_from(letters)
        .where(letters.c.batch_id == batch_id, letters.c.attempts > 0)
    ).scalar_one()
    if tried and batch.channel and batch.channel != channel:
        raise UsageError(
            f"batch {batch_id} is being sent through {batch.channel}: finish it with"
            f" --channel {batch.channel} (a batch never goes through two channels, so no letter"
            " can reach a parent twice)"
        )
    if tried and batch.letters_config_sha256 and batch.letters_config_sha256 != config.sha256:
        raise UsageError(
            f"batch {batch_id} was started with the letters configuration"
            f" {batch.letters_config_sha256[:12]}; this one ({config.source}) is"
            f" {config.sha256[:12]}. Send it with the configuration it was started with"
        )
    open_letters = conn.execute(
        select(func.count())
        .select_from(letters)
        .where(letters.c.batch_id == batch_id, letters.c.status.in_(OPEN_STATUSES))
    ).scalar_one()
    if not open_letters:
        return False
    conn.execute(
        update(letter_batches)
        .where(letter_batches.c.batch_id == batch_id)
        .values(
            status=BatchStatus.SENDING.value,
            channel=channel,
            letters_config_sha256=config.sha256,
            stop_reason=None,
        )
    )
    events.record(
        conn,
        run,
        "batch.sending",
        entity=f"batch:{batch_id}",
        from_state=batch.status,
        to_state=BatchStatus.SENDING.value,
        detail={"channel": channel, "open_letters": int(open_letters)},
    )
    return True


def _finish(
    conn: Connection,
    run: Run,
    batch_id: int,
    stop: Stop | None,
    result: SendResult,
    options: SendOptions,
) -> None:
    batch = batch_row(conn, batch_id)
    by_status = {
        status: int(n)
        for status, n in conn.execute(
            select(letters.c.status, func.count())
            .where(letters.c.batch_id == batch_id)
            .group_by(letters.c.status)
            .order_by(letters.c.status)
        )
    }
    remaining = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
    if stop is not None:
        status = BatchStatus.STOPPED.value
    elif remaining == 0:
        status = BatchStatus.SENT.value
    else:
        status = BatchStatus.SENDING.value
    now = run.ctx.clock()
    if batch.status != status or stop is not None:
        conn.execute(
            update(letter_batches)
            .where(letter_batches.c.batch_id == batch_id)
            .values(
                status=status,
                stop_reason=stop.message[:200] if stop else None,
                sent_at=batch.sent_at or (now if status == BatchStatus.SENT.value else None),
            )
        )
        events.record(
            conn,
            run,
            f"batch.{status}",
            entity=f"batch:{batch_id}",
            from_state=batch.status,
            to_state=status,
            detail={"stop_code": stop.code if stop else None, "remaining": remaining},
        )
    log.info(
        "batch %s is %s: %d letters still to send or reconcile%s",
        batch_id,
        status,
        remaining,
        f" (stopped: {stop.code})" if stop else "",
    )
    result.batch_status = status
    result.remaining = remaining
    result.by_status = by_status
    if stop is not None:
        result.stop_code, result.stop_message = stop.code, stop.message
    channel = batch.channel or result.channel
    limit = options.daily_limit
    state = quota.quota_state(conn, channel, run.ctx.as_of, limit)
    result.quota = {
        "channel": channel,
        "day": state.day.isoformat(),
        "sent_count": state.sent_count,
        "limit": state.limit,
        "limit_reached": state.limit_reached,
        "remaining": state.remaining,
    }


# --- sending ---------------------------------------------------------------------------------


_KEEP = (
    "letter_id",
    "reference",
    "batch_id",
    "debt_id",
    "case_ref",
    "purpose",
    "recipient",
    "status",
)


def _rows_frame(rows: pl.DataFrame, status: str, as_of: date) -> pl.DataFrame:
    """:func:`_frame` of letters as read (a frame) rather than composed one by one."""
    return rows.select(
        *_KEEP,
        pl.coalesce(pl.col("letter_date"), pl.lit(as_of, dtype=pl.Date)).alias("letter_date"),
    ).with_columns(pl.lit(status).alias("status"))


def _frame(items: Sequence[Composed], status: str, as_of: date, **extra: list[Any]) -> pl.DataFrame:
    """The letters of ``items`` (no personal data: ids, kind, dates) as a frame for recording."""
    data: dict[str, list[Any]] = {name: [c.row[name] for c in items] for name in _KEEP}
    data["status"] = [status] * len(items)
    data["letter_date"] = [letter_date_of(c.row, as_of) for c in items]
    data.update(extra)
    types: dict[str, Any] = {"letter_id": pl.Int64, "batch_id": pl.Int64, "debt_id": pl.Int64}
    instant = pl.Datetime("us", "UTC")
    types.update(letter_date=pl.Date, attempted_at=instant, sent_at=instant)
    schema = {name: types.get(name, pl.String) for name in data}
    return pl.DataFrame(data, schema=schema, strict=False)


@dataclass
class _Outcome:
    item: Composed
    kind: str  # accepted | unknown | failed
    notify_id: str | None = None
    code: str | None = None
    failure_reason: str | None = None


class _Sender:
    def __init__(
        self,
        run: Run,
        batch_id: int,
        channel: LetterChannel | PrintFileChannel,
        config: LettersConfig,
        options: SendOptions,
        result: SendResult,
        progress: Progress,
    ) -> None:
        self.run = run
        self.ctx = run.ctx
        self.batch_id = batch_id
        self.channel = channel
        self.config = config
        self.options = options
        self.result = result
        self.progress = progress
        self.source = SOURCE_FOR_CHANNEL.get(channel.name, channel.name)
        self.ambiguous_in_a_row = 0

    @property
    def notify(self) -> LetterChannel:
        assert not isinstance(self.channel, PrintFileChannel)
        return self.channel

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
                        self.notify,
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

    # --- pending letters ---------------------------------------------------------------

    def _pages(
        self, only_ids: Sequence[int] | None, size: int | None = None
    ) -> Iterator[pl.DataFrame]:
        """The pending letters, with their addresses, a page (of ``size``) at a time."""
        if only_ids is not None:
            with self.ctx.engine.connect() as conn:
                rows = read_letters_by_id(conn, only_ids, with_address=True)
            yield rows.filter(pl.col("status") == LetterStatus.PENDING.value)
            return
        after = 0
        while True:
            with self.ctx.engine.connect() as conn:
                rows = read_batch_letters(
                    conn,
                    self.batch_id,
                    [LetterStatus.PENDING.value],
                    after=after,
                    limit=size or self.options.read_size,
                    with_address=True,
                )
            if rows.height == 0:
                return
            after = int(rows["letter_id"].max())  # type: ignore[arg-type]
            yield rows

    def _screen(self, rows: pl.DataFrame) -> list[Composed]:
        """Cancel letters no longer due, hold the unsendable; compose the rest."""
        rows = rows.with_columns(still_due(self.ctx.as_of))
        ready, refused = compose_rows(
            rows.filter(pl.col("not_due").is_null()), self.config, self.ctx.as_of
        )
        self._set_aside(rows, refused)
        return ready

    def _screen_frame(self, rows: pl.DataFrame) -> pl.DataFrame:
        """:meth:`_screen`, the page at once: the letters that can go (as read, without their
        addresses; composed again when their files are written)."""
        rows = rows.with_columns(still_due(self.ctx.as_of))
        due = rows.filter(pl.col("not_due").is_null())
        composed, refused = compose_frame_rows(due, self.config, self.ctx.as_of)
        self._set_aside(rows, refused)
        ready = due.join(
            composed.select("letter_id"), on="letter_id", how="semi", maintain_order="left"
        )
        return without_address(ready)

    def _set_aside(self, rows: pl.DataFrame, refused: list[Unsendable]) -> None:
        """Cancel the letters of ``rows`` no longer due and hold the ``refused``."""
        not_due = without_address(rows.filter(pl.col("not_due").is_not_null()))
        held = pl.concat(
            [
                without_address(unsendable_frame(rows, refused)),
                not_due.filter(pl.col("not_due") == "RECIPIENT_CHANGED").with_columns(
                    pl.col("not_due").alias("held_reason"), pl.lit(False).alias("tracing")
                ),
            ],
            how="diagonal_relaxed",
        )
        cancelled = not_due.filter(pl.col("not_due") != "RECIPIENT_CHANGED")
        if held.height or cancelled.height:
            with self.run.chunk() as conn:
                cancel_letters(conn, self.run, cancelled, source=TOOLKIT)
                self.result.debts_flagged += hold_letters(conn, self.run, held, source=TOOLKIT)
            self.result.held += held.height
            self.result.cancelled += cancelled.height

    def _pending_count(self) -> int:
        with self.ctx.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(letters)
                    .where(
                        letters.c.batch_id == self.batch_id,
                        letters.c.status == LetterStatus.PENDING.value,
                    )
                ).scalar_one()
            )

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
                    _frame(
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
                receipt = self.notify.send(item.letter)
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
                        rows = _frame(
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
                        rows = _frame(
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
                                _frame(not_called, sending, as_of), LetterStatus.PENDING.value, why
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
        rows = _frame(
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

    # --- print files ---------------------------------------------------------------------

    def print_files(self, out_dir: Path) -> Stop | None:
        """Intent for every sendable letter, then the files, then ``sent``."""
        as_of, name = self.ctx.as_of, self.channel.name
        self._same_directory(out_dir)
        stop = self._print_quota()
        if stop is not None:
            return stop
        announced = False
        size = self.options.print_chunk
        # three bars: letters screened and marked, files written, letters marked sent
        marking, writing, marked = (
            "print send: screening letters",
            "print send: writing files",
            "print send: marking sent",
        )
        self.progress.start(marking, self._pending_count())
        for rows in self._pages(None, size):
            self.progress.advance(marking, rows.height)
            ready = self._screen_frame(rows)
            for start in range(0, ready.height, size):
                group = ready.slice(start, size)
                with self.run.chunk() as conn:
                    if not announced:  # where these letters' files go, with their intents
                        events.record(
                            conn,
                            self.run,
                            PRINTING_EVENT,
                            entity=f"batch:{self.batch_id}",
                            detail={"out_dir": str(Path(out_dir).resolve())},
                        )
                        announced = True
                    quota.reserve(conn, name, as_of, group.height, self.options.daily_limit)
                    change_letters(
                        conn,
                        self.run,
                        letter_changes(
                            _rows_frame(group, LetterStatus.PENDING.value, as_of).with_columns(
                                pl.lit(name).alias("channel"),
                                pl.lit(self.ctx.clock()).alias("attempted_at"),
                            ),
                            LetterStatus.SENDING.value,
                            "SEND_INTENT",
                        ),
                        source=TOOLKIT,
                        set_columns=["letter_date", "channel", "attempted_at"],
                        count_attempt=True,
                    )
        self.progress.finish(marking)
        with self.ctx.engine.connect() as conn:
            sending = read_batch_outbox(conn, self.batch_id, [LetterStatus.SENDING.value])
        if sending.height == 0:
            return None
        self.progress.start(writing, sending.height)
        batch = self._files(out_dir, sending)
        self.progress.advance(writing, sending.height)
        self.progress.finish(writing)
        failpoints.reach(SEND_STAGE, "after_write")
        self.progress.start(marked, sending.height)
        for start in range(0, sending.height, size):
            rows = sending.slice(start, size).with_columns(
                pl.lit(self.ctx.clock()).alias("sent_at")
            )
            with self.run.chunk() as conn:
                change_letters(
                    conn,
                    self.run,
                    letter_changes(rows, LetterStatus.SENT.value, "PRINT_FILE_WRITTEN"),
                    source=self.source,
                    set_columns=["sent_at"],
                )
                self.result.debts_moved += record_dispatched(conn, self.run, rows, self.config)
            self.progress.advance(marked, rows.height)
        self.progress.finish(marked)
        self.result.sent += sending.height
        self.result.print_files = PrintFiles(
            directory=str(batch.directory),
            manifest_sha256=batch.manifest_sha256,
            written=batch.written,
            files=[
                {
                    "file": f.name,
                    "template_id": f.template_id,
                    "letters": list(f.kinds),
                    "row_count": f.row_count,
                    "sha256": f.sha256,
                }
                for f in batch.files
            ],
        )
        return None

    def _same_directory(self, out_dir: Path) -> None:
        """Letters an earlier run marked for printing may already be in its files: they are
        finished in the same directory, never written a second time somewhere else."""
        with self.ctx.engine.connect() as conn:
            in_flight = conn.execute(
                select(func.count())
                .select_from(letters)
                .where(
                    letters.c.batch_id == self.batch_id,
                    letters.c.status == LetterStatus.SENDING.value,
                )
            ).scalar_one()
            # the batch's latest printing event, picked here: with ORDER BY event_id DESC
            # LIMIT 1, PostgreSQL on statistics older than a bulk load walked the whole log
            # backwards by event_id (over three minutes at eight million events)
            printing = conn.execute(
                select(events_table.c.event_id, events_table.c.detail).where(
                    events_table.c.event_type == PRINTING_EVENT,
                    events_table.c.entity == f"batch:{self.batch_id}",
                )
            ).all()
        where = max(printing, key=lambda event: int(event.event_id)).detail if printing else None
        earlier = (where or {}).get("out_dir")
        if in_flight and earlier and earlier != str(Path(out_dir).resolve()):
            raise UsageError(
                f"{in_flight:,} letters of batch {self.batch_id} were being written to"
                f" {earlier}: finish the batch with --out {earlier}, so no letter is printed"
                " twice"
            )

    def _heartbeat(self) -> None:
        """Renew the batch's lease during long work between transactions."""
        with self.run.chunk():
            pass

    def _print_quota(self) -> Stop | None:
        limit = self.options.daily_limit
        if limit is None:
            return None
        with self.ctx.engine.connect() as conn:
            pending = conn.execute(
                select(func.count())
                .select_from(letters)
                .where(
                    letters.c.batch_id == self.batch_id,
                    letters.c.status == LetterStatus.PENDING.value,
                )
            ).scalar_one()
            state = quota.quota_state(conn, self.channel.name, self.ctx.as_of, limit)
        if state.remaining is not None and pending > state.remaining:
            return Stop(
                StopCode.QUOTA_USED,
                f"batch {self.batch_id} has {pending:,} letters to print but only"
                f" {state.remaining:,} of today's {limit:,} are left for {self.channel.name}:"
                " a print batch is written whole, so nothing was written. Send it another day,"
                " or build smaller batches (`notify build --limit`)",
            )
        return None

    def _files(self, out_dir: Path, sending: pl.DataFrame) -> PrintBatch:
        existing = _complete_files(out_dir, self.batch_id, sending)
        if existing is not None:
            return existing
        try:
            return write_print_frames(
                out_dir, self.batch_id, self._composed(sending["letter_id"].to_list()), self.config
            )
        except PrintBatchConflict as exc:
            raise UsageError(
                f"{exc} (batch {self.batch_id}: an earlier run wrote part of its files and the"
                " letters now differ, e.g. addresses refreshed by a pull. The files have no"
                " manifest, so they were never complete: move the directory away, then run"
                " `notify send` again)"
            ) from None

    def _composed(self, letter_ids: list[int]) -> Iterator[pl.DataFrame]:
        """The letters again, composed page by page (the files are written as they come)."""
        for part in slices(letter_ids, self.options.print_chunk):
            self._heartbeat()
            with self.ctx.engine.connect() as conn:
                rows = read_for_composing(conn, part)
            composed, refused = compose_frame_rows(rows, self.config, self.ctx.as_of)
            if refused:
                raise UsageError(
                    f"{len(refused)} letters of batch {self.batch_id} marked for printing can no"
                    f" longer be composed ({refused[0].reason}): their parties changed during the"
                    " send. Run `notify send` again"
                )
            yield composed


def _complete_files(out_dir: Path, batch_id: int, sending: pl.DataFrame) -> PrintBatch | None:
    """The batch's files if an earlier run finished writing them (their manifest is there, every
    file matches its checksum, and they hold exactly these letters); else None."""
    from csa_closure.channels.printfile import PrintFile

    directory = Path(out_dir) / f"batch-{batch_id}"
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.exists():
        return None
    import hashlib

    data = manifest_path.read_bytes()
    manifest = json.loads(data)
    files = []
    for entry in manifest.get("files", []):
        if file_sha256(directory / entry["file"]) != entry["sha256"]:
            raise UsageError(
                f"{directory / entry['file']} does not match its manifest (SHA-256): the files of"
                f" batch {batch_id} were changed after they were written. Move the directory"
                " away and run `notify send` again"
            )
        files.append(
            PrintFile(
                name=entry["file"],
                template_id=entry["template_id"],
                kinds=tuple(entry["letters"]),
                row_count=int(entry["row_count"]),
                sha256=entry["sha256"],
                references=tuple(entry["references"]),
            )
        )
    references = {r for f in files for r in f.references}
    if references != set(sending["reference"].to_list()):
        raise UsageError(
            f"{directory} holds a complete set of files for other letters than batch"
            f" {batch_id}'s: nothing was overwritten. Move it away (or send to another --out)"
        )
    return PrintBatch(
        str(batch_id), directory, tuple(files), hashlib.sha256(data).hexdigest(), written=False
    )
