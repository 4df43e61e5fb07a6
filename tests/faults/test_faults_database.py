"""The database going away mid-stage: PostgreSQL stopped while a stage works, then started
again. The stage fails cleanly (a clear one-line error, non-zero exit, no traceback, no
personal data), leaves nothing half-written (every committed chunk whole, the books balanced),
and the operator's re-run completes, ending exactly as an uninterrupted run.

The stage is held at a failpoint (``pause``) at the moment chosen (a chunk's transaction open;
between chunks; letters handed to Notify and not yet recorded), the server is stopped, the
stage released into the dead connection, and the server started again. The server is down
for a few seconds only, inside this test, and is always started again.

The whole server is stopped (``pg_ctlcluster``), so this needs the local test cluster; a
lighter variant that only cuts the stage's own connections (``pg_terminate_backend``) runs
every time, for more stages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from csa_closure.reconcile import reconcile
from csa_closure.simulation.demo import DemoSettings
from tests.conftest import _pg_server_url, context_for
from tests.support.faults import (
    Databases,
    Paused,
    Programme,
    align_fake_notify,
    book_state,
    compare_books,
    difference,
    fake_notify_counts,
    files_state,
    run_cli,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SETTINGS = DemoSettings(cases=300, seed=2019, daily_letter_limit=100, chunk_size=20)
# (stage, where the stage is held when the database goes)
MOMENTS = [
    ("resolve", "resolve:2:before_commit"),  # a write-off chunk's transaction open
    ("pull", "pull:3:after_commit"),  # between chunks
    ("notify-send", "notify-send:3:after_send"),  # Notify has letters the store has not recorded
]
CUT_MOMENTS = [
    *MOMENTS,
    ("assess", "assess:2:before_commit"),
    ("transfer-export", "transfer-export:1:after_commit"),
    ("responses-import", "responses:1:before_commit"),
    ("notify-build", "notify-build:2:before_commit"),
]


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Programme]:
    databases = Databases(str(_pg_server_url()))
    try:
        yield Programme(tmp_path_factory.mktemp("programme"), databases, SETTINGS).run()
    finally:
        databases.close()


def _cluster() -> tuple[str, str]:
    """The local cluster serving the test database (version, name), or skip."""
    url = make_url(str(_pg_server_url()))
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if (
        url.host not in ("127.0.0.1", "localhost")
        or not versions
        or not shutil.which("pg_ctlcluster")
    ):
        pytest.skip("stopping PostgreSQL needs the local test cluster and pg_ctlcluster")
    return versions[-1], "main"


def _ready(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextmanager
def database_down() -> Iterator[None]:
    """PostgreSQL stopped for the body, and always started again after it."""
    version, cluster = _cluster()
    server = str(_pg_server_url())

    def ctl(action: str) -> None:
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, cluster, action],
            check=True,
            capture_output=True,
            timeout=120,
        )

    ctl("stop")
    try:
        assert not _ready(server)
        yield
    finally:
        ctl("start")
        wait_until(lambda: _ready(server), "PostgreSQL to accept connections again", 120)


def _cut_connections(url: str) -> None:
    """Terminate every session on the stage's database (as a server restart would)."""
    database = make_url(url).database
    engine = create_engine(str(_pg_server_url()), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :d AND pid <> pg_backend_pid()"
                ),
                {"d": database},
            )
    finally:
        engine.dispose()


def _personal_tokens(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT family_name, nino, postcode, address_line_1 FROM parties")
            ).all()
    finally:
        engine.dispose()
    return {v for row in rows for v in row if v and len(v) >= 6}


def _clean(programme: Programme, label: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    if label not in programme.clean_runs:
        step = programme.steps[label]
        url = programme.restore(label)
        calendar = step.calendar()
        align_fake_notify(programme.work, calendar)
        outcome = run_cli(step.argv(url), cwd=programme.work, calendar=calendar)
        assert outcome.exit_code == 0, outcome.output
        programme.clean_runs[label] = (book_state(url), files_state(programme.work))
    return programme.clean_runs[label]  # type: ignore[no-any-return]


def _stage_fails_cleanly_then_completes(
    programme: Programme, label: str, moment: str, tmp_path: Path, go_away: str
) -> None:
    clean_book, clean_files = _clean(programme, label)
    step = programme.steps[label]
    url = programme.restore(label)
    calendar = step.calendar()
    align_fake_notify(programme.work, calendar)
    stage = Paused(
        step.argv(url),
        cwd=programme.work,
        calendar=calendar,
        failpoint=moment,
        pause_file=tmp_path / "stage.paused",
    )
    try:
        stage.wait_paused()
        if go_away == "server stopped":
            with database_down():
                failed = stage.release()
        else:
            _cut_connections(url)
            failed = stage.release()
    finally:
        stage.kill()

    if failed.returncode == 0 and go_away == "connections cut":
        # between transactions a cut connection is just replaced (the pool checks each one
        # before use): the stage carried on and finished, as if nothing had happened
        assert difference(clean_book, book_state(url)) == {}
        assert difference(clean_files, files_state(programme.work)) == {}
        return
    # failed cleanly: an exit code, one clear message, no traceback, no personal data
    assert failed.returncode not in (0, -9), failed.stderr
    assert "Traceback" not in failed.stderr and "Traceback" not in failed.stdout
    assert "re-running the command is safe" in failed.stderr, failed.stderr
    assert "lost the connection to the database" in failed.stderr, failed.stderr
    leaked = {t for t in _personal_tokens(url) if t in failed.stderr + failed.stdout}
    assert leaked == set()
    # nothing half-written: every committed chunk whole, nothing the clean run did not do
    partial = book_state(url)
    for part in ("cases", "ledger", "debt_events", "transfer_items", "responses"):
        assert not partial[part] - clean_book[part], part
    pulled = Counter((c, d) for c, d, kind, *_ in partial["debt_events"] if kind == "debt.pulled")
    assert sum(partial["debts"].values()) == sum(pulled.values()) == len(pulled)
    if label != "pull":  # (a pull's control totals are recorded when it completes)
        ctx = context_for(url)
        try:
            assert reconcile(ctx).balanced
        finally:
            ctx.engine.dispose()

    # the operator runs it again: it takes the dead run's lease over and finishes the work
    again = run_cli(step.argv(url), cwd=programme.work, calendar=calendar)
    assert again.exit_code == 0, again.output
    assert compare_books(clean_book, book_state(url)) == {}
    assert difference(clean_files, files_state(programme.work)) == {}
    assert all(n == 1 for n in fake_notify_counts(programme.work).values())


@pytest.mark.parametrize(("label", "moment"), MOMENTS)
def test_the_server_stopped_mid_stage_fails_it_cleanly_and_a_rerun_completes(
    programme: Programme, label: str, moment: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    _stage_fails_cleanly_then_completes(programme, label, moment, tmp_path, "server stopped")
    assert time.monotonic() - started < 120


@pytest.mark.parametrize(("label", "moment"), CUT_MOMENTS)
def test_the_stages_connections_cut_mid_stage_fail_it_cleanly_and_a_rerun_completes(
    programme: Programme, label: str, moment: str, tmp_path: Path
) -> None:
    _stage_fails_cleanly_then_completes(programme, label, moment, tmp_path, "connections cut")
