"""Every stage run: who ran it, when, for which as-of date, what it counted and how it ended.

Run parameters are not shown (they can hold file paths and database addresses); the error of a
failed run is, as recorded (never personal data: see ``store.runs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select

from csa_closure.context import Context
from csa_closure.store.rows import columns_for, from_row
from csa_closure.store.schema import stage_runs

DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class RunRow:
    run_id: int
    stage: str
    actor: str
    host: str
    started_at: datetime
    finished_at: datetime | None
    as_of: date
    status: str
    counts: dict[str, Any]
    error: str | None
    log_file: str | None = None  # the JSON-lines log the run wrote to (--log-file)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stage": self.stage,
            "actor": self.actor,
            "host": self.host,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds,
            "as_of": self.as_of,
            "status": self.status,
            "counts": self.counts,
            "error": self.error,
            "log_file": self.log_file,
        }


def list_runs(
    ctx: Context, *, stage: str | None = None, limit: int | None = DEFAULT_LIMIT
) -> list[RunRow]:
    """Stage runs, newest first; only ``stage`` when given; at most ``limit`` (None: all)."""
    r = stage_runs.c
    statement = select(*columns_for(stage_runs, RunRow)).order_by(r.run_id.desc())
    if stage:
        statement = statement.where(r.stage == stage)
    if limit is not None:
        statement = statement.limit(limit)
    with ctx.engine.connect() as conn:
        return [
            from_row(RunRow, row, run_id=int(row.run_id), counts=dict(row.counts or {}))
            for row in conn.execute(statement)
        ]
