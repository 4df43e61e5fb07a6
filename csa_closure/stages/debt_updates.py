"""Changing a debt's columns without moving it, and stamping decisions: shared by the stages
that record responses, resolve debts, and take caseworkers' decisions.

State changes always go through :func:`csa_closure.store.moves.move_debts`. Some facts change
while a debt stays where it is (a response recorded on a written-off debt, a flag raised on a
debt the CMS is still considering): :func:`update_debts` writes those, compare-and-set on the
state the caller read, with an event per debt in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.errors import ConcurrentChange
from csa_closure.store import events
from csa_closure.store.dialect import update_from_frame
from csa_closure.store.schema import debts

if TYPE_CHECKING:
    from csa_closure.store.runs import Run

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
    event_type: str,
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
