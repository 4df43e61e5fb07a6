"""The whole closure programme on the embedded store, in one call: the demo.

It runs the ordinary stages, exactly as operators would (``DemoStep.command`` gives each
one's command line), on a generated legacy book, simulating the world around them:

- the legacy team: a generated CSCS + CS2 replica with every kind of dirty data; later, a
  corrected replica (the same book without the dirt), pulled again so quarantine empties;
- GOV.UK Notify: the fake Notify service, whose clock follows the demo's day, so letters are
  received days after they are sent and a few are returned or fail;
- parents: response files at the published rates (about 15% ask for collection);
- caseworkers: they settle every debt put in front of them, by a fixed, documented choice;
- the CMS: acknowledgements for each transfer package, a few rows rejected.

Time moves from one day something happens to the next (letters still to send under the daily
limit, a reminder or a deadline falling due, the response file arriving), and each such day
the operator's routine runs: assess, responses, caseworker decisions, resolve, transfers,
letters. When every debt is closed, every letter is final and quarantine is empty, the
evidence is archived and verified and the decommission gate is checked.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from csa_closure.channels import LetterChannel
from csa_closure.cli.channels import FakeNotifyOptions, letters_channel, simulated_returns
from csa_closure.context import Context, Settings
from csa_closure.domain.states import CLOSED_STATES
from csa_closure.errors import UsageError
from csa_closure.letters.config import load_letters_config
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.simulation.acknowledgements import rejections_for, write_ack_file
from csa_closure.simulation.decisions import caseworker_decisions
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.simulation.responses import write_response_file
from csa_closure.stages.archive import archive, verify
from csa_closure.stages.assess import assess
from csa_closure.stages.decommission import DecommissionCheck, decommission_check
from csa_closure.stages.letters_outbox import (
    FAKE_NOTIFY,
    PRINT_FILE,
    SendOptions,
    approve_batch,
    build_batch,
    send_batch,
    sync_letters,
)
from csa_closure.stages.pull import pull
from csa_closure.stages.resolve import resolve
from csa_closure.stages.responses import import_responses
from csa_closure.stages.review import decide_many
from csa_closure.stages.transfer import export_transfers
from csa_closure.stages.transfer_ack import import_ack
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine

MARKER = ".csa-closure-demo"
RETURNS_AFTER_DAYS = 21  # the simulated Notify returns undeliverable letters after this
CLOSED_STATE_NAMES = frozenset(s.value for s in CLOSED_STATES)
OPERATOR = "demo-operator"
OVERALL_TASK = "demo: debts closed"
APPROVER = "demo-approver"
CASEWORKER = "demo-caseworker"


@dataclass(frozen=True)
class DemoSettings:
    cases: int = 20_000
    seed: int = 2019
    channel: str = FAKE_NOTIFY  # or print-file
    as_at: date = date(2019, 3, 31)  # the legacy replica's extract date
    start: date = date(2019, 4, 1)  # the first operator day
    daily_letter_limit: int = 20_000
    response_after_days: int = 45  # the response file arrives this long after the last letter
    fix_quarantine_after_days: int = 7  # the legacy team's corrected replica arrives then
    cms_rejections_per_thousand: int = 5
    max_days: int = 500
    chunk_size: int = 20_000


@dataclass
class DemoStep:
    day: date
    name: str
    command: str  # the ordinary command an operator runs for this step
    seconds: float
    summary: dict[str, Any]


@dataclass
class DemoResult:
    directory: str
    store_url: str
    settings: DemoSettings
    steps: list[DemoStep] = field(default_factory=list)
    days: int = 0
    finished_on: date | None = None
    seconds: float = 0.0
    decommission: DecommissionCheck | None = None

    @property
    def passed(self) -> bool:
        return self.decommission is not None and self.decommission.passed


def prepare_directory(directory: Path) -> None:
    """Use ``directory`` for the demo: create it, or clear a previous demo's run there.
    Anything else already in it is left alone and refused."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise UsageError(
                f"{directory} is not empty and is not a previous demo's directory; "
                "choose another with --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / MARKER).write_text("made by csa-closure demo; cleared by the next demo\n")


class Demo:
    """One run of the programme (see the module doc)."""

    def __init__(
        self,
        settings: DemoSettings,
        directory: Path,
        progress: Progress = NO_PROGRESS,
        *,
        store_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.progress = progress
        # the embedded store in the demo's directory, unless given an (empty) one
        self.store_url = store_url or f"sqlite:///{directory / 'csa_closure.db'}"
        self.legacy = directory / "legacy.db"
        self.corrected_legacy = directory / "legacy-corrected.db"
        self.today = settings.start
        self._ticks = (self.today, 0)
        self.engine = make_engine(self.store_url)
        self.config = load_letters_config()
        self.channel = self._channel()
        self.result = DemoResult(str(directory), self.store_url, settings)
        self.response_day: date | None = None
        self.quarantine_fixed = False
        self._overall_total = -1  # the overall bar's total (debts loaded), once started
        self._overall_done = 0
        # letter references and the like: drawn from the seed, not the OS
        self._random = random.Random(f"{settings.seed}:demo-random-bytes")

    # --- plumbing ------------------------------------------------------------------------

    def _channel(self) -> LetterChannel | None:
        """The simulated Notify, made once; ``None`` when the demo sends print files."""
        if self.settings.channel == PRINT_FILE:
            return None
        channel = letters_channel(
            FAKE_NOTIFY,
            self.config,
            fake=FakeNotifyOptions(
                self.directory / "fake-notify.db",
                fates={
                    "returned": 0.004,
                    "permanent_failure": 0.002,
                    "received_after_days": 0.5,
                    "returned_after_days": RETURNS_AFTER_DAYS,
                },
                seed=self.settings.seed,
                # the simulated Notify lives on the demo's calendar
                clock=self.now,
            ),
        )
        assert isinstance(channel, LetterChannel)
        return channel

    def now(self) -> datetime:
        """The demo's instant: noon of the simulated day, plus one microsecond for every
        earlier reading of the clock that day. Everything (the store's timestamps and leases,
        the fake Notify) keeps this calendar, so Notify's seven-day retention is counted in
        the demo's days; and as the clock is logical (it counts readings, not the real time
        spent), the same seed gives the same store whatever the machine's load."""
        day, ticks = self._ticks
        if day != self.today:
            day, ticks = self.today, 0
        self._ticks = (day, ticks + 1)
        noon = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12)
        return noon + timedelta(microseconds=ticks)

    def random_bytes(self, n: int) -> bytes:
        """``n`` bytes from the demo's seeded generator (in place of ``secrets``)."""
        return self._random.randbytes(n)

    def ctx(self, actor: str = OPERATOR) -> Context:
        return Context(
            engine=self.engine,
            as_of=self.today,
            actor=actor,
            settings=Settings(chunk_size=self.settings.chunk_size),
            clock=self.now,
            random_bytes=self.random_bytes,
            # every day's as-of is set explicitly and only moves forward: the guard holds
            guard_as_of=True,
        )

    def step(
        self, name: str, command: str, action: Callable[[], Any], summary: Callable[[Any], Any]
    ) -> Any:
        started = time.perf_counter()
        value = action()
        self.result.steps.append(
            DemoStep(
                day=self.today,
                name=name,
                command=f"csa-closure --as-of {self.today} {command}",
                seconds=round(time.perf_counter() - started, 3),
                summary=summary(value) or {},
            )
        )
        return value

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    # --- the world around the stages ------------------------------------------------------

    def generate(self) -> None:
        s = self.settings
        self.step(
            "generate the legacy replica",
            f"sample legacy --cases {s.cases} --seed {s.seed} --out {self.legacy}",
            lambda: generate_legacy(str(self.legacy), s.cases, s.seed, s.as_at),
            lambda g: {"cases": g.cases, "rows": sum(g.rows.values())},
        )
        self.step(
            "create the working store",
            "db upgrade",
            lambda: migrate.upgrade(self.engine),
            lambda st: {"revision": st.current},
        )

    def fix_quarantine_at_source(self) -> None:
        """The legacy team corrects every dirty row; the corrected replica is pulled."""
        s = self.settings
        self.step(
            "legacy team corrects the dirty rows",
            f"sample legacy --cases {s.cases} --seed {s.seed} --dirty-rate 0 "
            f"--out {self.corrected_legacy}",
            lambda: generate_legacy(str(self.corrected_legacy), s.cases, s.seed, s.as_at, 0.0),
            lambda g: {"cases": g.cases},
        )
        self.pull(self.corrected_legacy, "pull the corrected replica")
        self.quarantine_fixed = True

    def pull(self, source: Path, name: str = "pull") -> None:
        self.step(
            name,
            f"pull --source {source}",
            lambda: pull(self.ctx(), str(source), progress=self.progress),
            lambda r: {"balanced": r.balanced, **r.counts},
        )

    # --- the operator's routine -----------------------------------------------------------

    def assess(self) -> None:
        if not self.scalar("SELECT count(*) FROM debts WHERE state = 'pulled'"):
            return
        self.step(
            "assess",
            "assess",
            lambda: assess(self.ctx(), progress=self.progress),
            lambda r: {"decided": r.decided, **{k: v["debts"] for k, v in r.by_outcome.items()}},
        )

    def responses(self) -> None:
        if self.response_day is None or self.today < self.response_day:
            return
        self.response_day = None
        path = self.directory / "responses" / f"responses-{self.today}.csv"
        path.parent.mkdir(exist_ok=True, mode=0o700)
        self.step(
            "parents' responses arrive",
            "(the contact centre's daily file)",
            lambda: write_response_file(
                self.ctx(), path, seed=self.settings.seed, duplicates=3, bad_rows=6
            ),
            lambda f: {"rows": f.rows, **f.by_kind},
        )
        self.step(
            "responses import",
            f"responses import {path}",
            lambda: import_responses(self.ctx(), path, progress=self.progress),
            lambda r: _counts(r, "rows", "accepted", "duplicates", "rejected"),
        )

    def caseworkers(self) -> None:
        # the simulated caseworkers' fixed choices (csa_closure.simulation.decisions)
        decisions = caseworker_decisions(self.ctx(CASEWORKER))
        if not decisions:
            return
        self.step(
            "caseworkers settle their queue",
            f"--actor {CASEWORKER} review decide-file DECISIONS.csv",
            lambda: decide_many(self.ctx(CASEWORKER), decisions),
            lambda r: {"decided": r.decided, "refused": len(r.refused or [])},
        )

    def resolve(self) -> None:
        self.step(
            "resolve",
            "resolve",
            lambda: resolve(self.ctx(), progress=self.progress),
            lambda r: _counts(r),
        )

    def transfers(self) -> None:
        if not self.scalar("SELECT count(*) FROM debts WHERE state = 'transfer_ready'"):
            return
        out = self.directory / "transfers"
        exported = self.step(
            "transfer export",
            f"transfer export --out {out}",
            lambda: export_transfers(self.ctx(), out, progress=self.progress),
            lambda r: _counts(r),
        )
        for package in _package_dirs(exported):
            self._acknowledge(package)

    def _acknowledge(self, package: Path) -> None:
        """The CMS answers for a package, a few rows rejected; the operator imports it."""
        ack = self.directory / "transfers" / f"{package.name}-ack.csv"
        rejected = rejections_for(package, self.settings.cms_rejections_per_thousand)
        self.step(
            "the CMS acknowledges the package",
            "(the CMS's acknowledgement file)",
            lambda: write_ack_file(package, ack, seed=self.settings.seed, rejected=rejected),
            lambda f: _counts(f),
        )
        self.step(
            "transfer ack",
            f"transfer ack {ack}",
            lambda: import_ack(self.ctx(), ack),
            lambda r: _counts(r, "rows", "accepted", "duplicates", "rejected"),
        )

    def letters(self) -> None:
        """Build within today's quota, approve (a second person), send, and sync."""
        channel_name = self.settings.channel
        built = self.step(
            "notify build",
            f"notify build --limit {self.settings.daily_letter_limit}",
            lambda: build_batch(
                self.ctx(), limit=self.settings.daily_letter_limit, progress=self.progress
            ),
            lambda r: _counts(r),
        )
        if built.batch_id is not None:
            batch = built.batch_id
            self.step(
                "notify approve",
                f"--actor {APPROVER} notify approve {batch}",
                lambda: approve_batch(self.ctx(APPROVER), batch),
                lambda r: _counts(r),
            )
            out = self.directory / "print-files"
            self.step(
                "notify send",
                f"notify send {batch} --channel {channel_name}"
                + (f" --out {out}" if channel_name == PRINT_FILE else ""),
                lambda: send_batch(
                    self.ctx(),
                    batch,
                    self._sender(out),
                    self.config,
                    options=SendOptions(
                        daily_limit=self.settings.daily_letter_limit, settle=timedelta(0)
                    ),
                    progress=self.progress,
                ),
                lambda r: _counts(r),
            )
        if self.channel is not None and self._letters_to_watch():
            # Notify's returned-letters report comes separately from statuses, weeks later
            returned = simulated_returns(self.channel)
            self.step(
                "notify sync",
                f"notify sync --channel {channel_name}"
                + (" (with Notify's returned-letters report)" if returned else ""),
                lambda: sync_letters(
                    self.ctx(),
                    self.channel,  # type: ignore[arg-type]
                    self.config,
                    returned_report=returned,
                    options=SendOptions(settle=timedelta(0)),
                    progress=self.progress,
                ),
                lambda r: _counts(r),
            )

    def _letters_to_watch(self) -> bool:
        """Letters whose status may still change: in flight, or recently posted (a return
        can come back until RETURNS_AFTER_DAYS after posting)."""
        since = (self.today - timedelta(days=RETURNS_AFTER_DAYS)).isoformat()
        return bool(
            self.scalar(
                "SELECT count(*) FROM letters WHERE status = 'accepted' OR (status = "
                f"'received' AND letter_date >= '{since}')"
            )
        )

    def _sender(self, out: Path) -> Any:
        if self.channel is not None:
            return self.channel
        return letters_channel(PRINT_FILE, self.config, out_dir=out)

    def routine(self) -> None:
        if (
            self.today
            >= self.settings.start + timedelta(days=self.settings.fix_quarantine_after_days)
            and not self.quarantine_fixed
        ):
            self.fix_quarantine_at_source()
        self.assess()
        self.responses()
        self.caseworkers()
        self.resolve()
        self.transfers()
        self.letters()
        self._schedule_responses()

    def _schedule_responses(self) -> None:
        """The response file arrives a while after the last final-chance letter went."""
        if self.response_day is not None or self.scalar(
            "SELECT count(*) FROM debts WHERE state = 'awaiting_letter'"
        ):
            return
        last = self.scalar("SELECT max(letter_date) FROM debts WHERE state = 'awaiting_response'")
        if last is not None:
            last_day = date.fromisoformat(str(last)[:10])
            answered = self.scalar(
                "SELECT count(*) FROM responses r JOIN debts d ON d.debt_id = r.debt_id "
                f"WHERE d.letter_date = '{last_day.isoformat()}'"
            )
            if not answered:
                self.response_day = last_day + timedelta(days=self.settings.response_after_days)

    # --- time -----------------------------------------------------------------------------

    def finished(self) -> bool:
        open_debts = self.scalar(
            "SELECT count(*) FROM debts WHERE state NOT IN ('closed', 'written_off', 'transferred')"
        )
        open_letters = self.scalar(
            "SELECT count(*) FROM letters WHERE status IN ('pending', 'sending', 'unknown', "
            "'accepted')"
        )
        held = self.scalar("SELECT count(*) FROM quarantine WHERE status = 'held'")
        return not open_debts and not open_letters and not held and self.quarantine_fixed

    def next_day(self) -> date | None:
        """The next day something happens, or None if nothing ever will."""
        candidates: list[date] = []
        busy = self.scalar(
            "SELECT count(*) FROM debts WHERE state IN ('awaiting_letter', 'write_off_pending', "
            "'collect_requested', 'transfer_ready', 'review') OR (needs_caseworker AND state "
            "NOT IN ('closed', 'written_off', 'transferred'))"
        ) or self.scalar(
            "SELECT count(*) FROM letters WHERE status IN ('pending', 'sending', 'unknown', "
            "'accepted')"
        )
        if busy:
            candidates.append(self.today + timedelta(days=1))
        for sql in (
            "SELECT min(reminder_due) FROM debts WHERE state = 'awaiting_response' "
            f"AND reminder_due > '{self.today.isoformat()}'",
            "SELECT min(response_deadline) FROM debts WHERE state = 'awaiting_response'",
        ):
            value = self.scalar(sql)
            if value is not None:
                day = date.fromisoformat(str(value)[:10])
                # a deadline is acted on the day after it passes
                day = day + timedelta(days=1) if "deadline" in sql else day
                candidates.append(max(day, self.today + timedelta(days=1)))
        if self.response_day is not None:
            candidates.append(max(self.response_day, self.today + timedelta(days=1)))
        if self.channel is not None:
            # the day the last posted letters could come back returned
            last_posted = self.scalar(
                "SELECT max(letter_date) FROM letters WHERE status = 'received'"
            )
            if last_posted is not None:
                back = date.fromisoformat(str(last_posted)[:10]) + timedelta(
                    days=RETURNS_AFTER_DAYS + 1
                )
                if back > self.today:
                    candidates.append(back)
        if not self.quarantine_fixed:
            candidates.append(
                self.settings.start + timedelta(days=self.settings.fix_quarantine_after_days)
            )
        return min(candidates) if candidates else None

    # --- the run --------------------------------------------------------------------------

    def _overall(self) -> None:
        """The demo's overall bar: debts closed of those loaded (a re-pull adds to them)."""
        loaded = int(self.scalar("SELECT count(*) FROM debts") or 0)
        closed = int(
            self.scalar(
                "SELECT count(*) FROM debts WHERE state IN ('closed', 'written_off', 'transferred')"
            )
            or 0
        )
        if loaded != self._overall_total:
            self.progress.start(OVERALL_TASK, loaded)
            self._overall_total, self._overall_done = loaded, 0
        self.progress.advance(OVERALL_TASK, closed - self._overall_done)
        self._overall_done = closed

    def run(self) -> DemoResult:
        started = time.perf_counter()
        self.generate()
        self.pull(self.legacy)
        last_day = self.settings.start + timedelta(days=self.settings.max_days)
        while True:
            self.routine()
            self._overall()
            self.result.days += 1
            if self.finished():
                break
            following = self.next_day()
            if following is None or following > last_day:
                break
            self.today = following
        self.result.finished_on = self.today
        self.progress.finish(OVERALL_TASK)
        self.close()
        self.result.seconds = round(time.perf_counter() - started, 1)
        return self.result

    def close(self) -> None:
        out = self.directory / "archive"
        self.step(
            "archive",
            f"archive --out {out}",
            lambda: archive(self.ctx(), out, progress=self.progress),
            lambda r: _counts(r),
        )
        self.step(
            "archive verify",
            f"archive verify {out}",
            lambda: verify(self.ctx(), out),
            lambda r: _counts(r),
        )
        self.result.decommission = self.step(
            "decommission check",
            "decommission check",
            lambda: decommission_check(self.ctx()),
            lambda r: {"passed": r.passed},
        )


def run_demo(
    settings: DemoSettings, directory: Path, progress: Progress = NO_PROGRESS
) -> DemoResult:
    """Prepare ``directory`` and run the whole programme in it."""
    prepare_directory(directory)
    return Demo(settings, directory, progress).run()


# --- small helpers ----------------------------------------------------------------------------


def _counts(result: Any, *names: str) -> dict[str, Any]:
    """The whole-number and yes/no fields of a stage result (or the named ones), one level
    of nesting flattened ("written_off.debts"), for the demo's log."""
    data = result.to_json() if hasattr(result, "to_json") else vars(result)
    flat: dict[str, Any] = {}
    for key in names or tuple(data):
        value = data.get(key)
        if isinstance(value, dict):
            flat |= {f"{key}.{k}": v for k, v in value.items() if isinstance(v, int | bool)}
        elif isinstance(value, int | bool) and not key.endswith("run_id"):
            flat[key] = value
    return flat


def _package_dirs(exported: Any) -> list[Path]:
    data = exported.to_json() if hasattr(exported, "to_json") else vars(exported)
    return [Path(b["path"]) for b in data.get("batches", []) if b.get("path")]
