"""A resolve killed part-way (a real process, SIGKILL) and run again writes exactly the ledger
an uninterrupted resolve writes: nothing twice, nothing missed, on both databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from csa_closure.context import Context, Settings
from csa_closure.stages.resolve import resolve
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import stage_runs
from tests.conftest import _pg_server_url, _with_search_path
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    assert_balanced,
    final_chance_debt,
    ledger_rows,
    seal_pull,
    send_notices,
    states,
)

AS_OF = date(2019, 3, 31)
CHUNK = 10

# The killed process: a resolve whose progress reporter kills it (SIGKILL: no clean-up, no
# finally blocks) after a given number of committed chunks.
KILLED_RESOLVE = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date
    from csa_closure.context import Context, Settings
    from csa_closure.stages.resolve import resolve
    from csa_closure.store.engine import make_engine

    url, kill_after, chunk_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

    class KillAfter:
        chunks = 0
        def start(self, task, total): pass
        def finish(self, task): pass
        def advance(self, task, n=1):
            # called after each chunk's transaction has committed
            self.chunks += 1
            if self.chunks >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    ctx = Context(
        engine=make_engine(url), as_of=date(2019, 3, 31), actor="tester",
        settings=Settings(chunk_size=chunk_size),
    )
    resolve(ctx, progress=KillAfter())
    print("finished without being killed")
    """
)


def _build(ctx: Context) -> None:
    """A book with every kind of work for resolve, always built the same way (same ids)."""
    book = BookBuilder(ctx)
    for i in range(35):
        final_chance_debt(book, book.case(), 100_000 + i, AS_OF - timedelta(days=61 + i % 5))
    for i in range(25):
        case = book.case(nrp=book.party(employment=("EMPLOYED", "BENEFITS", "UNKNOWN")[i % 3]))
        book.debt(case, "PWC", 20_000 * (i + 1), state="collect_requested", response="COLLECT")
    for i in range(120):
        book.debt(
            book.case(),
            "SOS",
            1_000 + i,
            state="write_off_pending",
            outcome="write_off_silent",
            reason="SOS_DEBT",
            rule_id="SOS-05",
            ruleset_hash="h" * 64,
        )
    for i in range(40):
        book.debt(
            book.case(),
            "PWC",
            30_000 + i,
            state="write_off_pending",
            outcome="write_off_notice",
            reason="BELOW_THRESHOLD",
            rule_id="PWC-09",
            ruleset_hash="h" * 64,
        )
    seal_pull(ctx)
    send_notices(ctx)


@pytest.fixture
def twin_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, separate empty store on the same database kind as ``db_url``."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'twin.db'}"
        return
    server = _pg_server_url()
    assert server is not None
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _with_search_path(server, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


def _context(url: str, clock=None) -> Context:  # type: ignore[no-untyped-def]
    engine = make_engine(url)
    kwargs = {"clock": clock} if clock else {}
    return Context(
        engine=engine,
        as_of=AS_OF,
        actor="tester",
        settings=Settings(chunk_size=CHUNK),
        **kwargs,
    )


# chunks: expiry 4 (35 debts), collectability 3 (25), write-off 16 (160): kill in each step
@pytest.mark.parametrize("kill_after", [2, 6, 15])
def test_a_killed_resolve_run_again_writes_the_uninterrupted_ledger(
    store_url: str, twin_url: str, kill_after: int
) -> None:
    straight = _context(store_url)
    _build(straight)
    resolve(straight)
    expected = ledger_rows(straight)
    expected_states = states(straight)
    assert len(expected) == 160

    migrate.upgrade(make_engine(twin_url))
    killed = _context(twin_url)
    _build(killed)
    process = subprocess.run(
        [sys.executable, "-c", KILLED_RESOLVE, twin_url, str(kill_after), str(CHUNK)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert process.returncode == -signal.SIGKILL, process.stdout + process.stderr
    partial = ledger_rows(killed)
    assert len(partial) < len(expected)
    assert set(partial) <= set(expected)
    assert_balanced(killed)  # every committed chunk left the books balanced

    # run again once the dead run's lease has expired: it takes the lease over and finishes
    later = _context(twin_url, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    resolve(later)
    assert ledger_rows(later) == expected
    assert states(later) == expected_states
    assert_balanced(later)
    with later.engine.connect() as conn:
        runs = (
            conn.execute(
                select(stage_runs.c.status)
                .where(stage_runs.c.stage == "resolve")
                .order_by(stage_runs.c.run_id)
            )
            .scalars()
            .all()
        )
    assert runs == ["abandoned", "completed"]
    # and once more: nothing left to do
    assert resolve(later).written_off.debts == 0
    assert ledger_rows(later) == expected
