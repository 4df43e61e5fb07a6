"""``notify sync``: keep each letter's status as Notify has it, and act on what comes back.

1. **Poll.** Letters Notify accepted (``accepted``, and ``received``, which can still turn into
   a return) are looked up while Notify still holds their status: its retention period (7 days)
   from acceptance. A few hundred are asked for one by one; more are read from Notify's list of
   letters, 250 a request. Each change is recorded with its history row and event.
   An ``accepted`` letter older than the retention period can no longer be asked about: it is
   counted (``beyond_retention``), not guessed.
2. **Returned letters.** Letters come back weeks after posting, after Notify's retention: Notify
   reports them in its returned-letters report. :func:`record_returned` takes the references
   (or Notify ids) from it (``notify returned``; the fake channel's own report is read by
   ``sync`` itself).
3. **Flags.** A returned or permanently failed letter flags its debt for address tracing and a
   caseworker (``LETTER_RETURNED``, ``LETTER_PERMANENT_FAILURE``); resolve holds such a debt
   back for the caseworker instead of expiring its window.
4. **Technical failures** are sent again (Notify's guidance), through the same send protocol,
   under the batch's lease (a batch being sent right now is left for the next sync), within
   the day's quota, when the letter is still due (``outgoing.still_due``; a final-chance letter
   while its own window is open and no answer has come). The letter keeps its reference and
   its date, so it says what it said the first time.

The whole sync runs under the ``stage:notify-sync`` lease.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from csa_closure.channels import ChannelUnavailable, LetterChannel, NotificationInfo
from csa_closure.channels.status import RETENTION_DAYS
from csa_closure.context import Context
from csa_closure.errors import LeaseHeld
from csa_closure.letters import LettersConfig
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox.common import (
    SOURCE_FOR_CHANNEL,
    SYNC_LEASE,
    SYNC_STAGE,
    TOOLKIT,
    BatchStatus,
    batch_lease,
    change_letters,
    letter_changes,
    read_in,
)
from csa_closure.stages.letters_outbox.outcomes import apply_statuses
from csa_closure.stages.letters_outbox.outgoing import read_letters_by_id, still_due
from csa_closure.stages.letters_outbox.send import (
    SendOptions,
    SendResult,
    _finish,
    _Sender,
)
from csa_closure.states import LetterStatus
from csa_closure.store import events
from csa_closure.store.dialect import read_frame
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import letter_batches, letters

ONE_BY_ONE = 500  # up to this many letters are looked up by id; more are listed
RECORD_SIZE = 1_000
POLLED = (LetterStatus.ACCEPTED.value, LetterStatus.RECEIVED.value)

_SCHEMA: dict[str, pl.DataType] = {
    "letter_id": pl.Int64(),
    "reference": pl.String(),
    "batch_id": pl.Int64(),
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "purpose": pl.String(),
    "recipient": pl.String(),
    "status": pl.String(),
    "notify_id": pl.String(),
    "letter_date": pl.Date(),
}
_COLUMNS = ", ".join(_SCHEMA)


@dataclass
class SyncResult:
    """What a sync did. JSON keys are these names (runbooks/03-letters.md)."""

    run_id: int | None
    channel: str
    as_of: str
    polled: int = 0  # letters asked about
    not_found: int = 0  # Notify no longer holds them (left as they are)
    not_polled: int = 0  # not reached this time (see poll_stopped): the next sync asks
    poll_stopped: str | None = None
    beyond_retention: int = 0  # accepted letters too old to ask about
    changed: dict[str, int] = field(default_factory=dict)  # new status -> letters
    returned_from_report: int = 0
    debts_flagged: int = 0
    debts_moved: int = 0
    resent: int = 0  # technical failures sent again and accepted
    resend_deferred: int = 0  # their batch is being sent right now: next sync
    not_resent: int = 0  # technical failures no longer due
    resend_stop_code: str | None = None
    resend_stop_message: str | None = None


def sync_letters(
    ctx: Context,
    channel: LetterChannel,
    config: LettersConfig,
    *,
    returned_report: Iterable[tuple[str | None, str | None]] | None = None,
    options: SendOptions | None = None,
    retention_days: float = RETENTION_DAYS,
    progress: Progress = NO_PROGRESS,
) -> SyncResult:
    """Poll, record returns, flag, and resend technical failures (see the module doc).
    ``returned_report`` holds (notify id, reference) pairs from Notify's returned-letters
    report."""
    options = options or SendOptions()
    result = SyncResult(None, channel.name, ctx.as_of.isoformat())
    parameters = {"channel": channel.name, "letters_config_sha256": config.sha256}
    with stage_run(ctx, SYNC_STAGE, parameters, claims=[SYNC_LEASE]) as run:
        result.run_id = run.run_id
        source = SOURCE_FOR_CHANNEL.get(channel.name, channel.name)
        _poll(run, channel, config, source, retention_days, result, progress)
        if returned_report is not None:
            _returns(run, channel.name, list(returned_report), config, source, result)
        _resend(run, channel, config, options, result, progress)
        run.counts.update(
            {
                "polled": result.polled,
                "changed": dict(result.changed),
                "returned_from_report": result.returned_from_report,
                "resent": result.resent,
                "resend_deferred": result.resend_deferred,
            }
        )
    return result


# --- polling ------------------------------------------------------------------------------------


def _poll(
    run: Run,
    channel: LetterChannel,
    config: LettersConfig,
    source: str,
    retention_days: float,
    result: SyncResult,
    progress: Progress,
) -> None:
    ctx = run.ctx
    cutoff = ctx.clock() - timedelta(days=retention_days)
    columns = [letters.c[name] for name in _SCHEMA]
    with ctx.engine.connect() as conn:
        rows = read_frame(
            conn,
            select(*columns)
            .where(
                letters.c.status.in_(POLLED),
                letters.c.channel == channel.name,
                letters.c.notify_id.is_not(None),
                letters.c.sent_at >= cutoff,
            )
            .order_by(letters.c.letter_id),
            _SCHEMA,
        )
        result.beyond_retention = int(
            conn.execute(
                select(func.count())
                .select_from(letters)
                .where(
                    letters.c.status == LetterStatus.ACCEPTED.value,
                    letters.c.channel == channel.name,
                    letters.c.sent_at < cutoff,
                )
            ).scalar_one()
        )
    task = "notify sync: polling"
    progress.start(task, rows.height)
    infos, stopped = _lookup(channel, rows["notify_id"].to_list(), progress, task)
    progress.finish(task)
    result.polled = len(infos)
    result.not_polled = rows.height - len(infos)
    result.poll_stopped = stopped
    rows = rows.filter(pl.col("notify_id").is_in(list(infos)))
    found = rows.with_columns(
        pl.col("notify_id")
        .replace_strict(
            {k: v.status.value for k, v in infos.items() if v is not None},
            default=None,
            return_dtype=pl.String,
        )
        .alias("new_status"),
        pl.col("notify_id")
        .replace_strict(
            {k: v.notify_status for k, v in infos.items() if v is not None},
            default=None,
            return_dtype=pl.String,
        )
        .alias("notify_status"),
    )
    result.not_found = found.filter(pl.col("new_status").is_null()).height
    changed = found.filter(
        pl.col("new_status").is_not_null() & (pl.col("new_status") != pl.col("status"))
    ).with_columns(pl.concat_str(pl.lit("NOTIFY:"), "notify_status").alias("reason"))
    _record(run, changed, config, source, result)


def _lookup(
    channel: LetterChannel, notify_ids: list[str], progress: Progress, task: str
) -> tuple[dict[str, NotificationInfo | None], str | None]:
    """Each letter's status at Notify (None: Notify no longer holds it), and why the poll
    stopped early, if it did (the letters not reached are left for the next sync)."""
    if len(notify_ids) <= ONE_BY_ONE:
        one_by_one: dict[str, NotificationInfo | None] = {}
        for notify_id in notify_ids:
            one_by_one[notify_id] = channel.get_status(notify_id)
            progress.advance(task)
        return one_by_one, None
    iterate = getattr(channel, "iter_letters", None)
    if iterate is None:
        return channel.get_statuses(notify_ids), None
    wanted = set(notify_ids)
    infos: dict[str, NotificationInfo | None] = dict.fromkeys(notify_ids)
    try:
        for info in iterate():
            if info.notify_id in wanted:
                infos[info.notify_id] = info
                wanted.discard(info.notify_id)
                progress.advance(task)
                if not wanted:
                    break
    except ChannelUnavailable as exc:
        # Notify's list stops somewhere (a page cap): what was read is recorded, the rest
        # (older letters) is asked about again by the next sync
        for notify_id in wanted:
            del infos[notify_id]
        return infos, str(exc)
    return infos, None


def _record(
    run: Run, changed: pl.DataFrame, config: LettersConfig, source: str, result: SyncResult
) -> None:
    for start in range(0, changed.height, RECORD_SIZE):
        part = changed.slice(start, RECORD_SIZE)
        with run.chunk() as conn:
            moved, flagged = apply_statuses(conn, run, part, source=source, config=config)
        result.debts_moved += moved
        result.debts_flagged += flagged
        for status, n in part.group_by("new_status").len().iter_rows():
            result.changed[status] = result.changed.get(status, 0) + int(n)


# --- returned letters -----------------------------------------------------------------------


def _returns(
    run: Run,
    channel_name: str,
    report: list[tuple[str | None, str | None]],
    config: LettersConfig,
    source: str,
    result: SyncResult,
) -> int:
    """Letters in Notify's returned-letters report (by Notify id or our reference) that are not
    yet recorded as returned. Returns how many were recorded."""
    ids = sorted({i for i, _ in report if i})
    refs = sorted({r for _, r in report if r})
    with run.ctx.engine.connect() as conn:
        by_id = read_in(
            conn, f"SELECT {_COLUMNS} FROM letters WHERE notify_id IN ({{marks}})", ids, _SCHEMA
        )
        by_ref = read_in(
            conn, f"SELECT {_COLUMNS} FROM letters WHERE reference IN ({{marks}})", refs, _SCHEMA
        )
    rows = (
        pl.concat([by_id, by_ref])
        .unique("letter_id", keep="first")
        .sort("letter_id")
        .filter(pl.col("status").is_in([*POLLED, LetterStatus.SENT.value]))
        .with_columns(
            pl.lit(LetterStatus.RETURNED.value).alias("new_status"),
            pl.lit("RETURNED_LETTERS_REPORT").alias("reason"),
        )
    )
    _record(run, rows, config, source, result)
    result.returned_from_report += rows.height
    return rows.height


def record_returned(
    ctx: Context,
    report: Iterable[tuple[str | None, str | None]],
    config: LettersConfig,
    *,
    channel_name: str = "govuk-notify",
) -> SyncResult:
    """Record the letters of a returned-letters report (Notify ids and/or our references) as
    returned, flagging their debts. Letters already recorded as returned are left alone."""
    result = SyncResult(None, channel_name, ctx.as_of.isoformat())
    with stage_run(ctx, SYNC_STAGE, {"returned_report": True}, claims=[SYNC_LEASE]) as run:
        result.run_id = run.run_id
        _returns(run, channel_name, list(report), config, TOOLKIT, result)
        run.counts.update({"returned_from_report": result.returned_from_report})
    return result


# --- technical failures -----------------------------------------------------------------------


def _resend(
    run: Run,
    channel: LetterChannel,
    config: LettersConfig,
    options: SendOptions,
    result: SyncResult,
    progress: Progress,
) -> None:
    ctx = run.ctx
    with ctx.engine.connect() as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(letters.c.letter_id)
                .where(
                    letters.c.status == LetterStatus.TECHNICAL_FAILURE.value,
                    letters.c.channel == channel.name,
                )
                .order_by(letters.c.letter_id)
            ).scalars()
        ]
        failures = read_letters_by_id(conn, ids).with_columns(still_due(ctx.as_of))
    due = failures.filter(pl.col("not_due").is_null())
    result.not_resent = failures.height - due.height
    for (batch_id,), letters_of_batch in due.group_by(["batch_id"], maintain_order=True):
        try:
            run.claim(batch_lease(int(batch_id)))  # type: ignore[arg-type]
        except LeaseHeld:
            result.resend_deferred += letters_of_batch.height
            continue
        with run.chunk() as conn:
            change_letters(
                conn,
                run,
                letter_changes(
                    letters_of_batch, LetterStatus.PENDING.value, "RESEND_AFTER_TECHNICAL_FAILURE"
                ),
                source=TOOLKIT,
            )
            _reopen(conn, run, int(batch_id))  # type: ignore[arg-type]
        sent = SendResult(run.run_id, int(batch_id), channel.name, ctx.as_of.isoformat())  # type: ignore[arg-type]
        sender = _Sender(run, int(batch_id), channel, config, options, sent, progress)  # type: ignore[arg-type]
        stop = sender.send_pending(only_ids=letters_of_batch["letter_id"].to_list())
        with run.chunk() as conn:
            _finish(conn, run, int(batch_id), stop, sent, options)  # type: ignore[arg-type]
        result.resent += sent.accepted
        result.debts_flagged += sent.debts_flagged
        if stop is not None:
            result.resend_stop_code, result.resend_stop_message = stop.code, stop.message
            break


def _reopen(conn: Connection, run: Run, batch_id: int) -> None:
    """A sent batch with letters to send again is ``sending`` until they are."""
    status = conn.execute(
        select(letter_batches.c.status).where(letter_batches.c.batch_id == batch_id)
    ).scalar_one()
    if status == BatchStatus.SENDING.value:
        return
    conn.execute(
        update(letter_batches)
        .where(letter_batches.c.batch_id == batch_id)
        .values(status=BatchStatus.SENDING.value)
    )
    events.record(
        conn,
        run,
        "batch.sending",
        entity=f"batch:{batch_id}",
        from_state=status,
        to_state=BatchStatus.SENDING.value,
        detail={"why": "resend after technical failure"},
    )


__all__ = ["SyncResult", "record_returned", "sync_letters"]
