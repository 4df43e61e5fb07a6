"""The one writer of the ``letters`` table and its ``letter_status_history``.

Every insert or update on either table goes through here (tests/project/test_code_rules.py keeps it
so): :func:`insert_letters` (a build's new letters), :func:`change_letters` (every status
change, compare-and-set), :func:`record_letter_history` and :func:`set_notify_ids` (Notify's
upload report). It is also the one writer of ``letter_batches``: :func:`create_batch`,
:func:`add_to_batch`, :func:`mark_batch_approved` and :func:`move_batch` (sending, stopped, sent),
each checking its row count and, where the status changes, ``BATCH_TRANSITIONS``.
:func:`change_letters` is to letters what ``move_debts`` is to debts: each
change is a compare-and-set update (``WHERE status = from``) with its evidence, in the
caller's transaction, in bulk.

**The evidence.** Each letter's every status is one ``letter_status_history`` row (the letter,
the status, when, who said so: ``source``, and why: the reason code in ``detail``); the row
before it is where the letter came from. What a row does not say is which run wrote it, so
each change also writes one event per move (from, to): ``letters.status_changed`` (or
``letters.built``) with the run, actor and as-of date as every event has, the batch as its
entity when there is one, and in ``detail`` how many letters moved, every one's id, their
batches and kinds. One event per letter per status change said the same again, a row per
letter in the widest table (about half of a print send's writes went to it). Neither the
history nor the events carry personal data: ids, kinds, batches and reason codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from csa_closure.domain.events import EventType
from csa_closure.domain.states import BATCH_TRANSITIONS, BatchStatus
from csa_closure.errors import ConcurrentChange, InvalidTransition, UsageError
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

# one event per move (from, to) per change, naming its letters: the history holds each
# letter's row
LETTER_EVENT = EventType.LETTERS_STATUS_CHANGED
LETTER_BUILT_EVENT = EventType.LETTERS_BUILT

# what a change of status records of a letter (no personal data: ids, reference, kind)
LETTER_KEY_COLUMNS = (
    "letter_id",
    "reference",
    "batch_id",
    "debt_id",
    "case_ref",
    "purpose",
    "recipient",
)
LETTER_CHANGE_COLUMNS = (
    *LETTER_KEY_COLUMNS,
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
    same = changes.select("from_status", "to_status", *set_columns).unique()
    if same.height == 1 and not changes["letter_id"].is_duplicated().any():
        # one move with the same values for every letter (a print file's intent or its
        # letters sent, a send group's intent): one statement per id list, no row binding
        to, frm, *values = same.select("to_status", "from_status", *set_columns).row(0)
        # the ids are plain integers, as the driver takes them: only the few values converted
        shared = values_for_driver(conn, (to, now, *values, frm))
        ids = changes["letter_id"].cast(pl.Int64).to_list()
        changed = 0
        for start in range(0, len(ids), IN_LIST_SIZE):
            part = ids[start : start + IN_LIST_SIZE]
            marks = ", ".join("?" for _ in part)
            changed += execute_many(
                conn,
                f"UPDATE letters SET {', '.join(assignments)}"
                f" WHERE status = ? AND letter_id IN ({marks})",
                [(*shared, *part)],
            )
    elif changes.height <= SMALL:
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
    conn: Connection, run: Run, changes: pl.DataFrame, *, source: str, event_type: EventType
) -> None:
    """A history row for each letter in ``changes`` (see ``change_letters``) and one event
    for each move (from, to) among them, naming every letter it moved (see the module doc)."""
    if changes.height == 0:
        return
    now = run.ctx.clock()
    history = changes.select(
        "letter_id",
        pl.col("to_status").alias("status"),
        pl.lit(now).alias("recorded_at"),
        pl.lit(source).alias("source"),
        pl.col("reason").cast(pl.String).str.slice(0, 200).alias("detail"),
    )
    if changes.height <= SMALL:
        # a send group: plain tuples, no frame conversion per statement (the hot path)
        rows = [values_for_driver(conn, row) for row in history.iter_rows()]
        insert_tuples(conn, letter_status_history.name, history.columns, rows)
    else:
        insert_frame(conn, letter_status_history, history)
    events.record_frame(conn, run, event_type, _moves(changes, source))


SMALL = 500  # up to this many letters a change is written from plain tuples
IN_LIST_SIZE = 5_000  # ids per IN (...) list: far under both databases' parameter limits


def _moves(changes: pl.DataFrame, source: str) -> pl.DataFrame:
    """One event row per (from, to) in ``changes``, in the order the moves first appear: how
    many letters, their ids and batches, their kinds (with how many of each), and who said so
    (``source``)."""
    move = ["from_status", "to_status"]
    framed = changes.select(
        pl.col("from_status").cast(pl.String),
        pl.col("to_status").cast(pl.String),
        pl.col("letter_id").cast(pl.Int64),
        pl.col("batch_id").cast(pl.Int64),
        pl.concat_str("purpose", pl.lit("."), "recipient").alias("kind"),
    )
    kinds = (
        framed.group_by(*move, "kind")
        .len("letters")
        .sort("kind")
        .group_by(move)
        .agg(pl.struct("kind", "letters").alias("kinds"))
    )
    moves = (
        framed.group_by(move, maintain_order=True)
        .agg(
            pl.len().alias("letters"),
            pl.col("letter_id").alias("letter_ids"),
            pl.col("batch_id").drop_nulls().unique().sort().alias("batch_ids"),
        )
        .join(kinds, on=move, how="left", nulls_equal=True, maintain_order="left")
    )
    return moves.select(
        pl.when(pl.col("batch_ids").list.len() == 1)
        .then(pl.concat_str(pl.lit("batch:"), pl.col("batch_ids").list.first().cast(pl.String)))
        .alias("entity"),
        pl.col("from_status").alias("from_state"),
        pl.col("to_status").alias("to_state"),
        pl.struct(
            "letters", "letter_ids", "batch_ids", "kinds", pl.lit(source).alias("source")
        ).alias("detail"),
    )


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


def insert_letters(conn: Connection, run: Run, rows: pl.DataFrame, *, source: str) -> pl.DataFrame:
    """Insert new letters (``rows``: columns of ``letters``, each with its unique
    ``reference``, ``status`` and ``held_reason``) with their history rows and
    ``letters.built`` events; returns them as :data:`LETTER_CHANGE_COLUMNS` with their ids."""
    if rows.height == 0:
        return pl.DataFrame(schema={c: pl.String for c in LETTER_CHANGE_COLUMNS})
    # only a build inserts letters, under its lease: the ids after the highest one before this
    # insert are this insert's (read back by range, one statement, not by reference lists)
    before = conn.execute(select(func.coalesce(func.max(letters.c.letter_id), 0))).scalar_one()
    insert_frame(conn, letters, rows)
    ids = read_frame(
        conn,
        ("SELECT letter_id, reference FROM letters WHERE letter_id > ?", [int(before)]),
        {"letter_id": pl.Int64(), "reference": pl.String()},
    )
    made = rows.join(ids, on="reference", how="inner").select(
        *LETTER_KEY_COLUMNS,
        pl.lit(None, dtype=pl.String).alias("from_status"),
        pl.col("status").alias("to_status"),
        pl.col("held_reason").alias("reason"),
    )
    record_letter_history(conn, run, made, source=source, event_type=LETTER_BUILT_EVENT)
    return made


def set_notify_ids(conn: Connection, notify_ids: Iterable[tuple[int, str]]) -> int:
    """Give letters (``letter_id``, Notify id) that have none their Notify id (an upload
    report's); a letter that already has one keeps it. Returns how many were given one."""
    given = 0
    for letter_id, notify_id in notify_ids:
        given += conn.execute(
            update(letters)
            .where(letters.c.letter_id == letter_id, letters.c.notify_id.is_(None))
            .values(notify_id=notify_id)
        ).rowcount
    return given


def create_batch(
    conn: Connection,
    *,
    letter_type: str | None,
    as_of: date,
    built_by: str,
    built_at: datetime,
    built_run_id: int,
) -> int:
    """A new, empty ``built`` batch; its id. Letters are counted in by :func:`add_to_batch`."""
    return int(
        conn.execute(
            insert(letter_batches)
            .values(
                letter_type=letter_type,
                status=BatchStatus.BUILT.value,
                letter_count=0,
                as_of=as_of,
                built_by=built_by,
                built_at=built_at,
                built_run_id=built_run_id,
            )
            .returning(letter_batches.c.batch_id)
        ).scalar_one()
    )


def add_to_batch(conn: Connection, batch_id: int, letters_added: int) -> None:
    """Count ``letters_added`` more letters into the batch."""
    changed = conn.execute(
        update(letter_batches)
        .where(letter_batches.c.batch_id == batch_id)
        .values(letter_count=letter_batches.c.letter_count + letters_added)
    ).rowcount
    if changed != 1:
        raise ConcurrentChange(f"letter batch {batch_id} is gone: run again")


def mark_batch_approved(
    conn: Connection, batch_id: int, *, approved_by: str, approved_at: datetime
) -> None:
    """``built`` to ``approved``, by someone other than its builder (maker-checker), in one
    compare-and-set; ``UsageError`` if the batch changed since the caller read it."""
    _check_batch_move(BatchStatus.BUILT, BatchStatus.APPROVED)
    approved = conn.execute(
        update(letter_batches)
        .where(
            letter_batches.c.batch_id == batch_id,
            letter_batches.c.status == BatchStatus.BUILT.value,
            letter_batches.c.built_by != approved_by,
        )
        .values(
            status=BatchStatus.APPROVED.value,
            approved_by=approved_by,
            approved_at=approved_at,
        )
    ).rowcount
    if approved != 1:
        raise UsageError(f"batch {batch_id} changed while it was being approved: run again")


def move_batch(
    conn: Connection,
    batch_id: int,
    from_status: BatchStatus | str,
    to_status: BatchStatus | str,
    **values: Any,
) -> None:
    """Set the batch's status (and ``values``: channel, stop reason, sent time), compare-and-set
    on ``from_status``. Staying in a status (a resumed send, a stop recorded again) is not a
    move; any other change must be in ``BATCH_TRANSITIONS``."""
    frm, to = BatchStatus(from_status), BatchStatus(to_status)
    if frm != to:
        _check_batch_move(frm, to)
    changed = conn.execute(
        update(letter_batches)
        .where(letter_batches.c.batch_id == batch_id, letter_batches.c.status == frm.value)
        .values(status=to.value, **values)
    ).rowcount
    if changed != 1:
        raise ConcurrentChange(
            f"letter batch {batch_id} is no longer {frm.value} (another run changed it): run again"
        )


def _check_batch_move(frm: BatchStatus, to: BatchStatus) -> None:
    if (frm, to) not in BATCH_TRANSITIONS:
        raise InvalidTransition(f"a letter batch may not move from {frm.value} to {to.value}")
