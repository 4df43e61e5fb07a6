"""What every part of the letters outbox shares: names, the batch statuses, and the one writer
of a letter's status.

:func:`change_letters` is to letters what ``move_debts`` is to debts: every status change is a
compare-and-set update (``WHERE status = from``), a ``letter_status_history`` row and an event,
in the caller's transaction, in bulk. Neither the history nor the event carries personal data:
they hold the letter's id, its opaque reference, its kind, the batch and a reason code.

:func:`flag_debts` raises the flags for a person on a debt (``needs_tracing``,
``needs_caseworker``, ``review_reason``) with a ``debt.flagged`` event; a reason already on the
debt is kept (the first problem is the one a caseworker sees first; every one is in the events).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.errors import ConcurrentChange, UsageError
from csa_closure.stages.debt_updates import update_debts
from csa_closure.store import events
from csa_closure.store.dialect import (
    driver_frame,
    execute_many,
    insert_frame,
    insert_tuples,
    read_frame,
    update_from_frame,
    values_for_driver,
)
from csa_closure.store.schema import letter_batches, letter_status_history, letters

if TYPE_CHECKING:
    from csa_closure.store.runs import Run

BUILD_STAGE = "notify-build"
BUILD_LEASE = "stage:notify-build"
APPROVE_STAGE = "notify-approve"
SEND_STAGE = "notify-send"
SYNC_STAGE = "notify-sync"
SYNC_LEASE = "stage:notify-sync"

GOVUK_NOTIFY = "govuk-notify"
FAKE_NOTIFY = "fake-notify"
PRINT_FILE = "print-file"
NOTIFY_CHANNELS = (GOVUK_NOTIFY, FAKE_NOTIFY)
CHANNELS = (GOVUK_NOTIFY, PRINT_FILE, FAKE_NOTIFY)

# letter_status_history.source: who says the letter has this status
TOOLKIT = "toolkit"
SOURCE_FOR_CHANNEL = {GOVUK_NOTIFY: "notify", FAKE_NOTIFY: "fake", PRINT_FILE: "print-file"}

LETTER_EVENT = "letter.status_changed"
LETTER_BUILT_EVENT = "letter.built"
DEBT_FLAGGED_EVENT = "debt.flagged"

# review_reason codes the outbox sets on a debt (all start LETTER_: `review list --reason LETTER`)
HELD_PREFIX = "LETTER_HELD:"
REASON_RETURNED = "LETTER_RETURNED"
REASON_PERMANENT_FAILURE = "LETTER_PERMANENT_FAILURE"
REASON_TECHNICAL_FAILURE = "LETTER_TECHNICAL_FAILURE"  # an operator settles it: notify settle
REASON_UNDELIVERABLE = "LETTER_UNDELIVERABLE"  # settled as undeliverable by an operator
REASON_DUPLICATED = "LETTER_DUPLICATED"
REASON_UNCONFIRMED = "LETTER_UNCONFIRMED"
REASON_SENT_AFTER_MOVE = "LETTER_SENT_DEBT_MOVED"
FAILED_PREFIX = "LETTER_FAILED:"

IN_LIST_SIZE = 5_000  # ids per IN (...) list: far under both databases' parameter limits


class BatchStatus(StrEnum):
    BUILT = "built"  # made by `notify build`; waits for a second person
    APPROVED = "approved"  # approved by someone other than its builder; may be sent
    SENDING = "sending"  # a send has started; letters remain to send or to reconcile
    STOPPED = "stopped"  # the last send stopped early (stop_reason); `notify send` resumes
    SENT = "sent"  # every letter sent, held, failed or cancelled: nothing in flight


def batch_lease(batch_id: int) -> str:
    """The lease a sender holds on a batch: two operators cannot send it at once."""
    return f"letter_batch:{batch_id}"


def slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_in(
    conn: Connection,
    sql: str,
    values: Sequence[Any],
    schema: dict[str, pl.DataType],
    params: Sequence[Any] = (),
) -> pl.DataFrame:
    """``sql`` (with ``{marks}`` where the IN list goes, after any ``params``) for every value,
    ``IN_LIST_SIZE`` at a time."""
    frames = [
        read_frame(
            conn,
            (sql.format(marks=", ".join("?" for _ in part)), [*params, *part]),
            schema,
        )
        for part in slices(list(values), IN_LIST_SIZE)
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


# --- the one writer of letters.status ---------------------------------------------------------

LETTER_CHANGE_COLUMNS = (
    "letter_id",
    "reference",
    "batch_id",
    "debt_id",
    "case_ref",
    "purpose",
    "recipient",
    "from_status",
    "to_status",
    "reason",
)


def change_letters(
    conn: Connection,
    run: Run,
    changes: pl.DataFrame,
    *,
    source: str,
    set_columns: Sequence[str] = (),
    count_attempt: bool = False,
) -> int:
    """Move each letter in ``changes`` from ``from_status`` to ``to_status``, compare-and-set.

    ``changes`` has :data:`LETTER_CHANGE_COLUMNS` (``reason``: a code, or null) and every
    column in ``set_columns`` (written to ``letters`` too). ``count_attempt`` adds one to
    ``attempts``. Refused with ``ConcurrentChange`` (the caller's transaction rolls back) if
    any letter is no longer in its ``from_status``.
    """
    if changes.height == 0:
        return 0
    missing = [c for c in (*LETTER_CHANGE_COLUMNS, *set_columns) if c not in changes.columns]
    if missing:
        raise ValueError(f"letter changes lack columns {missing}")
    now = run.ctx.clock()
    assignments = ["status = ?", "status_at = ?", *(f"{c} = ?" for c in set_columns)]
    if count_attempt:
        assignments.append("attempts = attempts + 1")
    sql = f"UPDATE letters SET {', '.join(assignments)} WHERE letter_id = ? AND status = ?"
    if changes.height <= SMALL:
        # a send group: plain tuples, no frame work per statement (the hot path)
        params = [
            values_for_driver(conn, (to, now, *values, letter_id, frm))
            for to, *values, letter_id, frm in changes.select(
                "to_status", *set_columns, "letter_id", "from_status"
            ).iter_rows()
        ]
        changed = execute_many(conn, sql, params)
    else:
        moves = changes.select(
            pl.col("to_status").alias("status"),
            pl.lit(now).alias("status_at"),
            *set_columns,
            "letter_id",
            pl.col("from_status").alias("from_status_"),
        )
        if changes["letter_id"].is_duplicated().any():
            # a letter moved twice in one chunk: the moves apply in order, one statement each
            staged = driver_frame(conn, letters, moves.drop("from_status_"))
            rows = staged.with_columns(moves["from_status_"]).iter_rows()
            changed = execute_many(conn, sql, list(rows))
        else:
            changed = update_from_frame(
                conn,
                letters,
                moves,
                key="letter_id",
                guards={"from_status_": "status"},
                increment=("attempts",) if count_attempt else (),
            )
    if changed != changes.height:
        raise ConcurrentChange(
            f"{changes.height - changed} of {changes.height} letters were no longer in the "
            "status this run read them in (another run changed them); nothing from this chunk "
            "was written. Run the command again."
        )
    record_letter_history(conn, run, changes, source=source, event_type=LETTER_EVENT)
    return changed


def record_letter_history(
    conn: Connection, run: Run, changes: pl.DataFrame, *, source: str, event_type: str
) -> None:
    """A history row and an event for each letter in ``changes`` (see ``change_letters``)."""
    if changes.height <= SMALL:
        _record_small(conn, run, changes, source=source, event_type=event_type)
        return
    now = run.ctx.clock()
    insert_frame(
        conn,
        letter_status_history,
        changes.select(
            "letter_id",
            pl.col("to_status").alias("status"),
            pl.lit(now).alias("recorded_at"),
            pl.lit(source).alias("source"),
            pl.col("reason").cast(pl.String).str.slice(0, 200).alias("detail"),
        ),
    )
    events.record_frame(
        conn,
        run,
        event_type,
        changes.select(
            "case_ref",
            "debt_id",
            pl.concat_str(pl.lit("letter:"), pl.col("letter_id").cast(pl.String)).alias("entity"),
            pl.col("from_status").cast(pl.String).alias("from_state"),
            pl.col("to_status").alias("to_state"),
            pl.struct(
                "reference",
                "purpose",
                "recipient",
                pl.col("batch_id").cast(pl.Int64),
                pl.col("reason").cast(pl.String),
            ).alias("detail"),
        ),
    )


SMALL = 500  # up to this many letters a change is written from plain tuples
_HISTORY_COLUMNS = ("letter_id", "status", "recorded_at", "source", "detail")
_EVENT_COLUMNS = (
    "run_id",
    "occurred_at",
    "as_of",
    "actor",
    "event_type",
    "case_ref",
    "debt_id",
    "entity",
    "from_state",
    "to_state",
    "detail",
)


def _record_small(
    conn: Connection, run: Run, changes: pl.DataFrame, *, source: str, event_type: str
) -> None:
    ctx = run.ctx
    now = ctx.clock()
    history = []
    logged = []
    for (
        letter_id,
        reference,
        batch_id,
        debt_id,
        case_ref,
        purpose,
        recipient,
        frm,
        to,
        reason,
    ) in changes.select(LETTER_CHANGE_COLUMNS).iter_rows():
        why = None if reason is None else str(reason)
        history.append(values_for_driver(conn, (letter_id, to, now, source, why and why[:200])))
        detail = {
            "batch_id": batch_id,
            "purpose": purpose,
            "reason": why,
            "recipient": recipient,
            "reference": reference,
        }
        logged.append(
            values_for_driver(
                conn,
                (
                    run.run_id,
                    now,
                    ctx.as_of,
                    ctx.actor,
                    event_type,
                    case_ref,
                    debt_id,
                    f"letter:{letter_id}",
                    frm,
                    to,
                    json.dumps(detail, sort_keys=True),
                ),
            )
        )
    insert_tuples(conn, "letter_status_history", _HISTORY_COLUMNS, history)
    insert_tuples(conn, "events", _EVENT_COLUMNS, logged)


def letter_changes(
    rows: pl.DataFrame, to_status: str, reason: str | pl.Expr | None = None
) -> pl.DataFrame:
    """:data:`LETTER_CHANGE_COLUMNS` for ``rows`` (letters as read, with ``status``) moving to
    ``to_status``, plus every other column of ``rows``."""
    reason_expr = reason if isinstance(reason, pl.Expr) else pl.lit(reason, dtype=pl.String)
    return rows.with_columns(
        pl.col("status").alias("from_status"),
        pl.lit(to_status).alias("to_status"),
        reason_expr.cast(pl.String).alias("reason"),
    )


# --- flags for people on debts ------------------------------------------------------------------

_DEBT_FLAG_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "state": pl.String(),
    "needs_tracing": pl.Boolean(),
    "needs_caseworker": pl.Boolean(),
    "review_reason": pl.String(),
}


def read_debt_flags(conn: Connection, debt_ids: Sequence[int]) -> pl.DataFrame:
    return read_in(
        conn,
        "SELECT debt_id, case_ref, state, needs_tracing, needs_caseworker, review_reason "
        "FROM debts WHERE debt_id IN ({marks})",
        sorted(set(debt_ids)),
        _DEBT_FLAG_SCHEMA,
    )


def flag_debts(
    conn: Connection,
    run: Run,
    flags: pl.DataFrame,
    *,
    tracing: bool,
    caseworker: bool,
) -> int:
    """Flag the debts in ``flags`` (``debt_id``, ``reason``: the review reason code) for
    tracing and/or a caseworker. A debt already flagged the same way for the same reason is
    left alone (no second event). Returns how many debts were flagged."""
    if flags.height == 0:
        return 0
    wanted = flags.select("debt_id", pl.col("reason").cast(pl.String)).unique(
        "debt_id", keep="first", maintain_order=True
    )
    current = read_debt_flags(conn, wanted["debt_id"].to_list())
    merged = current.join(wanted, on="debt_id", how="inner").with_columns(
        (pl.col("needs_tracing").fill_null(False) | tracing).alias("new_tracing"),
        (pl.col("needs_caseworker").fill_null(False) | caseworker).alias("new_caseworker"),
        pl.coalesce("review_reason", "reason").str.slice(0, 64).alias("new_reason"),
    )
    changed = merged.filter(
        (pl.col("new_tracing") != pl.col("needs_tracing").fill_null(False))
        | (pl.col("new_caseworker") != pl.col("needs_caseworker").fill_null(False))
        | (pl.col("new_reason") != pl.col("review_reason")).fill_null(True)
    )
    if changed.height == 0:
        return 0
    frame = changed.select(
        "debt_id",
        "case_ref",
        "state",
        pl.col("new_tracing").alias("needs_tracing"),
        pl.col("new_caseworker").alias("needs_caseworker"),
        pl.col("new_reason").alias("review_reason"),
        pl.struct(
            pl.col("reason"),
            pl.col("new_tracing").alias("needs_tracing"),
            pl.col("new_caseworker").alias("needs_caseworker"),
        ).alias("detail"),
    )
    return update_debts(
        conn,
        run,
        frame,
        columns=["needs_tracing", "needs_caseworker", "review_reason"],
        event_type=DEBT_FLAGGED_EVENT,
    )


def batch_row(conn: Connection, batch_id: int) -> Any:
    """The batch's row, or ``UsageError`` naming the command that lists batches."""
    row = conn.execute(select(letter_batches).where(letter_batches.c.batch_id == batch_id)).first()
    if row is None:
        raise UsageError(
            f"there is no letter batch {batch_id}: `csa-closure notify status` lists them"
        )
    return row
