"""Moving debts through the state machine, in bulk, with their events.

``move_debts`` is the only writer of ``debts.state``. Each move is checked against
``csa_closure.states.TRANSITIONS`` and applied compare-and-set (``WHERE state = from``): if
any debt is no longer where the caller saw it, the whole chunk is refused with
``ConcurrentChange`` and the caller's transaction rolls back. The event for every move is
written in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.errors import ConcurrentChange
from csa_closure.states import check_transition
from csa_closure.store import events
from csa_closure.store.dialect import update_from_frame
from csa_closure.store.schema import debts

if TYPE_CHECKING:
    from csa_closure.store.runs import Run

REQUIRED = ("debt_id", "case_ref", "from_state", "to_state")


def move_debts(
    conn: Connection,
    run: Run,
    moves: pl.DataFrame,
    *,
    event_type: str,
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
