"""A run refused by a lease (exit 4) leaves its stage's history as it was: it is recorded as
``refused``, never as the stage's latest (failed) result. Driven as two operators would: the
first in a real second process held mid-pull, the second through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import ExitCode, LeaseHeld
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.store import failpoints
from csa_closure.store.runs import REFUSED, stage_run
from csa_closure.store.schema import stage_runs
from tests.conftest import context_for
from tests.support.builders import BookBuilder
from tests.support.resolve import seal_pull


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=200, seed=13, ensure_coverage=True)
    return path


def _runs(url: str, stage: str) -> list[tuple[str, str]]:
    ctx = context_for(url)
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(stage_runs.c.actor, stage_runs.c.status)
            .where(stage_runs.c.stage == stage)
            .order_by(stage_runs.c.run_id)
        ).all()
    ctx.engine.dispose()
    return [(r.actor, r.status) for r in rows]


def test_a_pull_refused_while_another_is_loading_does_not_block_assess(
    make_store: Callable[[], str], legacy_file: Path, tmp_path: Path
) -> None:
    url = make_store()
    base = ["--db", url, "--as-of", "2019-03-31"]
    pause = tmp_path / "alice.paused"
    env = {
        **os.environ,
        "CSA_CLOSURE_CHUNK_SIZE": "40",
        failpoints.ENV: "pull:1:after_commit:pause",
        failpoints.PAUSE_FILE_ENV: str(pause),
    }
    alice = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csa_closure",
            *base,
            "--actor",
            "alice",
            "pull",
            "--source",
            str(legacy_file),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not pause.exists():
            assert alice.poll() is None, alice.communicate()
            assert time.monotonic() < deadline, "alice's pull never reached its first chunk"
            time.sleep(0.02)
        bob = CliRunner().invoke(
            cli, [*base, "--actor", "bob", "pull", "--source", str(legacy_file)]
        )
        assert bob.exit_code == ExitCode.BUSY == 4, bob.output
        assert "stage:pull is being worked by alice@" in bob.output
        pause.unlink()
        _, err = alice.communicate(timeout=300)
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.communicate()
    assert alice.returncode == 0, err
    # bob's refusal is on record, but alice's completed pull is still the stage's result
    assert _runs(url, "pull") == [("alice", "completed"), ("bob", REFUSED)]
    assessed = CliRunner().invoke(cli, [*base, "assess", "--format", "json"])
    assert assessed.exit_code == 0, assessed.output
    assert json.loads(assessed.stdout)["decided"] > 0


# every stage that claims a lease, as the operator types it: (stage, lease, arguments)
CLAIMING_COMMANDS = [
    ("pull", "stage:pull", ["pull", "--source", "{legacy}"]),
    ("assess", "stage:assess", ["assess"]),
    ("resolve", "stage:resolve", ["resolve"]),
    ("transfer-export", "stage:transfer", ["transfer", "export", "--out", "{tmp}/cms"]),
    ("notify-build", "stage:notify-build", ["notify", "build"]),
    (
        "notify-sync",
        "stage:notify-sync",
        ["notify", "sync", "--channel", "fake-notify", "--fake-state", "{tmp}/fake"],
    ),
    ("responses", "stage:responses", ["responses", "import", "{tmp}/responses.csv"]),
    ("transfer-ack", "stage:transfer-ack", ["transfer", "ack", "{tmp}/ack.csv"]),
    ("archive", "stage:archive", ["archive", "--out", "{tmp}/archive"]),
]


@pytest.mark.parametrize(("stage", "lease", "args"), CLAIMING_COMMANDS, ids=lambda v: str(v))
def test_every_stage_refused_by_a_lease_leaves_its_history_as_it_was(
    ctx: Context,
    store_url: str,
    legacy_file: Path,
    tmp_path: Path,
    stage: str,
    lease: str,
    args: list[str],
) -> None:
    (tmp_path / "responses.csv").write_text(
        "document_id,case_ref,party,response,received_on,channel\n", encoding="utf-8"
    )
    (tmp_path / "ack.csv").write_text(
        "batch_id,case_ref,creditor,status,reason\n", encoding="utf-8"
    )
    argv = [a.format(legacy=legacy_file, tmp=tmp_path) for a in args]
    # a decided debt and a balanced pull: every command gets as far as its claim
    book = BookBuilder(ctx)
    book.debt(book.case("C000000001"), "PWC", 10_000, state="awaiting_letter")
    seal_pull(ctx)
    before = _runs(store_url, stage)
    with stage_run(ctx, "holder", {}, claims=[lease]):
        refused = CliRunner().invoke(cli, ["--db", store_url, "--as-of", "2019-03-31", *argv])
    assert refused.exit_code == ExitCode.BUSY, refused.output
    assert [status for _, status in _runs(store_url, stage)] == [
        *(status for _, status in before),
        REFUSED,
    ]


def test_every_refused_claim_is_recorded_refused_and_releases_what_it_took(ctx: Context) -> None:
    # assess claims two leases: refused on the second, it must give back the first
    with stage_run(ctx, "pull", {}, claims=["stage:pull"]):
        with (
            pytest.raises(LeaseHeld),
            stage_run(ctx, "assess", {}, claims=["stage:assess", "stage:pull"]),
        ):
            raise AssertionError("a refused run's body never runs")
        # the first lease it took was released: another assess may have it now
        with stage_run(ctx, "other", {}, claims=["stage:assess"]):
            pass
    with ctx.engine.connect() as conn:
        statuses = dict(conn.execute(select(stage_runs.c.stage, stage_runs.c.status)).all())
    assert statuses == {"pull": "completed", "assess": REFUSED, "other": "completed"}


def test_a_failed_pull_is_named_as_failed_not_as_unbalanced(ctx: Context) -> None:
    with pytest.raises(RuntimeError), stage_run(ctx, "pull", {}):
        raise RuntimeError("the source went away")
    from csa_closure.errors import UsageError
    from csa_closure.stages.assess import require_balanced_pull

    with ctx.engine.connect() as conn, pytest.raises(UsageError) as refused:
        require_balanced_pull(conn)
    assert "failed before it finished" in str(refused.value)
    assert "reconcile" not in str(refused.value)
