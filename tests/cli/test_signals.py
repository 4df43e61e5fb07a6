"""Ctrl-C and SIGTERM end a stage cleanly: a real signal to a real subprocess mid-chunk, then
no traceback, the open chunk rolled back, the run marked interrupted, its lease released,
exit 130 / 143; a re-run continues to the same book as an uninterrupted pull."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from csa_closure.cli import cli
from csa_closure.errors import ExitCode
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.store import failpoints
from tests.conftest import context_for


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=200, seed=17, ensure_coverage=True)
    return path


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_mid_chunk_ends_the_pull_cleanly_and_a_re_run_continues(
    make_store: Callable[[], str],
    legacy_file: Path,
    tmp_path: Path,
    signum: signal.Signals,
    code: ExitCode,
) -> None:
    url = make_store()
    command = [sys.executable, "-m", "csa_closure", "--db", url, "--as-of", "2019-03-31"]
    command += ["pull", "--source", str(legacy_file), "--format", "json"]
    pause = tmp_path / "paused"
    env = {
        **os.environ,
        "CSA_CLOSURE_CHUNK_SIZE": "40",
        failpoints.ENV: "pull:2:before_commit:pause",  # the second chunk's transaction open
        failpoints.PAUSE_FILE_ENV: str(pause),
    }
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not pause.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the pull never reached its second chunk"
            time.sleep(0.02)
        process.send_signal(signum)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == code, err
    assert "Traceback" not in err and err.count("\n") == 1, err  # one line
    assert "stopped by" in err and "run the command again" in err

    ctx = context_for(url)
    with ctx.engine.connect() as conn:
        loaded = conn.execute(text("SELECT count(*) FROM cases")).scalar()
        run = conn.execute(text("SELECT status, error FROM stage_runs")).one()
        token = conn.execute(text("SELECT token FROM leases WHERE name = 'stage:pull'")).scalar()
    assert loaded == 40  # the first chunk only: the open one rolled back
    assert run.status == "interrupted" and "rolled back" in run.error
    assert token is None  # the lease was released: a re-run need not wait for it
    # the half-loaded book is not decided: assess says to finish the pull first
    early = CliRunner().invoke(cli, ["--db", url, "--as-of", "2019-03-31", "assess"])
    assert early.exit_code == ExitCode.NOT_READY, early.output
    assert "was interrupted before it finished" in early.output

    del env[failpoints.ENV]
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["balanced"] is True
    with ctx.engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM stage_runs ORDER BY run_id")).scalars()
        assert list(statuses) == ["interrupted", "completed"]
    ctx.engine.dispose()
    assessed = CliRunner().invoke(cli, ["--db", url, "--as-of", "2019-03-31", "assess"])
    assert assessed.exit_code == 0, assessed.output
