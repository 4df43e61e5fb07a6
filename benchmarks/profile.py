"""Where the programme's time goes: the demo's programme with every slow step profiled.

    pip install pyinstrument
    python benchmarks/profile.py --cases 200000 --out benchmarks/work/profiles

Runs the same programme as ``run.py`` (print files, no practical daily cap) and, for every
step that takes at least ``--min-seconds``, writes a pyinstrument text profile named after the
day and the step (``2019-04-01-notify-send.txt``), plus ``steps.txt`` listing every step's
time. This is what a closing note's "the profile that shows why" points at: the profiles are
made on demand, not committed (they name functions and line numbers, never data).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from csa_closure.simulation.demo import Demo, DemoSettings, prepare_directory
from csa_closure.stages.letters_outbox import FAKE_NOTIFY, PRINT_FILE

HERE = Path(__file__).resolve().parent


class ProfiledDemo(Demo):
    """The demo, each step run under pyinstrument."""

    def __init__(self, *args: Any, out: Path, min_seconds: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.out = out
        self.min_seconds = min_seconds
        self.lines: list[str] = []

    def step(
        self, name: str, command: str, action: Callable[[], Any], summary: Callable[[Any], Any]
    ) -> Any:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002)
        started = time.perf_counter()
        profiler.start()
        try:
            return super().step(name, command, action, summary)
        finally:
            profiler.stop()
            seconds = time.perf_counter() - started
            self.lines.append(f"{self.today} {seconds:8.3f} s  {name}")
            if seconds >= self.min_seconds:
                slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
                path = self.out / f"{self.today}-{slug}.txt"
                n = 2
                while path.exists():
                    path = self.out / f"{self.today}-{slug}-{n}.txt"
                    n += 1
                path.write_text(profiler.output_text(unicode=False, show_all=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2019)
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "profile-store")
    parser.add_argument("--out", type=Path, default=HERE / "work" / "profiles")
    parser.add_argument("--db", help="an empty PostgreSQL store URL (default: SQLite)")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--channel", default=PRINT_FILE, choices=[PRINT_FILE, FAKE_NOTIFY])
    args = parser.parse_args(argv)
    prepare_directory(args.workdir)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = DemoSettings(
        cases=args.cases, seed=args.seed, channel=args.channel, daily_letter_limit=10_000_000
    )
    demo = ProfiledDemo(
        settings, args.workdir, store_url=args.db, out=args.out, min_seconds=args.min_seconds
    )
    started = time.perf_counter()
    demo.run()
    demo.lines.append(f"whole programme {time.perf_counter() - started:.1f} s")
    (args.out / "steps.txt").write_text("\n".join(demo.lines) + "\n")
    print("\n".join(demo.lines))
    print(f"profiles in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
