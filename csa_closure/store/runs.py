"""Stage runs: who ran what, when, for which as-of date, with what result.

``stage_run`` records the run, takes its claims (leases), hands out chunk transactions that
renew those leases, and records the outcome however the run ends: completed, unbalanced,
failed (with an error that names the problem but never personal data), interrupted, or
refused (it never started its work: another run held what it needed).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, select, update
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.states import RunStatus
from csa_closure.errors import CsaClosureError, LeaseHeld, Terminated, Unbalanced, UsageError
from csa_closure.store import failpoints
from csa_closure.store import leases as lease_store
from csa_closure.store.dialect import WRITTEN_KEY, note_written, refresh_statistics
from csa_closure.store.leases import Lease
from csa_closure.store.migrate import require_current
from csa_closure.store.schema import metadata, stage_runs

log = logging.getLogger(__name__)

# The status of a run that was refused before it did anything (a lease held by another run).
REFUSED = RunStatus.REFUSED.value
# The run parameter that records an as-of date let through with --allow-as-of, and why.
AS_OF_ALLOWED = "as_of_allowed"


@dataclass
class Run:
    ctx: Context
    run_id: int
    stage: str
    counts: dict[str, Any] = field(default_factory=dict)
    control_totals: dict[str, Any] = field(default_factory=dict)
    leases: list[Lease] = field(default_factory=list)
    chunks: int = 0
    written: dict[str, int] = field(default_factory=dict)  # rows written per table, committed

    def claim(self, name: str) -> Lease:
        """Take the lease ``name`` for this run (committed at once) or raise ``LeaseHeld``."""
        with self.ctx.engine.begin() as conn:
            lease = lease_store.acquire(conn, self, name)
        self.leases.append(lease)
        return lease

    @contextmanager
    def chunk(self) -> Iterator[Connection]:
        """One transaction of work. The run's leases are renewed inside it, so a run that
        lost its claim cannot commit anything. Once committed, the rows it wrote to each
        table are logged (INFO: ``-v``, and the log file)."""
        with self.ctx.engine.begin() as conn:
            conn.info[WRITTEN_KEY] = {}
            event.listen(conn, "after_cursor_execute", _count_written)
            try:
                for lease in self.leases:
                    lease_store.renew(conn, self, lease)
                yield conn
                failpoints.reach(self.stage, "before_commit")
            finally:
                event.remove(conn, "after_cursor_execute", _count_written)
            written = dict(sorted(conn.info.pop(WRITTEN_KEY, {}).items()))
        failpoints.reach(self.stage, "after_commit")
        self.chunks += 1
        written.pop("leases", None)  # the run's own bookkeeping
        for table, rows in written.items():
            self.written[table] = self.written.get(table, 0) + rows
        log.info(
            "%s run %d: chunk %d committed, rows written: %s",
            self.stage,
            self.run_id,
            self.chunks,
            _counts_text(written),
            extra={
                "run_id": self.run_id,
                "stage": self.stage,
                "chunk": self.chunks,
                "rows": written,
            },
        )

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def _counts_text(counts: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"


_DML = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)


def _count_written(
    conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
) -> None:
    """Add a statement's affected rows to its table's count (store tables only)."""
    match = _DML.match(statement)
    if match is None or match.group(1) not in metadata.tables:
        return
    rows = getattr(cursor, "rowcount", -1)
    if rows is not None and rows > 0:
        note_written(conn, match.group(1), rows)


def _safe_error(exc: BaseException) -> str:
    # Database and driver messages can quote the row being written (personal data), so
    # only our own messages are kept in full.
    if isinstance(exc, CsaClosureError):
        return str(exc)
    if isinstance(exc, Terminated):
        return "stopped by SIGTERM; the open chunk was rolled back"
    if isinstance(exc, KeyboardInterrupt):
        return "stopped by Ctrl-C (SIGINT); the open chunk was rolled back"
    return f"{type(exc).__name__} (details in the operator's terminal output)"


def _finish(run: Run, status: str, error: str | None = None) -> None:
    log.info(
        "%s run %d: %s after %d chunk(s); counts %s",
        run.stage,
        run.run_id,
        status,
        run.chunks,
        _counts_text(run.counts),
        extra={
            "run_id": run.run_id,
            "stage": run.stage,
            "status": status,
            "chunks": run.chunks,
            "counts": dict(run.counts),
        },
    )
    with run.ctx.engine.begin() as conn:
        conn.execute(
            update(stage_runs)
            .where(stage_runs.c.run_id == run.run_id)
            # a run whose lease was taken over was marked abandoned; that record stands
            .where(stage_runs.c.status == RunStatus.RUNNING.value)
            .values(
                status=status,
                finished_at=run.ctx.clock(),
                counts=run.counts,
                control_totals=run.control_totals or None,
                error=error,
            )
        )


def abandon_run(conn: Connection, run_id: int, *, finished_at: datetime, error: str) -> None:
    """Mark a run whose lease was taken over ``abandoned``, if it is still running (one that
    ended meanwhile keeps its record)."""
    conn.execute(
        update(stage_runs)
        .where(stage_runs.c.run_id == run_id)
        .where(stage_runs.c.status == RunStatus.RUNNING.value)
        .values(status=RunStatus.ABANDONED.value, finished_at=finished_at, error=error)
    )


def as_of_problem(conn: Connection, ctx: Context) -> str | None:
    """Why ``ctx.as_of`` is not a date a writing run should use, or None when it is.

    It may not be after today (the later of the local and the UTC date), nor before the
    newest as-of of any run already recorded (time does not go backwards for the book).
    Runs that were themselves let through with ``--allow-as-of``, and refused runs, do not
    move that line."""
    # the run's own clock (tests pass theirs), read in UTC and in the machine's local zone
    now = ctx.clock()
    today = max(now.astimezone().date(), now.date())
    if ctx.as_of > today:
        return f"the as-of date {ctx.as_of} is after today ({today})"
    later = conn.execute(
        select(stage_runs.c.run_id, stage_runs.c.stage, stage_runs.c.as_of, stage_runs.c.parameters)
        .where(stage_runs.c.as_of > ctx.as_of)
        .where(stage_runs.c.status != REFUSED)
        .order_by(stage_runs.c.as_of.desc(), stage_runs.c.run_id.desc())
    ).all()
    for row in later:
        if not (row.parameters or {}).get(AS_OF_ALLOWED):
            return (
                f"the as-of date {ctx.as_of} is before {row.as_of}, the as-of of run "
                f"{row.run_id} ({row.stage}) already recorded"
            )
    return None


def start_run(ctx: Context, stage: str, parameters: Mapping[str, Any]) -> Run:
    require_current(ctx.engine)
    parameters = dict(parameters)
    with ctx.engine.begin() as conn:
        problem = as_of_problem(conn, ctx) if ctx.guard_as_of or ctx.allow_as_of else None
        if problem and not ctx.allow_as_of:
            raise UsageError(
                f"{problem}. Nothing was done. Give the date you mean with --as-of "
                "YYYY-MM-DD, or add --allow-as-of if this date is meant (the run records it)."
            )
        if problem:
            parameters[AS_OF_ALLOWED] = problem
        run_id = conn.execute(
            insert(stage_runs)
            .values(
                stage=stage,
                actor=ctx.actor,
                host=ctx.host,
                started_at=ctx.clock(),
                as_of=ctx.as_of,
                status=RunStatus.RUNNING.value,
                parameters=parameters,
                log_file=ctx.log_file,
            )
            .returning(stage_runs.c.run_id)
        ).scalar_one()
    log.info(
        "%s run %d started, as of %s",
        stage,
        run_id,
        ctx.as_of.isoformat(),
        extra={"run_id": int(run_id), "stage": stage, "as_of": ctx.as_of.isoformat()},
    )
    return Run(ctx=ctx, run_id=int(run_id), stage=stage)


RESHAPED_ROWS = 10_000  # rows a run writes to a table before its statistics are refreshed


def _refresh(run: Run) -> None:
    tables = [t for t, n in sorted(run.written.items()) if n >= RESHAPED_ROWS]
    if tables:
        with run.ctx.engine.begin() as conn:
            refresh_statistics(conn, *tables)


@contextmanager
def stage_run(
    ctx: Context,
    stage: str,
    parameters: Mapping[str, Any],
    *,
    claims: Sequence[str] = (),
) -> Iterator[Run]:
    """Record a run of ``stage`` around the body, holding the leases named in ``claims``.

    A run refused one of its ``claims`` (another run holds it) did nothing: it is recorded as
    ``refused``, which no stage reads as a result, so the stage's history stays as it was
    (a refused pull is not "the latest pull, failed").

    When the run ends, the planner statistics of every table it wrote at least
    ``RESHAPED_ROWS`` rows to (a pull loading the book, assess deciding it, a send moving its
    letters) are refreshed, so the next stage's joins are planned for the tables as they are.
    PostgreSQL refreshes them only through autovacuum, which may be late or, on a server with
    it turned off, never: the 200,000-case programme's print send was planned for a book a
    tenth of its size and hash-joined the whole of it for every page of 20,000 letters."""
    run = start_run(ctx, stage, parameters)
    claiming = True
    try:
        for name in claims:
            run.claim(name)
        claiming = False
        yield run
    except BaseException as exc:
        if claiming and isinstance(exc, LeaseHeld):
            status = REFUSED
        elif isinstance(exc, Unbalanced):
            status = RunStatus.UNBALANCED.value
        elif isinstance(exc, KeyboardInterrupt):
            status = RunStatus.INTERRUPTED.value
        else:
            status = RunStatus.FAILED.value
        if status != REFUSED:  # what it committed before it stopped is in the tables
            with suppress(Exception):
                _refresh(run)
        # If the database itself went away, recording the failure fails too; the run is
        # then left "running" and is marked abandoned when its lease is taken over.
        try:
            _finish(run, status, _safe_error(exc))
        except Exception:
            log.warning("could not record the end of run %s", run.run_id)
        raise
    else:
        _refresh(run)
        _finish(run, RunStatus.COMPLETED.value)
    finally:
        for lease in run.leases:
            with suppress(Exception), ctx.engine.begin() as conn:
                lease_store.release(conn, lease)
