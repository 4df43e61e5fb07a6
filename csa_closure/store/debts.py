"""The only writer of the ``debts`` table: loading debts, moving them through the state
machine, and changing their columns where they stand, each with its events.

- :func:`insert_pulled_debts`, :func:`refresh_pulled_debts` and :func:`record_source_pence`
  are the pull's writes (new debts in state ``pulled``; an undecided debt's balance brought up
  to date; a decided debt's source balance noted as drift).
- :func:`move_debts` is the only writer of ``debts.state``. Each move is checked against
  :data:`csa_closure.domain.states.TRANSITIONS` and applied compare-and-set
  (``WHERE state = from``): if any debt is no longer where the caller saw it, the whole chunk
  is refused with ``ConcurrentChange`` and the caller's transaction rolls back.
- :func:`update_debts` changes facts while a debt stays where it is (a response recorded on a
  written-off debt, a flag raised on a debt the CMS is still considering), compare-and-set on
  the state the caller read.

Every write checks how many rows it changed against how many it meant to, and writes its
events in the same transaction. tests/project/test_code_rules.py keeps every other module from
writing ``debts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from csa_closure.domain.events import EventType
from csa_closure.domain.states import DebtState, transition_refusal
from csa_closure.errors import ConcurrentChange, InvalidTransition
from csa_closure.store import events
from csa_closure.store.dialect import execute_many, insert_frame, read_frame, update_from_frame
from csa_closure.store.schema import debts

if TYPE_CHECKING:
    from csa_closure.store.runs import Run


def check_transition(frm: DebtState | str, to: DebtState | str) -> None:
    """Raise ``InvalidTransition`` unless a debt may move from ``frm`` to ``to``."""
    refusal = transition_refusal(frm, to)
    if refusal is not None:
        raise InvalidTransition(refusal)


REQUIRED = ("debt_id", "case_ref", "from_state", "to_state")


def move_debts(
    conn: Connection,
    run: Run,
    moves: pl.DataFrame,
    *,
    event_type: EventType | str,
    set_columns: Sequence[str] = (),
) -> int:
    """Move each debt in ``moves`` from ``from_state`` to ``to_state``.

    ``moves`` has ``debt_id``, ``case_ref``, ``from_state``, ``to_state``, every column named
    in ``set_columns`` (written to ``debts`` too, e.g. ``outcome``, ``reason``) and optionally
    ``detail`` (struct or JSON text) for the events. Returns the number of debts moved.
    """
    if moves.height == 0:
        return 0
    missing = [c for c in (*REQUIRED, *set_columns) if c not in moves.columns]
    if missing:
        raise ValueError(f"moves lack columns {missing}")
    for frm, to in moves.select("from_state", "to_state").unique().iter_rows():
        check_transition(frm, to)

    changed = update_from_frame(
        conn,
        debts,
        moves.select(
            pl.col("to_state").alias("state"),
            pl.lit(run.run_id, dtype=pl.Int64).alias("updated_run_id"),
            *set_columns,
            "debt_id",
            pl.col("from_state").alias("from_state_"),
        ),
        key="debt_id",
        guards={"from_state_": "state"},
    )
    if changed != moves.height:
        raise ConcurrentChange(
            f"{moves.height - changed} of {moves.height} debts were no longer in the state "
            "this run read them in (another writer moved them); this chunk was rolled back. "
            "Run the stage again."
        )
    event_columns = ["case_ref", "debt_id", "from_state", "to_state"]
    if "detail" in moves.columns:
        event_columns.append("detail")
    events.record_frame(conn, run, event_type, moves.select(event_columns))
    return changed


DECISION_COLUMNS = (
    "outcome",
    "reason",
    "rule_id",
    "ruleset_hash",
    "decided_run_id",
    "decided_by",
    "decided_as_of",
)


def decision_stamp(run: Run) -> list[pl.Expr]:
    """Who decided, in which run, for which as-of date: the columns every decision sets."""
    return [
        pl.lit(run.run_id, dtype=pl.Int64).alias("decided_run_id"),
        pl.lit(run.ctx.actor, dtype=pl.String).alias("decided_by"),
        pl.lit(run.ctx.as_of, dtype=pl.Date).alias("decided_as_of"),
    ]


def update_debts(
    conn: Connection,
    run: Run,
    frame: pl.DataFrame,
    *,
    columns: Sequence[str],
    event_type: EventType | str,
) -> int:
    """Set ``columns`` on each debt in ``frame`` (which has ``debt_id``, ``case_ref``,
    ``state``: where the caller read it, and optionally ``detail``), leaving its state alone.

    Refused with ``ConcurrentChange`` (the caller's transaction rolls back) if any debt has
    moved since it was read.
    """
    if frame.height == 0:
        return 0
    changed = update_from_frame(
        conn,
        debts,
        frame.select(
            *columns,
            pl.lit(run.run_id, dtype=pl.Int64).alias("updated_run_id"),
            "debt_id",
            pl.col("state").alias("state_"),
        ),
        key="debt_id",
        guards={"state_": "state"},
    )
    if changed != frame.height:
        raise ConcurrentChange(
            f"{frame.height - changed} of {frame.height} debts were no longer in the state "
            "this run read them in (another writer moved them); nothing was written. "
            "Run the command again."
        )
    event_columns = ["case_ref", "debt_id"]
    if "detail" in frame.columns:
        event_columns.append("detail")
    events.record_frame(
        conn,
        run,
        event_type,
        frame.select(
            *event_columns, pl.col("state").alias("from_state"), pl.col("state").alias("to_state")
        ),
    )
    return changed


# --- the pull's writes ------------------------------------------------------------------


def insert_pulled_debts(conn: Connection, run: Run, new_debts: pl.DataFrame) -> int:
    """Insert ``new_debts`` (``case_ref``, ``source_system``, ``creditor``, ``balance_pence``)
    in state ``pulled``, with one ``debt.pulled`` event each. Returns how many were inserted.

    Only the pull inserts debts, and it holds the stage lease, so the new rows are exactly
    those above the current maximum id: anything else there is refused.
    """
    if new_debts.height == 0:
        return 0
    before = conn.execute(select(func.coalesce(func.max(debts.c.debt_id), 0))).scalar_one()
    insert_frame(
        conn,
        debts,
        new_debts.select(
            "case_ref",
            "source_system",
            "creditor",
            pl.col("balance_pence").alias("opening_pence"),
            pl.col("balance_pence").alias("source_pence"),
            pl.lit(DebtState.PULLED.value).alias("state"),
            pl.lit(False).alias("needs_tracing"),
            pl.lit(False).alias("needs_caseworker"),
            pl.lit(run.run_id, dtype=pl.Int64).alias("updated_run_id"),
        ),
    )
    inserted = read_frame(
        conn,
        ("SELECT debt_id, case_ref, opening_pence FROM debts WHERE debt_id > ?", (before,)),
        {"debt_id": pl.Int64(), "case_ref": pl.String(), "opening_pence": pl.Int64()},
    )
    if inserted.height != new_debts.height:
        raise RuntimeError("debts appeared that this pull did not write (is the lease honoured?)")
    events.record_frame(
        conn,
        run,
        EventType.DEBT_PULLED,
        inserted.select(
            "case_ref",
            "debt_id",
            pl.lit(DebtState.PULLED.value).alias("to_state"),
            pl.struct("opening_pence").alias("detail"),
        ),
    )
    return inserted.height


def refresh_pulled_debts(conn: Connection, run: Run, changed: pl.DataFrame) -> int:
    """Bring undecided debts up to their new source balance: ``changed`` has ``debt_id``,
    ``case_ref``, ``opening_pence`` (what the store holds) and ``balance_pence`` (the source
    now). Each gets a ``debt.refreshed`` event. Refused with ``ConcurrentChange`` if any debt
    is no longer ``pulled`` (a decision came in between)."""
    updated = execute_many(
        conn,
        "UPDATE debts SET opening_pence = ?, source_pence = ?, updated_run_id = ? "
        "WHERE debt_id = ? AND state = ?",
        [
            (b, b, run.run_id, d, DebtState.PULLED.value)
            for b, d in changed.select("balance_pence", "debt_id").iter_rows()
        ],
    )
    _all_written(updated, changed.height, "refreshed", "no longer undecided")
    events.record_frame(
        conn,
        run,
        EventType.DEBT_REFRESHED,
        changed.select(
            "case_ref",
            "debt_id",
            pl.struct(
                pl.col("opening_pence").alias("previous_opening_pence"),
                pl.col("balance_pence").alias("opening_pence"),
            ).alias("detail"),
        ),
    )
    return updated


def record_source_drift(conn: Connection, run: Run, moved: pl.DataFrame) -> int:
    """Note a decided debt's changed source balance (``debts.source_pence``, never its
    opening balance) with a ``debt.source_drift`` event each: ``moved`` has ``debt_id``,
    ``case_ref``, ``opening_pence``, ``stored_source_pence`` and ``balance_pence``."""
    updated = execute_many(
        conn,
        "UPDATE debts SET source_pence = ? WHERE debt_id = ?",
        list(moved.select("balance_pence", "debt_id").iter_rows()),
    )
    _all_written(updated, moved.height, "given their source balance", "gone")
    events.record_frame(
        conn,
        run,
        EventType.DEBT_SOURCE_DRIFT,
        moved.select(
            "case_ref",
            "debt_id",
            pl.struct(
                "opening_pence",
                pl.col("stored_source_pence").alias("previous_source_pence"),
                pl.col("balance_pence").alias("source_pence"),
            ).alias("detail"),
        ),
    )
    return updated


def _all_written(written: int, expected: int, done: str, why: str) -> None:
    if written != expected:
        raise ConcurrentChange(
            f"{expected - written} of {expected} debts could not be {done} (another writer "
            f"changed them: {why}); this chunk was rolled back. Run the stage again."
        )
