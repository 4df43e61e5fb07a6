"""The append-only event log: every state change and every notable act, never personal data.

``detail`` holds codes, counts, amounts in pence and dates: never names, addresses, NINOs or
dates of birth. Events are written in the same transaction as the change they describe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.domain.events import DECISION_EVENTS, EventType, as_event_type
from csa_closure.store.dialect import insert_frame
from csa_closure.store.schema import events

if TYPE_CHECKING:
    from csa_closure.store.runs import Run


def record(
    conn: Connection,
    run: Run,
    event_type: EventType | str,
    *,
    case_ref: str | None = None,
    debt_id: int | None = None,
    entity: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event. ``event_type`` must be an :class:`EventType` (or its value)."""
    kind = as_event_type(event_type)
    conn.execute(
        events.insert().values(
            run_id=run.run_id,
            occurred_at=run.ctx.clock(),
            as_of=run.ctx.as_of,
            actor=run.ctx.actor,
            event_type=kind.value,
            case_ref=case_ref,
            debt_id=debt_id,
            entity=entity,
            from_state=from_state,
            to_state=to_state,
            detail=detail,
        )
    )


EVENT_FRAME_COLUMNS = ("case_ref", "debt_id", "entity", "from_state", "to_state", "detail")


def record_frame(
    conn: Connection, run: Run, event_type: EventType | str, frame: pl.DataFrame
) -> int:
    """Append one event per row of ``frame``, in bulk.

    ``frame`` may have any of ``EVENT_FRAME_COLUMNS``; ``detail`` may be a struct column
    (encoded to JSON in one pass) or JSON text. Run, time, as-of and actor come from ``run``.
    ``event_type`` must be an :class:`EventType` (or its value), even for an empty frame.
    """
    kind = as_event_type(event_type)
    if frame.height == 0:
        return 0
    unknown = set(frame.columns) - set(EVENT_FRAME_COLUMNS)
    if unknown:
        raise ValueError(f"not event columns: {sorted(unknown)}")
    stamped = frame.with_columns(
        pl.lit(run.run_id, dtype=pl.Int64).alias("run_id"),
        pl.lit(run.ctx.clock()).alias("occurred_at"),
        pl.lit(run.ctx.as_of, dtype=pl.Date).alias("as_of"),
        pl.lit(run.ctx.actor).alias("actor"),
        pl.lit(kind.value).alias("event_type"),
    )
    return insert_frame(conn, events, stamped)


def decision_detail(key: str) -> Any:
    """``events.detail[key]`` as text, on either database."""
    return events.c.detail[key].as_string()


def is_decision_event() -> Any:
    """The events that record a decision (listed, so the event_type index finds them among
    millions of other events)."""
    return events.c.event_type.in_(DECISION_EVENTS)
