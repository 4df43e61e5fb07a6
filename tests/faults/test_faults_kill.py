"""Every writing stage killed at a random point and run again ends as an uninterrupted run.

The whole programme runs once (the demo's simulation of a 300-case book, tests/support/faults.py),
keeping a snapshot of the store and of its directory before one step of each writing stage:
pull (the first pull and the corrected replica's), assess, notify build, approve, send (through
the fake Notify, and as print files), sync, responses import, review decide-file, resolve,
transfer export, transfer ack and archive. For each stage, from its snapshot:

- the operator's command runs once, cleanly, counting the failpoints it passes (chunk
  transactions' ``before_commit`` and ``after_commit``, a send's ``after_send``, a print
  batch's ``after_write``);
- from the same snapshot, the same command runs in a separate process that is killed (a real
  SIGKILL, by the failpoint) at a point drawn from those, with a seeded generator: draw 0 a
  ``before_commit`` (work done, nothing committed), draw 1 any later point (a chunk committed,
  a letter handed to Notify, files written); then the command runs again, as an operator would;
- both stores are compared by natural keys (tests/support/faults.py: no surrogate ids, run ids or
  timestamps): cases, parties, payments, debts (state, outcome, reason, rule, dates, flags),
  quarantine, the ledger, letters (debt, purpose, recipient, status, reasons, channel, date),
  what became of each letter, every debt's events, responses, imports and their rejections,
  transfer batches and items, and the files the stage wrote (print files, CMS packages,
  rejects files, the archive's counts and totals); the fake Notify must have received each
  letter exactly once. Only what ``LOOSE`` in tests/support/faults.py lists may differ (the killed
  run's own record, its lease, the conservative send quota).

Set CSA_CLOSURE_FAULT_SEED to draw other kill points (the default is fixed, so runs repeat).
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from csa_closure.reconcile import reconcile
from csa_closure.simulation.demo import DemoSettings
from csa_closure.store.engine import make_engine
from tests.conftest import _pg_server_url, context_for
from tests.support.faults import (
    CHUNK_SIZE,
    CliOutcome,
    Databases,
    Programme,
    align_fake_notify,
    book_state,
    compare_books,
    difference,
    files_state,
    run_cli,
    spawn_cli,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CSA_CLOSURE_FAULT_SEED", "2019"))
SETTINGS = DemoSettings(cases=300, seed=2019, daily_letter_limit=100, chunk_size=20)
STAGES = (
    "pull",
    "assess",
    "notify-build",
    "notify-approve",
    "notify-send",
    "notify-send-print",
    "notify-sync",
    "pull-corrected",
    "responses-import",
    "review-decide-file",
    "resolve",
    "transfer-export",
    "transfer-ack",
    "archive",
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def programme(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Programme]:
    databases = Databases(str(_pg_server_url())) if request.param == "postgresql" else None
    try:
        root = tmp_path_factory.mktemp(f"programme-{request.param}")
        yield Programme(root, databases, SETTINGS).run()
    finally:
        if databases is not None:
            databases.close()


class CleanRun:
    def __init__(self, outcome: CliOutcome, book: dict[str, Any], files: dict[str, Any]):
        self.outcome, self.book, self.files = outcome, book, files


def clean_run(programme: Programme, label: str) -> CleanRun:
    """The stage's command run once from its snapshot, uninterrupted (once per programme)."""
    if label not in programme.clean_runs:
        step = programme.steps[label]
        url = programme.restore(label)
        calendar = step.calendar()
        align_fake_notify(programme.work, calendar)
        outcome = run_cli(step.argv(url), cwd=programme.work, calendar=calendar)
        assert outcome.exit_code == 0, outcome.output
        assert sum(outcome.arrivals.values()) >= 2, "the stage passed no failpoint"
        programme.clean_runs[label] = CleanRun(
            outcome, book_state(url), files_state(programme.work)
        )
    return programme.clean_runs[label]


def kill_point(arrivals: dict[tuple[str, str], int], label: str, draw: int) -> str:
    """Draw 0: a ``before_commit``; draw 1: any point after a commit. Seeded, so repeatable."""
    rng = random.Random(f"{SEED}:{label}:{draw}")
    points = sorted(p for p in arrivals if (p[1] == "before_commit") == (draw == 0))
    stage, where = rng.choice(points)
    return f"{stage}:{rng.randint(1, arrivals[(stage, where)])}:{where}"


@pytest.mark.parametrize("draw", [0, 1])
@pytest.mark.parametrize("label", STAGES)
def test_a_stage_killed_at_a_random_point_and_run_again_ends_as_an_uninterrupted_run(
    programme: Programme, label: str, draw: int
) -> None:
    clean = clean_run(programme, label)
    failpoint = kill_point(clean.outcome.arrivals, label, draw)
    step = programme.steps[label]
    url = programme.restore(label)
    calendar = step.calendar()
    align_fake_notify(programme.work, calendar)

    died = spawn_cli(step.argv(url), cwd=programme.work, calendar=calendar, failpoint=failpoint)
    assert died.returncode == -signal.SIGKILL, f"{failpoint} did not kill: {died.stderr[-2000:]}"
    again = run_cli(step.argv(url), cwd=programme.work, calendar=calendar)
    if label == "notify-approve" and "already approved" in again.output:
        # killed after its commit: the batch is approved, and approving again is a no-op
        assert failpoint.endswith("after_commit")
    assert again.exit_code == clean.outcome.exit_code, again.output

    book = book_state(url)
    assert compare_books(clean.book, book) == {}, failpoint
    files = files_state(programme.work)
    assert difference(clean.files, files) == {}, failpoint
    assert all(n == 1 for n in files["notify"].values())  # each letter reached Notify once
    ctx = context_for(url)
    try:
        assert reconcile(ctx).balanced
    finally:
        ctx.engine.dispose()
    if label == "archive":
        # the archive the re-run wrote is the one verified, and the legacy systems may go
        for command in (
            ["archive", "verify", str(programme.work / "archive")],
            ["decommission", "check"],
        ):
            checked = run_cli(
                [*step.argv(url)[:6], *command], cwd=programme.work, calendar=calendar
            )
            assert checked.exit_code == 0, checked.output


def test_a_build_killed_part_way_leaves_its_smaller_batch_on_record(
    programme: Programme,
) -> None:
    """The killed build's batch (its first chunk committed) stays, with its ``batch.built``
    event; the re-run builds the rest into a new batch, also on record. (The event used to be
    written after the last chunk, so a killed build's batch had none.)"""
    step = programme.steps["notify-build"]
    url = programme.restore("notify-build")
    calendar = step.calendar()
    died = spawn_cli(
        step.argv(url),
        cwd=programme.work,
        calendar=calendar,
        failpoint="notify-build:1:after_commit",
    )
    assert died.returncode == -signal.SIGKILL, died.stderr
    again = run_cli(step.argv(url), cwd=programme.work, calendar=calendar)
    assert again.exit_code == 0, again.output
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            built = conn.execute(
                text(
                    "SELECT b.batch_id, b.letter_count, b.built_run_id FROM letter_batches b "
                    "WHERE b.status = 'built'"
                )
            ).all()
            recorded = Counter(
                conn.execute(
                    text("SELECT entity FROM events WHERE event_type = 'batch.built'")
                ).scalars()
            )
    finally:
        engine.dispose()
    assert len(built) == 2 and len({b.built_run_id for b in built}) == 2
    assert 0 < min(b.letter_count for b in built) <= CHUNK_SIZE
    assert recorded == Counter({f"batch:{b.batch_id}": 1 for b in built})


def test_the_programme_reached_every_stage(programme: Programme) -> None:
    assert set(programme.steps) == set(STAGES)
