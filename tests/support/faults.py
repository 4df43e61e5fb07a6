"""Machinery for the fault tests (no tests here).

- :class:`Programme` runs the whole closure programme once (the demo's event-driven
  simulation, on SQLite or on a PostgreSQL database) and keeps a snapshot of the store and of
  the demo's directory just before chosen stage steps, with the command an operator would type
  for that step (:class:`Step`). :meth:`Programme.restore` puts a snapshot back, so a test can
  run one stage from the same starting point as often as it likes: once cleanly, once killed
  and re-run.
- :func:`run_cli` runs a ``csa-closure`` command in this process (counting the failpoints it
  passes), :func:`spawn_cli` in a separate process (``python -m tests.support.faults``), optionally
  with a failpoint. Both run with the store's clock pinned to the demo's calendar (an hour
  after the demo's own noon on the step's day), as if the operator had typed the command on
  that day; the fake Notify service is moved to the same calendar (:func:`align_fake_notify`).
- :class:`Paused` starts a command in its own process that stops at a failpoint
  (``STAGE:N:WHERE:pause``) and waits there, holding its lease (and, at ``before_commit``, its
  transaction), until the test releases it: a second operator, or the database going away.
- :func:`book_state` is the store's content by natural keys (case reference and creditor,
  letter purpose and recipient, file checksums), with no surrogate ids, run ids or
  timestamps, so two stores that did the same work compare equal; :func:`files_state` is the
  same for the files a stage writes; :func:`compare_books` compares a killed and re-run
  stage's store with an uninterrupted one's, allowing only what ``LOOSE`` lists.
- :class:`Databases` makes PostgreSQL databases (from template databases: a snapshot is a
  template) and drops them.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import polars as pl
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from csa_closure.simulation.decisions import write_decisions_file
from csa_closure.simulation.demo import (
    CASEWORKER,
    OPERATOR,
    Demo,
    DemoSettings,
    prepare_directory,
)
from csa_closure.store import failpoints
from csa_closure.store.engine import make_engine

REPO = Path(__file__).resolve().parents[2]
STORE_FILE = "csa_closure.db"  # the demo's embedded store, in its directory
CHUNK_SIZE = 20  # the chunk size of every command the fault tests run
FAKE_NOTIFY_STATE = "fake-notify.db"  # the demo's fake Notify, in its directory


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One stage step of the programme: the command an operator types, on the demo's day."""

    label: str
    day: date
    actor: str
    args: tuple[str, ...]  # after the global options

    def calendar(self) -> Calendar:
        """The demo's calendar for this step, starting now: an hour after the demo's noon on
        the step's day (after everything the demo did that day)."""
        return Calendar(datetime.combine(self.day, clock_time(13, 0), UTC), time.time())

    def argv(self, store_url: str, *, actor: str | None = None) -> list[str]:
        return [
            "--db",
            store_url,
            "--as-of",
            self.day.isoformat(),
            "--actor",
            actor or self.actor,
            *self.args,
        ]


@dataclass(frozen=True)
class Calendar:
    """The demo's time: ``start`` at the real instant ``anchor`` (seconds since the epoch), and
    moving with the real clock from there. Every process of one test shares it, so a re-run
    is always later than the run it follows."""

    start: datetime
    anchor: float

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.time() - self.anchor)


@contextlib.contextmanager
def pinned_clock(calendar: Calendar) -> Iterator[None]:
    """Commands built by the CLI in this process get ``calendar``'s clock."""
    from csa_closure.cli import params
    from csa_closure.context import Context

    original = params.Context
    params.Context = functools.partial(Context, clock=calendar.now)  # type: ignore[misc]
    try:
        yield
    finally:
        params.Context = original  # type: ignore[misc]


@dataclass
class CliOutcome:
    exit_code: int
    output: str
    arrivals: Counter[tuple[str, str]] = field(default_factory=Counter)


def run_cli(
    argv: Sequence[str],
    *,
    cwd: Path,
    calendar: Calendar,
    env: Mapping[str, str] | None = None,
) -> CliOutcome:
    """Run ``csa-closure ARGV`` in this process; count every failpoint it passes."""
    from csa_closure.cli import cli

    arrivals: Counter[tuple[str, str]] = Counter()
    real_reach = failpoints.reach

    def count(stage: str, where: str) -> None:
        arrivals[(stage, where)] += 1

    environment = {"CSA_CLOSURE_CHUNK_SIZE": str(CHUNK_SIZE), **(env or {})}
    failpoints.reach = count  # type: ignore[assignment]
    try:
        with pinned_clock(calendar), contextlib.chdir(cwd):
            result = CliRunner().invoke(cli, list(argv), env=environment)
    finally:
        failpoints.reach = real_reach  # type: ignore[assignment]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliOutcome(result.exit_code, result.output, arrivals)


def spawn_cli(
    argv: Sequence[str],
    *,
    cwd: Path,
    calendar: Calendar,
    failpoint: str | None = None,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = 300,
) -> Any:
    """Run ``csa-closure ARGV`` in a new process (``python -m tests.support.faults``), with the
    failpoint if given. Returns the finished process, or the running one if not ``wait``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(failpoints.ENV)} | {
        "PYTHONPATH": str(REPO),
        "CSA_CLOSURE_CHUNK_SIZE": str(CHUNK_SIZE),
        **(env or {}),
    }
    if failpoint:
        environment[failpoints.ENV] = failpoint
    command = [
        sys.executable,
        "-m",
        "tests.support.faults",
        calendar.start.isoformat(),
        repr(calendar.anchor),
        *argv,
    ]
    if not wait:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return subprocess.run(
        command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Paused:
    """A command started in its own process that stops at a failpoint (``STAGE:N:WHERE``) and
    waits there, holding what it holds, until :meth:`release`."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        calendar: Calendar,
        failpoint: str,
        pause_file: Path,
    ) -> None:
        self.pause_file = pause_file
        self.process = spawn_cli(
            argv,
            cwd=cwd,
            calendar=calendar,
            failpoint=f"{failpoint}:pause",
            env={failpoints.PAUSE_FILE_ENV: str(pause_file)},
            wait=False,
        )

    @property
    def paused(self) -> bool:
        return self.pause_file.exists()

    def wait_paused(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                raise AssertionError(f"exited {self.process.returncode} before pausing: {err}")
            return self.paused

        wait_until(ready, "the first operator's run to reach its failpoint")

    def release(self) -> subprocess.CompletedProcess[str]:
        self.pause_file.unlink(missing_ok=True)
        out, err = self.process.communicate(timeout=300)
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def align_fake_notify(directory: Path, calendar: Calendar) -> None:
    """Move the fake Notify service in ``directory`` (if any) onto the demo's calendar, so the
    letters it accepts and the statuses it reports are dated as the demo's."""
    state = directory / FAKE_NOTIFY_STATE
    if not state.exists():
        return
    from csa_closure.simulation.fake_notify import FakeNotify

    service = FakeNotify(state)
    try:
        service.advance(seconds=(calendar.now() - service.now()).total_seconds())
    finally:
        service.close()


# --- PostgreSQL databases ---------------------------------------------------------------------


class Databases:
    """PostgreSQL databases on the test server, made empty or from a template; all dropped by
    :meth:`close`."""

    def __init__(self, server_url: str) -> None:
        self.server = make_url(server_url)
        self.admin = create_engine(self.server, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
        self.prefix = f"csa_faults_{uuid.uuid4().hex[:10]}"
        self.made: list[str] = []

    def url(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def create(self, label: str, template: str | None = None) -> str:
        """A new database (a copy of ``template`` if given); returns its name."""
        name = f"{self.prefix}_{label}".replace("-", "_")[:63]
        if name in self.made:
            self.drop(name)
        clause = f" TEMPLATE {template}" if template else ""
        for attempt in range(50):
            try:
                with self.admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}{clause}")
                break
            except Exception:
                # a template still has a session closing (a killed process's backend)
                if attempt == 49:
                    raise
                time.sleep(0.1)
        self.made.append(name)
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if name in self.made:
            self.made.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            with contextlib.suppress(Exception):
                self.drop(name)
        self.admin.dispose()


# --- the programme ------------------------------------------------------------------------------

# the stage steps a snapshot is kept before: (the operator's command, its occurrence) -> label
WANTED: dict[tuple[str, int], str] = {
    ("pull", 1): "pull",
    ("assess", 1): "assess",
    ("review decide-file", 1): "review-decide-file",
    ("resolve", 1): "resolve",
    ("transfer export", 1): "transfer-export",
    ("transfer ack", 1): "transfer-ack",
    ("notify build", 1): "notify-build",
    ("notify approve", 1): "notify-approve",
    ("notify send", 1): "notify-send",  # and notify-send-print, from the same snapshot
    ("notify sync", 2): "notify-sync",
    ("pull", 2): "pull-corrected",  # the legacy team's corrected replica
    ("responses import", 1): "responses-import",
    ("archive", 1): "archive",
}
GROUPS = frozenset({"notify", "transfer", "responses", "review", "archive", "ledger", "rules"})


def command_head(args: Sequence[str]) -> str:
    """``notify send`` for ``--actor X notify send 1 --channel …``: the command, without
    options and arguments."""
    words = list(args)
    while words and words[0].startswith("--"):
        del words[:2]
    if not words:
        return ""
    if words[0] in GROUPS and len(words) > 1 and not words[1].startswith("-"):
        return f"{words[0]} {words[1]}"
    return words[0]


def _copy_file(source: str, target: str) -> None:
    if source.endswith(".db"):
        # a consistent copy of a SQLite file whatever its write-ahead log holds
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
        shutil.copymode(source, target)
    else:
        shutil.copy2(source, target)


def copy_directory(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(
        source,
        target,
        copy_function=_copy_file,
        ignore=shutil.ignore_patterns("*-wal", "*-shm", "*-journal"),
    )


class _RecordingDemo(Demo):
    """The demo, keeping a snapshot before each wanted step, and settling caseworker queues
    with a decisions file (``review decide-file``) as operators do."""

    def __init__(self, programme: Programme, settings: DemoSettings, store_url: str) -> None:
        super().__init__(settings, programme.work, store_url=store_url)
        self.programme = programme
        self.seen: Counter[str] = Counter()

    def step(self, name: str, command: str, action: Any, summary: Any) -> Any:
        try:
            args = shlex.split(command)
        except ValueError:  # not a command: "(the CMS's acknowledgement file)"
            args = []
        head = command_head(args)
        self.seen[head] += 1
        label = WANTED.get((head, self.seen[head]))
        if label is not None:
            if "--limit" in args:
                # A build killed part-way keeps the smaller batch it made and the re-run fills
                # a new one up to the limit (by design, build.py), so with a limit the two
                # runs together build more than one would; without one they build the same.
                at = args.index("--limit")
                del args[at : at + 2]
            actor = CASEWORKER if head == "review decide-file" else OPERATOR
            self.programme.steps[label] = Step(label, self.today, actor, tuple(args))
            if label == "notify-send":
                printed = [a for a in args if a != "fake-notify"]
                at = printed.index("--channel") + 1
                printed[at:at] = ["print-file"]
                printed += ["--out", str(self.directory / "print-files")]
                self.programme.steps["notify-send-print"] = Step(
                    "notify-send-print", self.today, OPERATOR, tuple(printed)
                )
            self.engine.dispose()
            self.programme.keep(label)
        return super().step(name, command, action, summary)

    def caseworkers(self) -> None:
        path = self.directory / "decisions" / f"decisions-{self.today}.csv"
        path.parent.mkdir(exist_ok=True, mode=0o700)
        if not write_decisions_file(self.ctx(CASEWORKER), path).rows:
            return
        from csa_closure.cli.review import _read_decisions
        from csa_closure.stages.review import decide_many

        self.step(
            "caseworkers settle their queue",
            f"review decide-file {path}",
            lambda: decide_many(self.ctx(CASEWORKER), _read_decisions(path)),
            lambda r: {"decided": r.decided, "refused": len(r.refused or [])},
        )


class Programme:
    """The whole programme, run once, with snapshots before the stage steps in ``WANTED``."""

    def __init__(self, root: Path, databases: Databases | None, settings: DemoSettings) -> None:
        self.root = root
        self.work = root / "work"  # the demo's directory: every command runs in it
        self.databases = databases
        self.settings = settings
        self.steps: dict[str, Step] = {}
        self.clean_runs: dict[str, Any] = {}  # for the tests: each step run once, cleanly
        self._store_db: str | None = None
        self._copies: list[str] = []

    @property
    def kind(self) -> str:
        return "sqlite" if self.databases is None else "postgresql"

    def run(self) -> Programme:
        prepare_directory(self.work)
        if self.databases is None:
            url = f"sqlite:///{self.work / STORE_FILE}"
        else:
            self._store_db = self.databases.create("programme")
            url = self.databases.url(self._store_db)
        demo = _RecordingDemo(self, self.settings, url)
        try:
            self.result = demo.run()
        finally:
            demo.engine.dispose()
            if demo.channel is not None:
                demo.channel.close()
        assert self.result.passed, "the programme did not reach the decommission gate"
        return self

    def keep(self, label: str) -> None:
        copy_directory(self.work, self.root / "snapshots" / label)
        if self.databases is not None:
            assert self._store_db is not None
            self.databases.create(f"snap_{label}", template=self._store_db)

    def restore(self, label: str) -> str:
        """Put the snapshot taken before ``label`` back; returns the URL of a store holding
        it (a new one each time on PostgreSQL)."""
        label = label.removesuffix("-print")
        copy_directory(self.root / "snapshots" / label, self.work)
        if self.databases is None:
            return f"sqlite:///{self.work / STORE_FILE}"
        for name in self._copies:
            self.databases.drop(name)
        self._copies.clear()
        template = f"{self.databases.prefix}_snap_{label}".replace("-", "_")[:63]
        name = self.databases.create(f"copy_{uuid.uuid4().hex[:6]}", template=template)
        self._copies.append(name)
        return self.databases.url(name)


# --- comparing stores by natural keys ---------------------------------------------------------

DEBT_KEY = "d.case_ref, d.creditor"
_DEBT_COLUMNS = (
    "source_system, opening_pence, source_pence, state, outcome, reason, rule_id, ruleset_hash, "
    "decided_by, decided_as_of, letter_date, response_deadline, reminder_due, response, "
    "response_received_on, needs_tracing, needs_caseworker, review_reason"
)
# Events about operators, not about the book: which process held a lease.
OPERATOR_EVENTS = ("lease.taken_over",)


def _plain(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.dumps(json.loads(value), sort_keys=True)
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return value


ACTOR_COLUMNS = ("decided_by", "l.actor", "r.recorded_by", "built_by", "approved_by")


def book_state(url: str, *, actors: bool = True) -> dict[str, Any]:
    """Everything the store says about the book, by natural keys (see the module doc);
    without who did what if not ``actors`` (two operators shared the work)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:

            def bag(sql: str) -> Counter[tuple[Any, ...]]:
                if not actors:
                    for column in ACTOR_COLUMNS:
                        sql = sql.replace(f" {column},", " NULL,").replace(f" {column} ", " NULL ")
                return Counter(tuple(_plain(v) for v in row) for row in conn.execute(text(sql)))

            state = {
                "cases": bag(
                    "SELECT case_ref, source_system, source_case_key, scheme, effective_date, "
                    "liability_end_date, pwc_party_ref, nrp_party_ref, dv_marker, stop_acting, "
                    "enforcement_code, source_fingerprint FROM cases"
                ),
                "parties": bag("SELECT party_ref, source_fingerprint FROM parties"),
                "payments": bag(
                    "SELECT case_ref, paid_on, payment_count, amount_pence FROM payment_days"
                ),
                "debts": bag(f"SELECT case_ref, creditor, {_DEBT_COLUMNS} FROM debts d"),
                "quarantine": bag(
                    "SELECT source_system, case_ref, item_kind, status, pwc_pence, sos_pence, "
                    "row_count, reasons FROM quarantine"
                ),
                "rule_sets": bag("SELECT ruleset_hash, name FROM rule_sets"),
                "ledger": bag(
                    f"SELECT {DEBT_KEY}, l.entry_type, l.amount_pence, l.reason, l.rule_id, "
                    "l.ruleset_hash, l.as_of, l.actor FROM ledger_entries l "
                    "JOIN debts d ON d.debt_id = l.debt_id"
                ),
                "letters": bag(
                    f"SELECT {DEBT_KEY}, l.purpose, l.recipient, l.party_ref, "
                    "l.status, l.held_reason, l.failure_reason, l.channel, l.letter_date "
                    "FROM letters l JOIN debts d ON d.debt_id = l.debt_id"
                ),
                # a build killed part-way leaves a smaller batch and the re-run builds the rest
                # into a new one (build.py): batches are compared by what they hold in total
                "letter_batches": bag(
                    "SELECT letter_type, status, as_of, built_by, approved_by, channel, "
                    "stop_reason, sum(letter_count) FROM letter_batches GROUP BY 1, 2, 3, 4, 5, "
                    "6, 7"
                ),
                "send_quota": bag("SELECT channel, day, sent_count, limit_reached FROM send_quota"),
                "imports": bag(
                    "SELECT kind, file_name, file_sha256, row_count, accepted, duplicates, "
                    "rejected FROM response_imports"
                ),
                "import_rejections": bag(
                    "SELECT i.file_sha256, r.row_number, r.document_id, r.case_ref, "
                    "r.reason_code, r.detail FROM import_rejections r "
                    "JOIN response_imports i ON i.import_id = r.import_id"
                ),
                "responses": bag(
                    f"SELECT r.document_id, {DEBT_KEY}, r.party, r.response, r.received_on, "
                    "r.channel, r.recorded_by FROM responses r "
                    "JOIN debts d ON d.debt_id = r.debt_id"
                ),
                "transfer_batches": bag(
                    "SELECT as_of, row_count, total_pence, status FROM transfer_batches"
                ),
                "transfer_items": bag(
                    "SELECT case_ref, creditor, amount_pence, transfer_reason, status, ack_reason "
                    "FROM transfer_items"
                ),
                "archives": bag("SELECT includes_personal_data, verified_ok FROM archives"),
                "leases_held": bag("SELECT name FROM leases WHERE token IS NOT NULL"),
                "debt_events": bag(
                    f"SELECT {DEBT_KEY}, e.event_type, e.from_state, e.to_state FROM events e "
                    "JOIN debts d ON d.debt_id = e.debt_id WHERE e.event_type LIKE 'debt.%'"
                ),
                "other_events": bag(
                    "SELECT event_type FROM events WHERE debt_id IS NULL AND event_type NOT IN "
                    f"({', '.join(repr(e) for e in OPERATOR_EVENTS)})"
                    # the letters' moves: compared letter by letter below (letter_events)
                    " AND event_type NOT IN ('letters.built', 'letters.status_changed')"
                ),
                "runs": bag("SELECT stage, status FROM stage_runs"),
            }
            state["letter_history"] = _letter_paths(
                conn,
                conn.execute(
                    text(
                        "SELECT h.letter_id, h.status FROM letter_status_history h "
                        "ORDER BY h.letter_id, h.history_id"
                    )
                ).all(),
            )
            # the event log names every letter each move moved (store/letters.py): the same
            # path for every letter as its history, and every letter built by an event
            moves = [
                (int(letter_id), event_type, to_state)
                for event_type, to_state, detail in conn.execute(
                    text(
                        "SELECT event_type, to_state, detail FROM events WHERE event_type"
                        " IN ('letters.built', 'letters.status_changed') ORDER BY event_id"
                    )
                )
                for letter_id in _plain_json(detail).get("letter_ids", [])
            ]
            state["letter_events"] = _letter_paths(
                conn, sorted(((i, to) for i, _, to in moves), key=lambda move: move[0])
            )
            built = {i for i, event_type, _ in moves if event_type == "letters.built"}
            state["letters_built"] = Counter(
                (r.case_ref, r.creditor, r.purpose, r.recipient)
                for r in conn.execute(
                    text(
                        "SELECT l.letter_id, d.case_ref, d.creditor, l.purpose, l.recipient "
                        "FROM letters l JOIN debts d ON d.debt_id = l.debt_id"
                    )
                )
                if int(r.letter_id) in built
            )
    finally:
        engine.dispose()
    return state


# The send protocol's own states: a letter a killed send left in them is settled by the
# re-run's reconciliation (found at Notify: accepted; not found: back to pending and sent
# again), a detour its history rightly records. Letters' paths are compared without it.
IN_FLIGHT = ("sending", "unknown")


def _plain_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _letter_paths(conn: Any, statuses: Iterable[tuple[Any, str]]) -> Counter[tuple[Any, ...]]:
    """Each letter's statuses (letter id, status: in order for each letter) in order, by the
    letter's natural key, with the send protocol's in-flight statuses left out and repeats
    collapsed: what became of the letter."""
    keys = {
        int(r.letter_id): (r.case_ref, r.creditor, r.purpose, r.recipient)
        for r in conn.execute(
            text(
                "SELECT l.letter_id, d.case_ref, d.creditor, l.purpose, l.recipient FROM letters l "
                "JOIN debts d ON d.debt_id = l.debt_id"
            )
        )
    }
    paths: dict[int, list[str]] = {}
    for letter, status in statuses:
        letter_id = int(letter)
        path = paths.setdefault(letter_id, [])
        if status in IN_FLIGHT:
            continue
        if not path or path[-1] != status:
            path.append(status)
    return Counter((*keys[letter_id], *path) for letter_id, path in paths.items())


def fake_notify_counts(directory: Path) -> Counter[str]:
    """How many letters the fake Notify service accepted, per reference."""
    state = directory / FAKE_NOTIFY_STATE
    if not state.exists():
        return Counter()
    with contextlib.closing(sqlite3.connect(state)) as db:
        return Counter(
            {
                str(reference): int(n)
                for reference, n in db.execute(
                    "SELECT reference, count(*) FROM notifications GROUP BY reference"
                )
            }
        )


def _parquet_rows(path: Path) -> Counter[tuple[Any, ...]]:
    return Counter(pl.read_parquet(path).rows())


def files_state(directory: Path) -> dict[str, Any]:
    """What a stage wrote to files in the demo's directory, by content (folder names carry
    run numbers, manifests carry timestamps: neither is compared)."""
    state: dict[str, Any] = {"notify": fake_notify_counts(directory)}
    printed: Counter[tuple[str, ...]] = Counter()
    for path in sorted((directory / "print-files").rglob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            printed.update(tuple(row) for row in csv.reader(handle))
    state["print_files"] = printed
    packages: Counter[tuple[Any, ...]] = Counter()
    for path in sorted((directory / "transfers").rglob("debts.parquet")):
        packages.update(_parquet_rows(path))
    state["transfer_packages"] = packages
    state["rejects"] = {
        path.relative_to(directory).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(directory.rglob("*.rejects.csv"))
    }
    manifest = directory / "archive" / "manifest.json"
    if manifest.exists():
        files = json.loads(manifest.read_text())["files"]
        # the runs and events files also hold the killed run and who took its lease over
        state["archive"] = {
            name: (f["rows"], f["totals"])
            for name, f in files.items()
            if name not in ("runs.parquet", "events.parquet")
        }
    return state


def difference(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """Per key, what one side has and the other has not (empty when equal)."""
    found: dict[str, Any] = {}
    for key in sorted(set(left) | set(right)):
        a, b = left.get(key), right.get(key)
        if a == b:
            continue
        if isinstance(a, Counter) and isinstance(b, Counter):
            found[key] = {
                "only left": list((a - b).items())[:5],
                "only right": list((b - a).items())[:5],
            }
        else:
            found[key] = (str(a)[:400], str(b)[:400])
    return found


# What a killed and re-run stage may leave that an uninterrupted run does not (every other
# part of the book must be identical):
# - the killed run's record: abandoned when the re-run took its lease over, or left running
#   (with its lease) where no later run needed the lease: a stage that takes none (approve,
#   review decisions), or an import whose file the killed run had committed (the re-run finds
#   it imported and has nothing to do, so the completed run is the killed one's); failed when
#   it could still record its end (the database came back); and a re-run refused because the
#   killed run had done everything (approving an approved batch) is recorded as failed;
# - a resumed send records ``batch.sending`` again; a build killed after its first chunk leaves
#   its smaller batch, built (and recorded ``batch.built``), and the re-run builds the rest
#   into a new batch (build.py);
# - the day's send quota may count more: letters reserved by the killed send's last group
#   stay counted (quota.py: the count never undercounts what the channel may have taken);
# - an archive killed after recording itself leaves that record, unverified; the re-run writes
#   the directory again and records the archive that is verified.
LOOSE = ("runs", "leases_held", "other_events", "send_quota", "archives")
RESUMED_EVENTS = ("batch.sending", "batch.built")


def compare_books(clean: Mapping[str, Any], killed: Mapping[str, Any]) -> dict[str, Any]:
    """How ``killed`` (a stage killed and run again) differs from ``clean`` (the same stage
    run once) beyond what ``LOOSE`` allows; empty when it does not."""
    problems = difference(
        {k: v for k, v in clean.items() if k not in LOOSE},
        {k: v for k, v in killed.items() if k not in LOOSE},
    )
    extra, missing = killed["runs"] - clean["runs"], clean["runs"] - killed["runs"]
    statuses = {status for _, status in extra}
    if (
        not statuses & {"abandoned", "running", "failed"}
        or not statuses <= {"abandoned", "running", "failed"}
        or sum(extra.values()) - sum(missing.values()) not in (0, 1, 2)
        or {status for _, status in missing} - {"completed"}
        or sum(missing.values()) > 1
    ):
        problems["runs"] = {"only clean": list(missing.items()), "only killed": list(extra.items())}
    held = killed["leases_held"] - clean["leases_held"]
    if clean["leases_held"] - killed["leases_held"] or (held and statuses != {"running"}):
        problems["leases_held"] = (clean["leases_held"], killed["leases_held"])
    plain = Counter({k: v for k, v in killed["other_events"].items() if k[0] not in RESUMED_EVENTS})
    wanted = Counter({k: v for k, v in clean["other_events"].items() if k[0] not in RESUMED_EVENTS})
    if plain != wanted or set(killed["other_events"]) != set(clean["other_events"]):
        problems["other_events"] = difference({"events": wanted}, {"events": plain}) or (
            set(clean["other_events"]),
            set(killed["other_events"]),
        )
    quota_clean = {(c, d): (n, r) for c, d, n, r in clean["send_quota"]}
    quota_killed = {(c, d): (n, r) for c, d, n, r in killed["send_quota"]}
    if quota_clean.keys() != quota_killed.keys() or any(
        quota_killed[k][0] < n or quota_killed[k][1] != r for k, (n, r) in quota_clean.items()
    ):
        problems["send_quota"] = (quota_clean, quota_killed)
    leftover = killed["archives"] - clean["archives"]
    if clean["archives"] - killed["archives"] or (
        leftover and (sum(leftover.values()) != 1 or next(iter(leftover))[1] is not None)
    ):
        problems["archives"] = (clean["archives"], killed["archives"])
    return problems


# --- the process the fault tests spawn ----------------------------------------------------------


def _main(argv: list[str]) -> None:
    """``python -m tests.support.faults START ANCHOR CLI_ARGS...``: the CLI on the demo's
    calendar."""
    from csa_closure.cli import cli

    with pinned_clock(Calendar(datetime.fromisoformat(argv[0]), float(argv[1]))):
        cli.main(args=argv[2:], prog_name="csa-closure")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    _main(sys.argv[1:])
