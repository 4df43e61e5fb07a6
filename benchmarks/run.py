"""The scale benchmark: the whole closure programme at the real size, stage by stage.

    python benchmarks/run.py --cases 1300000                 # SQLite (the embedded default)
    python benchmarks/run.py --cases 1300000 --db postgresql+psycopg://postgres@127.0.0.1/test

It runs the demo's programme (csa_closure.simulation.demo: exactly the stages operators run,
in order, with the simulated world around them), measuring every step: wall time, the rows it
handled and the process's peak resident memory while it ran (sampled every 20 ms; it includes what
earlier steps left allocated, so it errs high). It also times ``rules simulate`` on the
pulled book, and a floor: bulk-inserting the rows the pull loaded (cases, parties, debts,
payment days, and one event per debt) straight through the database driver (sqlite3
executemany, or psycopg COPY) into an empty copy of the same tables. Each stage's time is
also given as a multiple of that floor.

Prints a table and writes JSON (benchmarks/results/latest-<database>.json by default).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table
from sqlalchemy import create_engine

from csa_closure.context import Context
from csa_closure.policy import load_rule_set
from csa_closure.simulation.demo import Demo, DemoSettings, prepare_directory
from csa_closure.stages.rules_review import simulate_on_book
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine, normalise_url

HERE = Path(__file__).resolve().parent
# The stage each demo step belongs to, as the targets name them.
STAGES = {
    "generate the legacy replica": "generate",
    "legacy team corrects the dirty rows": "generate",
    "create the working store": "setup",
    "pull": "pull",
    "pull the corrected replica": "re-pull (corrected replica)",
    "assess": "assess",
    "parents' responses arrive": "responses",
    "responses import": "responses",
    "caseworkers settle their queue": "review",
    "resolve": "resolve",
    "transfer export": "transfer",
    "the CMS acknowledges the package": "transfer",
    "transfer ack": "transfer",
    "notify build": "letters",
    "notify approve": "letters",
    "notify send": "letters",
    "notify sync": "letters",
    "archive": "archive",
    "archive verify": "archive",
    "decommission check": "decommission",
}


def _get(*keys: str) -> Callable[[dict[str, Any]], int]:
    return lambda summary: sum(int(summary.get(k, 0)) for k in keys)


# The rows each step handled, from its summary.
STEP_ROWS: dict[str, Callable[[dict[str, Any]], int]] = {
    "generate the legacy replica": _get("cases"),
    "pull": _get("cases_new", "cases_refreshed"),
    "pull the corrected replica": _get("cases_new", "cases_refreshed"),
    "assess": _get("decided"),
    "responses import": _get("rows"),
    "caseworkers settle their queue": _get("decided", "refused"),
    "resolve": _get("written_off.debts", "expired.debts"),
    "transfer export": _get("debts_exported"),
    "transfer ack": _get("rows"),
    "notify build": _get("pending"),
    "notify send": _get("accepted", "sent"),
    "notify sync": _get("polled"),
}
TARGETS = {
    "programme_seconds": 600,
    "stage_peak_mb": 3 * 1024,
    "pull_floor_ratio": 3.0,
    "assess_seconds": 30,
    "simulate_seconds": 30,
    "archive_floor_ratio": 2.0,
    "letters_floor_ratio": 3.0,
    "other_stage_floor_ratio": 3.0,  # every other stage against the pull's floor
}
# the runs whose rows make the letters' floor: build, approve, send and sync
LETTERS_RUNS = "SELECT run_id FROM stage_runs WHERE stage LIKE 'notify-%'"
# the demo's steps that are not the programme's: the test data it generates
NOT_THE_PROGRAMME = ("generate", "rules simulate")
# stages measured against a floor of their own rather than the pull's
OWN_FLOOR = {"letters": "letters", "archive": "archive"}


class PeakMemory:
    """The process's peak resident memory while a block runs, sampled every 20 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(0.02)

    @contextmanager
    def watching(self) -> Iterator[PeakMemory]:
        self.peak = self.process.memory_info().rss
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self._stop.clear()


@dataclass
class StageFigures:
    stage: str
    seconds: float = 0.0
    rows: int = 0
    runs: int = 0
    peak_mb: int = 0

    @property
    def rows_per_second(self) -> int:
        return int(self.rows / self.seconds) if self.seconds else 0

    def us_per_case(self, cases: int) -> float:
        """Microseconds of this stage per legacy case: flat from 100,000 to 1,300,000 cases
        is what scaling to the real book needs."""
        return round(self.seconds / cases * 1e6, 1) if cases else 0.0


@dataclass
class MeasuredDemo(Demo):
    """The demo, with every step measured."""

    figures: dict[str, StageFigures] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.figures = {}
        self.steps = []

    def step(
        self, name: str, command: str, action: Callable[[], Any], summary: Callable[[Any], Any]
    ) -> Any:
        meter = PeakMemory()
        with meter.watching():
            value = super().step(name, command, action, summary)
        done = self.result.steps[-1]
        stage = STAGES.get(name, name)
        figures = self.figures.setdefault(stage, StageFigures(stage))
        figures.seconds += done.seconds
        figures.runs += 1
        figures.peak_mb = max(figures.peak_mb, meter.peak // 2**20)
        rows = STEP_ROWS.get(name, lambda _: 0)(done.summary)
        figures.rows += rows
        self.steps.append(
            {
                "day": self.today.isoformat(),
                "step": name,
                "seconds": done.seconds,
                "rows": rows,
                "peak_mb": meter.peak // 2**20,
            }
        )
        return value


def measure_simulate(ctx: Context) -> StageFigures:
    """rules simulate on the whole book: the approved rules against a raised threshold."""
    proposal = load_rule_set(overrides={"threshold_old_case_pence": "150000"})
    meter = PeakMemory()
    with meter.watching():
        started = time.perf_counter()
        result = simulate_on_book(ctx, proposal, load_rule_set())
        seconds = time.perf_counter() - started
    return StageFigures("rules simulate", round(seconds, 3), result.debts, 1, meter.peak // 2**20)


FLOOR_TABLES = ("parties", "cases", "debts", "payment_days")


def _insert_floor(store_url: str, queries: dict[str, str]) -> dict[str, Any]:
    """Read what each query selects and time bulk-inserting it, table by table, straight
    through the driver into an empty copy of the store's tables."""
    with make_engine(store_url).connect() as conn:
        frames = {
            table: pl.read_database(sql, conn, infer_schema_length=None)
            for table, sql in queries.items()
        }
    rows = {t: f.height for t, f in frames.items()}
    target, cleanup = _empty_copy(store_url)
    try:
        started = time.perf_counter()
        _bulk_insert(target, frames)
        seconds = time.perf_counter() - started
    finally:
        cleanup()
    return {"seconds": round(seconds, 3), "rows": sum(rows.values()), "rows_by_table": rows}


def measure_floor(store_url: str) -> dict[str, Any]:
    """Insert what the pull loaded straight through the driver into empty tables."""
    queries = {t: f"SELECT * FROM {t}" for t in FLOOR_TABLES}
    queries["events"] = "SELECT * FROM events WHERE event_type = 'debt.pulled'"
    return _insert_floor(store_url, queries)


def measure_letters_floor(store_url: str) -> dict[str, Any]:
    """The letters' floor: the rows the letters steps wrote (the letters, their status
    history and the events of the notify runs) bulk-inserted by the driver into empty tables."""
    return _insert_floor(
        store_url,
        {
            "letters": "SELECT * FROM letters",
            "letter_status_history": "SELECT * FROM letter_status_history",
            "events": f"SELECT * FROM events WHERE run_id IN ({LETTERS_RUNS})",
        },
    )


def measure_archive_floor(store_url: str, workdir: Path) -> dict[str, Any]:
    """The archive's floor: every table it writes read through the driver's cursor into
    Arrow (the types the driver hands over, JSON as its text) and written to zstd Parquet,
    a batch at a time: no ordering, no typing, no totals, no hash, no manifest."""
    from sqlalchemy import JSON

    from csa_closure.stages.archive import FILES, _polars_type
    from csa_closure.store.dialect import driver_batches, fetched_type

    out = workdir / "archive-floor"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = 0
    engine = make_engine(store_url)
    started = time.perf_counter()
    with engine.connect() as conn:
        for table in dict.fromkeys(spec.table for spec in FILES):
            schema = {c.name: fetched_type(_polars_type(c.type), conn) for c in table.columns}
            names = ", ".join(
                f"CAST({c.name} AS TEXT) AS {c.name}" if isinstance(c.type, JSON) else c.name
                for c in table.columns
            )
            writer = None
            for batch in driver_batches(
                conn, f"SELECT {names} FROM {table.name}", batch_size=50_000, server_side=True
            ):
                frame = pl.DataFrame(batch, schema=schema, orient="row").to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(
                        out / f"{table.name}.parquet", frame.schema, compression="zstd"
                    )
                writer.write_table(frame)
                rows += len(frame)
            if writer is not None:
                writer.close()
    seconds = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": round(seconds, 3), "rows": rows}


def _empty_copy(store_url: str) -> tuple[str, Callable[[], None]]:
    url = normalise_url(store_url)
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///")).with_name("floor.db")
        path.unlink(missing_ok=True)
        target = f"sqlite:///{path}"

        def cleanup() -> None:
            path.unlink(missing_ok=True)

    else:
        schema = f"floor_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url.split("?")[0])
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        target = f"{url.split('?')[0]}?options=-csearch_path%3D{schema}"

        def cleanup() -> None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")

    migrate.upgrade(make_engine(target))
    return target, cleanup


def _bulk_insert(url: str, frames: dict[str, pl.DataFrame]) -> None:
    engine = make_engine(url)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, frame in frames.items():
            frame = (
                frame.with_columns(
                    pl.col(c).cast(pl.String)
                    for c, t in frame.schema.items()
                    if t in (pl.Date, pl.Datetime) or isinstance(t, pl.Datetime)
                )
                if engine.dialect.name == "sqlite"
                # JSON columns arrive as structs; COPY takes their text
                else frame.with_columns(
                    pl.col(c).struct.json_encode()
                    for c, t in frame.schema.items()
                    if isinstance(t, pl.Struct)
                )
            )
            columns = ", ".join(frame.columns)
            if engine.dialect.name == "sqlite":
                marks = ", ".join("?" for _ in frame.columns)
                cursor.execute("PRAGMA foreign_keys=OFF")
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})", frame.iter_rows()
                )
            else:
                # as PRAGMA foreign_keys=OFF does on SQLite: the pull's run rows are not copied
                cursor.execute("SET session_replication_role = replica")
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in frame.iter_rows():
                        copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def machine() -> dict[str, Any]:
    memory = psutil.virtual_memory().total
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def baseline_per_case(path: Path | None) -> tuple[int, dict[str, float]]:
    """A results file from another size: its cases and each stage's microseconds a case."""
    if path is None:
        return 0, {}
    data = json.loads(path.read_text())
    cases = int(data["cases"])
    return cases, {s["stage"]: s["seconds"] / cases * 1e6 for s in data["stages"]}


def floor_ratio(figures: StageFigures, floors: dict[str, dict[str, Any]]) -> float:
    """The stage's time over its floor: its own for the letters and the archive, else the
    pull's (the rows the pull loaded, bulk-inserted by the driver)."""
    seconds = floors[OWN_FLOOR.get(figures.stage, "pull")]["seconds"]
    return round(figures.seconds / seconds, 2) if seconds else 0.0


def report(
    figures: list[StageFigures],
    floors: dict[str, dict[str, Any]],
    total: float,
    cases: int,
    baseline: tuple[int, dict[str, float]],
) -> Table:
    programme = sum(f.seconds for f in figures if f.stage not in NOT_THE_PROGRAMME)
    table = Table(
        title=f"csa-closure benchmark: {programme:,.1f} s for the whole programme"
        f" ({total:,.1f} s with generating the test data)"
    )
    base_cases, base = baseline
    columns = ["stage", "runs", "seconds", "rows", "rows/s", "peak MB", "x floor", "µs/case"]
    if base:
        columns.append(f"x µs/case at {base_cases:,}")
    for name in columns:
        table.add_column(name, justify="left" if name == "stage" else "right")
    for f in figures:
        per_case = f.us_per_case(cases)
        row = [
            f.stage,
            str(f.runs),
            f"{f.seconds:,.1f}",
            f"{f.rows:,}",
            f"{f.rows_per_second:,}",
            f"{f.peak_mb:,}",
            f"{floor_ratio(f, floors):.1f} {OWN_FLOOR.get(f.stage, 'pull')}",
            f"{per_case:,.1f}",
        ]
        if base:
            row.append(f"{per_case / base[f.stage]:.2f}" if base.get(f.stage) else "")
        table.add_row(*row)
    for name, floor in floors.items():
        what = "Arrow to Parquet" if name == "archive" else "driver bulk insert"
        table.add_row(
            f"(floor {name}: {what})",
            "1",
            f"{floor['seconds']:,.1f}",
            f"{floor['rows']:,}",
            f"{int(floor['rows'] / floor['seconds']):,}" if floor["seconds"] else "",
            "",
            f"1.0 {name}",
            f"{floor['seconds'] / cases * 1e6:,.1f}" if cases else "",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1_300_000, help="legacy cases to generate")
    parser.add_argument("--db", help="an empty PostgreSQL store URL (default: SQLite in --workdir)")
    parser.add_argument("--workdir", type=Path, default=HERE / "work", help="scratch directory")
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--json", type=Path, help="where to write the figures")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a results file from another size (e.g. 100,000 cases): each stage's cost a case "
        "is compared with it, to show the cost stays flat as the book grows",
    )
    parser.add_argument(
        "--channel",
        default="print-file",
        choices=["print-file", "fake-notify"],
        help="letters channel (default print-file: Notify's API is limited to 3,000 a "
        "minute and 20,000 a day, so its wall time is set by Notify, not by this code)",
    )
    parser.add_argument(
        "--daily-letter-limit",
        type=int,
        default=10_000_000,
        help="letters a day (default: no practical cap, so the run is not paced by Notify's "
        "daily limit)",
    )
    args = parser.parse_args(argv)

    prepare_directory(args.workdir)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    settings = DemoSettings(
        cases=args.cases,
        seed=args.seed,
        channel=args.channel,
        daily_letter_limit=args.daily_letter_limit,
    )
    demo = MeasuredDemo(settings, args.workdir, store_url=args.db)
    started = time.perf_counter()
    result = demo.run()
    total = time.perf_counter() - started
    simulate = measure_simulate(demo.ctx())
    floor = measure_floor(demo.store_url)
    archive_floor = measure_archive_floor(demo.store_url, args.workdir)
    letters_floor = measure_letters_floor(demo.store_url)
    floors = {"pull": floor, "letters": letters_floor, "archive": archive_floor}
    figures = [*demo.figures.values(), simulate]
    database = "postgresql" if demo.store_url.startswith("postgres") else "sqlite"
    by_stage = {f.stage: f for f in figures}
    outcome = {
        # the stages operators run; generating the replica (and the legacy team's corrected
        # copy) is the test data, and rules simulate is timed after the programme, apart
        "programme_seconds": round(
            sum(f.seconds for f in demo.figures.values() if f.stage not in NOT_THE_PROGRAMME), 1
        ),
        "with_generation_seconds": round(total, 1),
        "max_stage_peak_mb": max(f.peak_mb for f in figures),
        "pull_floor_ratio": round(by_stage["pull"].seconds / floor["seconds"], 2),
        # the target is for one run: the longest (the first, over the whole book)
        "assess_seconds": round(max(s["seconds"] for s in demo.steps if s["step"] == "assess"), 1),
        "simulate_seconds": round(simulate.seconds, 1),
        # the archive (write and verify) against reading its tables into Arrow and Parquet
        "archive_floor_ratio": round(by_stage["archive"].seconds / archive_floor["seconds"], 2),
        "letters_floor_ratio": round(by_stage["letters"].seconds / letters_floor["seconds"], 2),
        # the largest of the other stages', each against the pull's floor
        "other_stage_floor_ratio": max(
            floor_ratio(f, floors)
            for f in figures
            if f.stage not in OWN_FLOOR and f.stage not in ("generate", "rules simulate")
        ),
    }
    payload = {
        "started_at": started_at,
        "database": database,
        "cases": args.cases,
        "channel": args.channel,
        "daily_letter_limit": args.daily_letter_limit,
        "machine": machine(),
        "operator_days": result.days,
        "decommission_passed": result.passed,
        "stages": [
            asdict(f)
            | {
                "rows_per_second": f.rows_per_second,
                "us_per_case": f.us_per_case(args.cases),
                "floor": OWN_FLOOR.get(f.stage, "pull"),
                "floor_ratio": floor_ratio(f, floors),
            }
            for f in figures
        ],
        "steps": demo.steps,
        "floor": floor,
        "archive_floor": archive_floor,
        "letters_floor": letters_floor,
        "outcome": outcome,
        "targets": TARGETS,
    }
    console = Console()
    baseline = baseline_per_case(args.baseline)
    if baseline[1]:
        # this run's cost a case over the baseline's, per stage: 1.0 is flat
        payload["per_case_vs_baseline"] = {
            "baseline_cases": baseline[0],
            "ratios": {
                f.stage: round(f.us_per_case(args.cases) / baseline[1][f.stage], 2)
                for f in figures
                if baseline[1].get(f.stage)
            },
        }
    console.print(report(figures, floors, total, args.cases, baseline))
    console.print_json(data=outcome)
    out = args.json or HERE / "results" / f"latest-{database}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    console.print(f"figures written to {out}")
    if args.workdir == HERE / "work":
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
