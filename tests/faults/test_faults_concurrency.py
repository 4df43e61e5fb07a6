"""Two operators on one PostgreSQL store: one proceeds, the other is refused, nothing happens
twice; and a dead operator's lease on another machine is taken over once it has run out.

From the programme's snapshots (tests/support/faults.py), each stage's command is started by
alice in her own process and held (a failpoint ``pause``) in the middle of its work: after its first
chunk committed, or with its transaction open, or with letters handed to Notify and not yet
recorded. While she holds it, bob runs the same command (or one that needs the same claim): he
is refused with exit 4 and a message naming alice's process, and his refused attempt is
recorded as a refused run that changed nothing (not as the stage's latest, failed, result).
Then alice carries on to the end, bob runs again (nothing is left for him), and the book is
exactly what one uninterrupted run makes.

PostgreSQL only: it is the shared store several operators use at once (SQLite is the
single-operator default).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from csa_closure.context import Context
from csa_closure.errors import LeaseHeld
from csa_closure.simulation.demo import DemoSettings
from csa_closure.store import leases as lease_store
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine
from csa_closure.store.runs import stage_run
from tests.conftest import _pg_server_url
from tests.support.faults import (
    Calendar,
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
    spawn_cli,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SETTINGS = DemoSettings(cases=300, seed=2019, daily_letter_limit=100, chunk_size=20)
HOST = socket.gethostname()

# stage -> where alice's run is held while bob tries
HELD_AT = {
    "pull": "pull:1:after_commit",
    "assess": "assess:2:after_commit",
    "notify-build": "notify-build:1:after_commit",
    "notify-send": "notify-send:3:after_send",  # Notify has letters the store has not recorded
    "notify-send-print": "notify-send:1:after_write",  # the files are written, not recorded
    "notify-sync": "notify-sync:1:before_commit",
    "responses-import": "responses:1:before_commit",  # its one transaction open
    "resolve": "resolve:1:after_commit",
    "transfer-export": "transfer-export:1:after_commit",  # batch recorded, no files yet
    "transfer-ack": "transfer-ack:1:before_commit",
    "archive": "archive:1:before_commit",
}


@pytest.fixture(scope="module")
def programme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Programme]:
    databases = Databases(str(_pg_server_url()))
    try:
        yield Programme(tmp_path_factory.mktemp("programme"), databases, SETTINGS).run()
    finally:
        databases.close()


def _clean(programme: Programme, label: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    if label not in programme.clean_runs:
        step = programme.steps[label]
        url = programme.restore(label)
        calendar = step.calendar()
        align_fake_notify(programme.work, calendar)
        # as alice: decisions and ledger entries name who made them
        outcome = run_cli(step.argv(url, actor="alice"), cwd=programme.work, calendar=calendar)
        assert outcome.exit_code == 0, outcome.output
        programme.clean_runs[label] = (book_state(url, actors=False), files_state(programme.work))
    return programme.clean_runs[label]  # type: ignore[no-any-return]


def _runs(url: str, stage: str) -> list[tuple[str, str, str | None]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [
                (r.actor, r.status, r.error)
                for r in conn.execute(
                    text(
                        "SELECT actor, status, error FROM stage_runs WHERE stage = :s "
                        "ORDER BY run_id"
                    ),
                    {"s": stage},
                )
            ]
    finally:
        engine.dispose()


@pytest.mark.parametrize("label", sorted(HELD_AT))
def test_a_second_operator_is_refused_while_the_first_works_and_nothing_happens_twice(
    programme: Programme, label: str, tmp_path: Path
) -> None:
    clean_book, clean_files = _clean(programme, label)
    step = programme.steps[label]
    url = programme.restore(label)
    calendar = step.calendar()
    align_fake_notify(programme.work, calendar)
    alice = Paused(
        step.argv(url, actor="alice"),
        cwd=programme.work,
        calendar=calendar,
        failpoint=HELD_AT[label],
        pause_file=tmp_path / "alice.paused",
    )
    try:
        alice.wait_paused()
        before = book_state(url, actors=False)
        bob = spawn_cli(
            step.argv(url, actor="bob"), cwd=programme.work, calendar=calendar, timeout=60
        )
        assert bob.returncode == 4, bob.stdout + bob.stderr
        holder = f"alice@{HOST} pid {alice.process.pid}"
        assert "is being worked by" in bob.stderr and holder in bob.stderr, bob.stderr
        assert "Traceback" not in bob.stderr
        # bob's refusal changed nothing (only his refused run is recorded)
        assert (
            difference(
                {k: v for k, v in before.items() if k != "runs"},
                {k: v for k, v in book_state(url, actors=False).items() if k != "runs"},
            )
            == {}
        )
        finished = alice.release()
    finally:
        alice.kill()
    assert finished.returncode == 0, finished.stderr
    again = run_cli(step.argv(url, actor="bob"), cwd=programme.work, calendar=calendar)
    if label == "archive":
        # the directory now holds alice's finished archive: a second one is refused there
        assert again.exit_code == 2 and "already holds a finished archive" in again.output
    else:
        assert again.exit_code == 0, again.output

    book = book_state(url, actors=False)
    problems = compare_books(clean_book, book)
    problems.pop("runs", None)  # bob's runs; checked below
    assert problems == {}
    assert difference(clean_files, files_state(programme.work)) == {}
    assert all(n == 1 for n in fake_notify_counts(programme.work).values())
    runs = _runs(url, HELD_AT[label].split(":")[0])
    assert [r[:2] for r in runs if r[0] == "alice"] == [("alice", "completed")]
    bobs = [r for r in runs if r[0] == "bob"]
    assert bobs[0][1] == "refused" and holder in (bobs[0][2] or "")  # his refusal, on record


def test_assess_is_refused_while_a_pull_is_loading(programme: Programme, tmp_path: Path) -> None:
    """Assess claims the pull's lease too: it never decides a book half loaded (here the
    legacy team's corrected replica, whose cases are being added)."""
    pull, assess = programme.steps["pull-corrected"], programme.steps["assess"]
    url = programme.restore("pull-corrected")
    calendar = pull.calendar()
    alice = Paused(
        pull.argv(url, actor="alice"),
        cwd=programme.work,
        calendar=calendar,
        failpoint="pull:2:after_commit",
        pause_file=tmp_path / "alice.paused",
    )
    try:
        alice.wait_paused()
        bob = spawn_cli(
            [*pull.argv(url, actor="bob")[:6], *assess.args],
            cwd=programme.work,
            calendar=calendar,
            timeout=60,
        )
        assert bob.returncode == 4, bob.stderr
        assert f"stage:pull is being worked by alice@{HOST} pid {alice.process.pid}" in bob.stderr
        finished = alice.release()
    finally:
        alice.kill()
    assert finished.returncode == 0, finished.stderr
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            decided = conn.execute(
                text("SELECT count(*) FROM debts WHERE state = 'pulled'")
            ).scalar()
            runs = conn.execute(
                text("SELECT status FROM stage_runs WHERE actor = 'bob' AND stage = 'assess'")
            ).scalars()
            assert decided and list(runs) == ["refused"]  # the new cases wait, undecided
    finally:
        engine.dispose()


def test_operators_starting_at_once_get_exactly_one_winner(
    programme: Programme, tmp_path: Path
) -> None:
    """Four operators start resolve at the same moment: the compare-and-set lets exactly one
    in; the other three are refused; the book ends as one resolve makes it."""
    clean_book, _ = _clean(programme, "resolve")
    step = programme.steps["resolve"]
    url = programme.restore("resolve")
    calendar = step.calendar()
    operators = [
        Paused(
            step.argv(url, actor=f"operator{n}"),
            cwd=programme.work,
            calendar=calendar,
            failpoint="resolve:1:after_commit",
            pause_file=tmp_path / f"operator{n}.paused",
        )
        for n in range(4)
    ]
    try:
        wait_until(
            lambda: all(o.paused or o.process.poll() is not None for o in operators),
            "every operator to pause or be refused",
        )
        winners = [o for o in operators if o.paused]
        losers = [o for o in operators if not o.paused]
        assert len(winners) == 1
        for loser in losers:
            _, err = loser.process.communicate()
            assert loser.process.returncode == 4, err
            assert "is being worked by" in err
        finished = winners[0].release()
        assert finished.returncode == 0, finished.stderr
    finally:
        for operator in operators:
            operator.kill()
    problems = compare_books(clean_book, book_state(url, actors=False))
    problems.pop("runs", None)
    assert problems == {}


def test_a_dead_operators_lease_on_another_machine_is_taken_over_once_it_runs_out(
    programme: Programme,
) -> None:
    """Alice's resolve died on her machine (another host): her lease is not taken at once,
    since nobody here can tell her process is dead; once it has run out (5 minutes), bob's
    resolve takes it over, records who took it from whom, and finishes her work exactly."""
    clean_book, _ = _clean(programme, "resolve")
    step = programme.steps["resolve"]
    url = programme.restore("resolve")
    calendar = step.calendar()
    died = spawn_cli(
        step.argv(url, actor="alice"),
        cwd=programme.work,
        calendar=calendar,
        failpoint="resolve:2:after_commit",
    )
    assert died.returncode == -9, died.stderr
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            # her run was on her own laptop: the lease names that machine
            conn.execute(
                text(
                    "UPDATE leases SET holder = 'alice@ops-laptop-7 pid 4242' "
                    "WHERE name = 'stage:resolve'"
                )
            )
            conn.execute(text("UPDATE stage_runs SET host = 'ops-laptop-7' WHERE actor = 'alice'"))
        refused = spawn_cli(step.argv(url, actor="bob"), cwd=programme.work, calendar=calendar)
        assert refused.returncode == 4, refused.stderr
        assert "alice@ops-laptop-7 pid 4242" in refused.stderr
        assert "after the lease expires" in refused.stderr

        later = Calendar(calendar.start + timedelta(minutes=6), calendar.anchor)
        taken = run_cli(step.argv(url, actor="bob"), cwd=programme.work, calendar=later)
        assert taken.exit_code == 0, taken.output
        with engine.connect() as conn:
            takeover = conn.execute(
                text("SELECT actor, detail FROM events WHERE event_type = 'lease.taken_over'")
            ).one()
            statuses = conn.execute(
                text("SELECT actor, status FROM stage_runs WHERE stage = 'resolve' ORDER BY run_id")
            ).all()
    finally:
        engine.dispose()
    detail = takeover.detail
    assert takeover.actor == "bob"
    assert detail["previous_holder"] == "alice@ops-laptop-7 pid 4242"
    assert detail["new_holder"].startswith(f"bob@{HOST} pid ")
    assert detail["why"] == "lease expired"
    assert [tuple(s) for s in statuses] == [
        ("alice", "abandoned"),
        ("bob", "refused"),
        ("bob", "completed"),
    ]
    problems = compare_books(clean_book, book_state(url, actors=False))
    problems.pop("runs", None)
    assert problems == {}


@pytest.mark.parametrize("moment", ["after_reading_it", "after_trying_to_take_it"])
def test_a_lease_let_go_while_another_operator_asks_for_it_is_never_a_crash_or_a_takeover(
    pg_schema_url: str, moment: str
) -> None:
    """The holder releases its lease at the worst moment for a second operator asking for it:
    just after he read it, or just after his compare-and-set failed. He is refused cleanly
    (or takes the free lease); never a crash, and never a takeover recorded of a lease its
    holder let go. (The refusal used to be written from a second read, and crashed with a
    TypeError when that read found the lease released; and a lease released after the read
    was recorded as taken over from a holder whose lease had not expired.)"""
    engine = make_engine(pg_schema_url)
    migrate.upgrade(engine)
    bob_engine = make_engine(pg_schema_url)
    alice = Context(engine=engine, as_of=date(2019, 4, 1), actor="alice")
    bob = Context(engine=bob_engine, as_of=date(2019, 4, 1), actor="bob")
    fired: list[str] = []
    try:
        with stage_run(alice, "resolve", {}, claims=["stage:resolve"]) as run:

            def let_go(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                reading = statement.startswith("SELECT") and "leases.expires_at" in statement
                trying = statement.startswith("UPDATE leases SET token")
                if not fired and (reading if moment == "after_reading_it" else trying):
                    fired.append(statement)
                    with engine.begin() as other:
                        lease_store.release(other, run.leases[0])

            event.listen(bob_engine, "after_cursor_execute", let_go)
            try:
                with stage_run(bob, "resolve", {}, claims=["stage:resolve"]):
                    outcome = "took the free lease"
            except LeaseHeld as refused:
                outcome = "refused"
                assert "is being worked by alice@" in str(refused)
        with engine.connect() as conn:
            takeovers = conn.execute(
                text("SELECT count(*) FROM events WHERE event_type = 'lease.taken_over'")
            ).scalar()
    finally:
        event.remove(bob_engine, "after_cursor_execute", let_go)
        engine.dispose()
        bob_engine.dispose()
    assert outcome in ("refused", "took the free lease")
    assert takeovers == 0
