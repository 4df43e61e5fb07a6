"""The letters stage at scale: ``notify build``, approve, ``notify send --channel print-file``.

Prepare a pulled, assessed store once (e.g. 200,000 cases)::

    csa-closure sample legacy --cases 200000 --seed 3 --out L.db
    csa-closure --db sqlite:///base.db db upgrade
    csa-closure --db sqlite:///base.db --as-of 2019-04-01 pull --source L.db
    csa-closure --db sqlite:///base.db --as-of 2019-04-01 assess

then time the letters on a copy of it (the base is never changed)::

    python benchmarks/letters.py base.db WORKDIR            # build, approve, print-file send
    python benchmarks/letters.py base.db WORKDIR --profile  # and a cProfile of each step

Each step runs in its own process, so its peak resident memory is its own. ``WORKDIR`` keeps
``built.db`` (the store after build and approve), so ``--send-only`` times the send again on a
fresh copy of the same batch, and the print files land in ``WORKDIR/print-<n>`` to compare
runs byte for byte (``--send-only`` on two versions of the code must give identical files).
Prints one JSON line per step: seconds, CPU seconds, peak RSS, the load average when it
finished. After the
send, a ``floor`` step bulk-inserts the rows the three steps wrote (the letters, their status
history and the events of the notify runs) straight through the driver into an empty copy of
the tables, as ``benchmarks/run.py`` does for the pull: the letters' time over that is their
ratio to the floor.

On PostgreSQL, copy a pulled, assessed database and run the steps on the copy one by one::

    createdb -T csa_bench letters_run
    python benchmarks/letters.py --step build postgresql+psycopg://postgres@127.0.0.1/letters_run
    python benchmarks/letters.py --step approve postgresql+psycopg://...
    python benchmarks/letters.py --step send postgresql+psycopg://... --out /tmp/print
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

AS_OF = date(2019, 4, 1)


def _context(db: Path | str, actor: str) -> Any:
    from csa_closure.context import Context, Settings
    from csa_closure.store.engine import make_engine

    url = str(db) if "://" in str(db) else f"sqlite:///{db}"
    return Context(engine=make_engine(url), as_of=AS_OF, actor=actor, settings=Settings())


def step(name: str, db: Path | str, out: Path | None, profile: Path | None) -> dict[str, Any]:
    """One step, in this process."""
    from csa_closure.channels import PrintFileChannel
    from csa_closure.letters import load_letters_config
    from csa_closure.stages.letters_outbox import (
        SendOptions,
        approve_batch,
        build_batch,
        send_batch,
    )

    config = load_letters_config(env={})
    profiler = cProfile.Profile() if profile else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    if name == "build":
        built = build_batch(_context(db, "maker"))
        summary: dict[str, Any] = {
            "batch_id": built.batch_id,
            "pending": built.pending,
            "held": built.held,
            "held_by_reason": built.held_by_reason,
        }
    elif name == "approve":
        approved = approve_batch(_context(db, "checker"), 1)
        summary = {"letters": sum(approved.by_kind.values())}
    elif name == "send":
        assert out is not None
        sent = send_batch(
            _context(db, "sender"),
            1,
            PrintFileChannel(out, config),
            config,
            options=SendOptions(daily_limit=None),
        )
        summary = {
            "sent": sent.sent,
            "held": sent.held,
            "cancelled": sent.cancelled,
            "status": sent.batch_status,
            "files": [(f["file"], f["row_count"]) for f in sent.print_files.files]
            if sent.print_files
            else [],
        }
    else:
        raise SystemExit(f"no step {name}")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if profiler:
        profiler.disable()
        assert profile is not None
        profiler.dump_stats(str(profile))
    return {
        "step": name,
        "seconds": round(seconds, 1),
        # the step's own CPU (user + system): steadier than wall time on a shared machine
        "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **summary,
    }


def floor(db: Path | str) -> dict[str, Any]:
    """The rows the letters steps wrote, bulk-inserted by the driver into empty tables
    (``run.py``'s letters floor)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import measure_letters_floor  # type: ignore[import-not-found]

    url = str(db) if "://" in str(db) else f"sqlite:///{db}"
    measured = measure_letters_floor(url)
    return {
        "step": "floor",
        "seconds": round(measured["seconds"], 1),
        "rows": measured["rows"],
        "rows_by_table": measured["rows_by_table"],
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _run_step(name: str, db: Path, out: Path | None, profile: Path | None) -> None:
    command = [sys.executable, __file__, "--step", name, str(db)]
    if out is not None:
        command += ["--out", str(out)]
    if profile is not None:
        command += ["--profile-to", str(profile)]
    subprocess.run(command, check=True)
    if profile is not None:
        stats = pstats.Stats(str(profile))
        stats.sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="a pulled, assessed SQLite store (--step: a store or URL)")
    parser.add_argument("workdir", type=Path, nargs="?")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--send-only", action="store_true", help="send again from WORKDIR/built.db")
    parser.add_argument(
        "--step", choices=["build", "approve", "send", "floor"], help="one step only"
    )
    parser.add_argument("--out", type=Path, help="--step send: where the print files go")
    parser.add_argument("--profile-to", type=Path, help="--step: write a cProfile here")
    args = parser.parse_args()
    if args.step == "floor":
        print(json.dumps(floor(args.base)), flush=True)
        return
    if args.step:
        print(json.dumps(step(args.step, args.base, args.out, args.profile_to)), flush=True)
        return
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    built = work / "built.db"
    profile = (lambda n: work / f"{n}.prof") if args.profile else (lambda n: None)
    if not args.send_only:
        shutil.copyfile(Path(args.base), built)
        _run_step("build", built, None, profile("build"))
        _run_step("approve", built, None, None)
    sending = work / "sending.db"
    shutil.copyfile(built, sending)
    n = 1
    while (work / f"print-{n}").exists():
        n += 1
    _run_step("send", sending, work / f"print-{n}", profile("send"))
    _run_step("floor", sending, None, None)


if __name__ == "__main__":
    main()
