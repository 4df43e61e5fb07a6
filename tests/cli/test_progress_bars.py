"""Progress on long stages: each system of the pull has its own bars with true totals (so the
ETA is right), the send counts every letter, and the demo has an overall bar."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from csa_closure.context import Context
from csa_closure.simulation.demo import OVERALL_TASK, DemoSettings, run_demo
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.pull import pull
from tests.conftest import AS_OF


class Recorder:
    def __init__(self) -> None:
        self.totals: dict[str, int | None] = {}
        self.done: dict[str, int] = defaultdict(int)
        self.finished: list[str] = []

    def start(self, task: str, total: int | None) -> None:
        self.totals[task] = total
        self.done[task] = 0

    def advance(self, task: str, n: int = 1) -> None:
        assert task in self.totals, f"{task} advanced before it started"
        self.done[task] += n

    def finish(self, task: str) -> None:
        self.finished.append(task)


def test_each_system_of_the_pull_has_its_own_bars(ctx: Context, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.db"
    generate_legacy(str(legacy), 400, 3, AS_OF)
    seen = Recorder()
    result = pull(ctx, str(legacy), progress=seen)
    for system in ("CSCS", "CS2"):
        task = f"pull {system}: loading cases"
        assert seen.totals[task] == seen.done[task] > 0  # the total is what is done: true ETA
        assert seen.totals[task] == result.systems[system].cases_loaded
        assert f"pull {system}: reading" in seen.finished and task in seen.finished
        reading = f"pull {system}: reading"  # the legacy rows, counted first: a true total
        assert seen.totals[reading] == seen.done[reading] > seen.totals[task]
    assert not [t for t in seen.totals if t.startswith("pull:")]  # no unlabelled bar


def test_the_demo_has_an_overall_bar_and_the_send_counts_every_letter(tmp_path: Path) -> None:
    seen = Recorder()
    result = run_demo(
        DemoSettings(cases=300, seed=5, channel="print-file"), tmp_path / "demo", seen
    )
    assert result.decommission is not None
    assert [g.name for g in result.decommission.gates if not g.passed] == []
    assert seen.totals[OVERALL_TASK] == seen.done[OVERALL_TASK] > 0  # every debt closed
    assert OVERALL_TASK in seen.finished
    sends = [t for t in seen.totals if t.startswith("print send")]
    assert set(sends) == {
        "print send: screening and writing letters", "print send: marking sent",
    }  # fmt: skip
    assert all(seen.done[t] == seen.totals[t] for t in sends)  # every letter counted
