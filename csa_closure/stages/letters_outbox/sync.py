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
4. **Technical failures are never sent again automatically.** Notify's letter guidance for
   ``technical-failure`` is "Do not try to send the letter again": Notify may still print it.
   The letter's debt goes to a caseworker (``LETTER_TECHNICAL_FAILURE``) and sync counts the
   letters waiting (``technical_failures``). An operator settles each one with
   :func:`settle_letter` (``notify settle``): ``resend`` first asks Notify for the reference
   and records a live letter it finds instead of sending (never twice); only when Notify has
   none does it send again, through the same send protocol, under the batch's lease, within the
   day's quota, when the letter is still due (``outgoing.still_due``), with its reference and
   date, so it says what it said the first time. ``undeliverable`` cancels the letter and flags
   its debt for tracing and a caseworker (``LETTER_UNDELIVERABLE``).

The whole sync runs under the ``stage:notify-sync`` lease.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from csa_closure.channels import ChannelUnavailable, LetterChannel, NotificationInfo
from csa_closure.channels.printfile import MANIFEST_NAME, file_sha256
from csa_closure.channels.status import RETENTION_DAYS, NotifyStatus
from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.states import BatchStatus, LetterStatus
from csa_closure.errors import InputError, LeaseHeld, UsageError
from csa_closure.letters import LettersConfig
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.letters_outbox.common import (
    REASON_DUPLICATED,
    REASON_UNDELIVERABLE,
    SOURCE_FOR_CHANNEL,
    SYNC_LEASE,
    SYNC_STAGE,
    TOOLKIT,
    batch_lease,
    flag_debts,
    read_in,
)
from csa_closure.stages.letters_outbox.outcomes import apply_statuses
from csa_closure.stages.letters_outbox.outgoing import (
    LETTER_SCHEMA,
    read_letters_by_id,
    still_due,
)
from csa_closure.stages.letters_outbox.send import (
    NotifySender,
    SendOptions,
    SendResult,
    finish_batch,
    template_stop,
)
from csa_closure.store import events
from csa_closure.store.dialect import read_frame
from csa_closure.store.letters import (
    LETTER_KEY_COLUMNS,
    change_letters,
    letter_changes,
    move_batch,
    set_notify_ids,
)
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import letter_batches, letters

ONE_BY_ONE = 500  # up to this many letters are looked up by id; more are listed
RECORD_SIZE = 1_000
POLLED = (LetterStatus.ACCEPTED.value, LetterStatus.RECEIVED.value)

_SCHEMA: dict[str, pl.DataType] = {
    c: LETTER_SCHEMA[c] for c in (*LETTER_KEY_COLUMNS, "status", "notify_id", "letter_date")
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
    returned_unmatched: int = 0  # report rows that match no letter: a caseworker looks
    unmatched_notify_ids: list[str] = field(default_factory=list)  # ids only, no personal data
    debts_flagged: int = 0
    debts_moved: int = 0
    technical_failures: int = 0  # letters waiting for an operator (`notify settle`)


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
    """Poll, record returns and flag (see the module doc); technical failures are counted,
    never resent.
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
        result.technical_failures = _technical_failures(run.ctx, channel.name)
        run.counts.update(
            {
                "polled": result.polled,
                "changed": dict(result.changed),
                "returned_from_report": result.returned_from_report,
                "technical_failures": result.technical_failures,
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
    known_ids = set(by_id["notify_id"].to_list())
    known_refs = set(by_ref["reference"].to_list())
    unmatched = sorted(
        {i or f"reference:{r}" for i, r in report if i not in known_ids and r not in known_refs}
    )
    if unmatched:
        # a return we cannot tie to a letter (an uploaded file's row whose upload report was
        # never imported): recorded for a caseworker, by Notify id only
        with run.chunk() as conn:
            events.record(
                conn,
                run,
                EventType.LETTER_RETURN_UNMATCHED,
                entity=f"channel:{channel_name}",
                detail={"notify_ids": unmatched[:1000], "count": len(unmatched)},
            )
        result.returned_unmatched += len(unmatched)
        result.unmatched_notify_ids.extend(unmatched)
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


@dataclass
class UploadResult:
    """What importing Notify's upload report for one print file did. JSON keys are these."""

    run_id: int | None
    file: str
    rows: int
    recorded: int = 0  # letters given their Notify id now
    already: int = 0  # letters that had this id already


def record_upload_report(
    ctx: Context, batch_directory: Path, file_name: str, report: Iterable[tuple[int, str]]
) -> UploadResult:
    """Give the letters of print file ``file_name`` (in ``batch_directory``, checked against its
    manifest) the Notify ids of Notify's upload report for it: (row number from 1, notification
    id). A return of an uploaded letter carries no reference; its Notify id then finds it.
    Safe to re-run; a row that already has another Notify id is refused."""
    manifest = json.loads((batch_directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    entry = next((f for f in manifest.get("files", []) if f["file"] == file_name), None)
    if entry is None:
        raise InputError(f"{file_name} is not in {batch_directory / MANIFEST_NAME}")
    if file_sha256(batch_directory / file_name) != entry["sha256"]:
        raise InputError(f"{batch_directory / file_name} does not match its manifest (SHA-256)")
    references: list[str] = entry["references"]
    pairs = list(report)
    for number, notify_id in pairs:
        if not 1 <= number <= len(references):
            raise InputError(
                f"upload report row {number}: {file_name} has rows 1 to {len(references)}"
            )
        if not notify_id:
            raise InputError(f"upload report row {number}: no notification id")
    result = UploadResult(None, file_name, len(pairs))
    by_reference = {references[n - 1]: i for n, i in pairs}
    with stage_run(ctx, SYNC_STAGE, {"upload_report": file_name}, claims=[SYNC_LEASE]) as run:
        result.run_id = run.run_id
        with ctx.engine.connect() as conn:
            found = read_in(
                conn,
                "SELECT letter_id, reference, notify_id FROM letters WHERE reference IN ({marks})",
                sorted(by_reference),
                {"letter_id": pl.Int64(), "reference": pl.String(), "notify_id": pl.String()},
            )
        missing = set(by_reference) - set(found["reference"].to_list())
        if missing:
            raise InputError(f"{file_name}: {len(missing)} of its letters are not in the store")
        clash = found.filter(
            pl.col("notify_id").is_not_null()
            & (pl.col("notify_id") != pl.col("reference").replace_strict(by_reference))
        )
        if clash.height:
            raise InputError(
                f"letter {clash['reference'][0]} already has another Notify id: is this the"
                f" upload report of {file_name}?"
            )
        todo = found.filter(pl.col("notify_id").is_null())
        result.already = found.height - todo.height
        with run.chunk() as conn:
            set_notify_ids(
                conn,
                (
                    (letter_id, by_reference[reference])
                    for letter_id, reference in todo.select("letter_id", "reference").iter_rows()
                ),
            )
            events.record(
                conn,
                run,
                EventType.LETTERS_UPLOAD_REPORT,
                entity=f"file:{file_name}",
                detail={"rows": len(pairs), "recorded": todo.height, "already": result.already},
            )
        result.recorded = todo.height
        run.counts.update({"recorded": result.recorded, "already": result.already})
    return result


def references_in_print_files(print_dir: Path) -> dict[tuple[str, int], str]:
    """(print file name, row number from 1) -> the letter's reference, from every batch manifest
    under ``print_dir`` (the ``--out`` of print-file sends): how a return of an uploaded file,
    which Notify reports by spreadsheet file name and row with no reference, finds its letter."""
    found: dict[tuple[str, int], str] = {}
    for path in sorted(Path(print_dir).glob(f"batch-*/{MANIFEST_NAME}")):
        manifest = json.loads(path.read_text(encoding="utf-8"))
        for entry in manifest.get("files", []):
            for number, reference in enumerate(entry.get("references", []), start=1):
                found[(str(entry["file"]), number)] = str(reference)
    return found


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


def _technical_failures(ctx: Context, channel_name: str) -> int:
    with ctx.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(letters)
                .where(
                    letters.c.status == LetterStatus.TECHNICAL_FAILURE.value,
                    letters.c.channel == channel_name,
                )
            ).scalar_one()
        )


class SettleAction(StrEnum):
    RESEND = "resend"  # after checking with Notify
    UNDELIVERABLE = "undeliverable"


@dataclass
class SettleResult:
    """What settling one technical failure did. JSON keys are these names."""

    run_id: int | None
    reference: str
    action: str
    outcome: str  # resent | found_at_notify | undeliverable | not_resent
    status: str  # the letter's status now
    notify_id: str | None = None
    found_at_notify: int = 0  # letters Notify holds for the reference
    stop_code: str | None = None
    stop_message: str | None = None


def settle_letter(
    ctx: Context,
    channel: LetterChannel,
    config: LettersConfig,
    reference: str,
    action: SettleAction,
    *,
    options: SendOptions | None = None,
    progress: Progress = NO_PROGRESS,
) -> SettleResult:
    """An operator's decision on one ``technical-failure`` letter (see the module doc).
    Refused (``UsageError``) for a letter that is not a technical failure on ``channel``."""
    options = options or SendOptions()
    parameters = {"reference": reference, "action": action.value, "channel": channel.name}
    with stage_run(ctx, SYNC_STAGE, parameters, claims=[SYNC_LEASE]) as run:
        with ctx.engine.connect() as conn:
            found_id = conn.execute(
                select(letters.c.letter_id, letters.c.status, letters.c.channel).where(
                    letters.c.reference == reference
                )
            ).one_or_none()
        if found_id is None:
            raise UsageError(f"no letter has the reference {reference}")
        if found_id.status != LetterStatus.TECHNICAL_FAILURE.value:
            raise UsageError(
                f"letter {reference} is {found_id.status}, not technical-failure: there is"
                " nothing to settle"
            )
        if found_id.channel != channel.name:
            raise UsageError(
                f"letter {reference} was sent through {found_id.channel}: settle it with"
                f" --channel {found_id.channel}"
            )
        with ctx.engine.connect() as conn:
            row = read_letters_by_id(conn, [int(found_id.letter_id)]).with_columns(
                still_due(ctx.as_of)
            )
        result = SettleResult(
            run.run_id, reference, action.value, "", LetterStatus.TECHNICAL_FAILURE.value
        )
        if action is SettleAction.UNDELIVERABLE:
            _undeliverable(run, row)
            result.outcome, result.status = "undeliverable", LetterStatus.CANCELLED.value
        else:
            _settle_resend(run, channel, config, options, row, result, progress)
        run.counts.update({"outcome": result.outcome, "status": result.status})
    return result


def _undeliverable(run: Run, row: pl.DataFrame) -> None:
    with run.chunk() as conn:
        change_letters(
            conn,
            run,
            letter_changes(row, LetterStatus.CANCELLED.value, "SETTLED:UNDELIVERABLE").with_columns(
                pl.lit("SETTLED:UNDELIVERABLE").alias("failure_reason")
            ),
            source=TOOLKIT,
            set_columns=["failure_reason"],
        )
        flag_debts(
            conn,
            run,
            row.select("debt_id", pl.lit(REASON_UNDELIVERABLE).alias("reason")),
            tracing=True,
            caseworker=True,
        )


def _settle_resend(
    run: Run,
    channel: LetterChannel,
    config: LettersConfig,
    options: SendOptions,
    row: pl.DataFrame,
    result: SettleResult,
    progress: Progress,
) -> None:
    reference = result.reference
    found = list(channel.find_by_reference(reference))
    result.found_at_notify = len(found)
    live = [n for n in found if n.status is not NotifyStatus.TECHNICAL_FAILURE]
    if live:
        # Notify has a letter for it after all (it retried, or an earlier send went through):
        # record that one; never send a second
        adopted = min(live, key=lambda n: n.created_at or datetime.max.replace(tzinfo=UTC))
        changed = row.with_columns(
            pl.lit(adopted.status.value).alias("new_status"),
            pl.lit(adopted.notify_id).alias("notify_id"),
            pl.lit(f"SETTLED:FOUND_AT_NOTIFY:{len(found)}").alias("reason"),
        )
        source = SOURCE_FOR_CHANNEL.get(channel.name, channel.name)
        with run.chunk() as conn:
            apply_statuses(
                conn, run, changed, source=source, config=config, set_columns=("notify_id",)
            )
            if len(live) > 1:
                flag_debts(
                    conn,
                    run,
                    row.select("debt_id", pl.lit(REASON_DUPLICATED).alias("reason")),
                    tracing=False,
                    caseworker=True,
                )
        result.outcome, result.status, result.notify_id = (
            "found_at_notify",
            adopted.status.value,
            adopted.notify_id,
        )
        return
    if row["not_due"][0] is not None:
        raise UsageError(
            f"letter {reference} is no longer due ({row['not_due'][0]}): it is not sent again;"
            " settle it with --undeliverable"
        )
    batch_id = int(row["batch_id"][0])
    refused = template_stop(run.ctx, batch_id, channel, config, options)
    if refused is not None:
        raise UsageError(f"letter {reference} not sent again: {refused.message}")
    try:
        run.claim(batch_lease(batch_id))
    except LeaseHeld:
        raise UsageError(
            f"batch {batch_id} is being sent right now: settle letter {reference} once that"
            " send has finished"
        ) from None
    with run.chunk() as conn:
        change_letters(
            conn,
            run,
            letter_changes(row, LetterStatus.PENDING.value, "SETTLED:RESEND_NOT_AT_NOTIFY"),
            source=TOOLKIT,
        )
        _reopen(conn, run, batch_id)
    sent = SendResult(run.run_id, batch_id, channel.name, run.ctx.as_of.isoformat())  # type: ignore[arg-type]
    sender = NotifySender(run, batch_id, channel, config, options, sent, progress)
    stop = sender.send_pending(only_ids=row["letter_id"].to_list())
    with run.chunk() as conn:
        finish_batch(conn, run, batch_id, stop, sent, options)
    with run.ctx.engine.connect() as conn:
        now = conn.execute(
            select(letters.c.status, letters.c.notify_id).where(letters.c.reference == reference)
        ).one()
    result.status, result.notify_id = now.status, now.notify_id
    result.outcome = "resent" if sent.accepted else "not_resent"
    if stop is not None:
        result.stop_code, result.stop_message = stop.code, stop.message


def _reopen(conn: Connection, run: Run, batch_id: int) -> None:
    """A sent batch with letters to send again is ``sending`` until they are."""
    status = conn.execute(
        select(letter_batches.c.status).where(letter_batches.c.batch_id == batch_id)
    ).scalar_one()
    if status == BatchStatus.SENDING.value:
        return
    move_batch(conn, batch_id, status, BatchStatus.SENDING)
    events.record(
        conn,
        run,
        EventType.BATCH_SENDING,
        entity=f"batch:{batch_id}",
        from_state=status,
        to_state=BatchStatus.SENDING.value,
        detail={"why": "resend after technical failure"},
    )


__all__ = [
    "SettleAction",
    "SettleResult",
    "SyncResult",
    "UploadResult",
    "record_returned",
    "record_upload_report",
    "references_in_print_files",
    "settle_letter",
    "sync_letters",
]
