"""``report progress``: the headline first, the burndown with the pace to a target date, and
``--plot`` drawing it to a PNG or SVG."""

from __future__ import annotations

import json
import struct
import sys
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.reports.progress import burndown, pace_needed, progress_report
from tests.support.books import mid_book


def run(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", store_url, "--as-of", "2019-03-31", *args])


@pytest.fixture
def mid(ctx: Context, store_url: str) -> str:
    mid_book(ctx)
    return store_url


def test_the_burndown_ends_at_the_open_book_as_it_stands(ctx: Context) -> None:
    report = progress_report(mid_book(ctx).ctx)
    points = burndown(report)
    still_open = report.total({"to decide", "in progress"})
    assert (points[-1].open_debts, points[-1].open_pence) == (still_open.debts, still_open.pence)
    assert points[-1].as_of == report.as_of
    days = [p.as_of for p in points]
    assert days == sorted(days) and len(set(days)) == len(days)  # one point a day
    assert all(p.open_debts <= report.total().debts for p in points)
    pace = pace_needed(report, date(2019, 4, 30))
    assert pace.days_left == 30
    assert pace.debts_per_day == -(-still_open.debts // 30)
    assert pace.pence_per_day == -(-still_open.pence // 30)


def test_the_headline_comes_first_with_the_pace_for_a_target(mid: str) -> None:
    shown = run(mid, "report", "progress", "--target", "2019-04-30")
    assert shown.exit_code == 0, shown.output
    first = shown.output.splitlines()[0]
    assert first.startswith("36.3% of debts closed (4 of 11)"), first
    assert "£16,010.00 still open" in shown.output.split("Funnel")[0]
    assert "expected finish 2019-06-01" in " ".join(shown.output.split("Funnel")[0].split())
    assert "target 2019-04-30: behind" in " ".join(shown.output.split("Funnel")[0].split())
    assert "Burndown: debts still open per day" in shown.output
    assert "the pace to finish by 2019-04-30" in shown.output
    data = json.loads(run(mid, "report", "progress", "--format", "json").output)
    assert data["headline"]["open_pence"] == 1_601_000
    assert data["burndown"][-1] == {"as_of": "2019-03-31", "open_debts": 7, "open_pence": 1_601_000}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_plot_writes_a_png_and_an_svg(mid: str, tmp_path: Path) -> None:
    png = tmp_path / "pack" / "burndown.png"
    made = run(mid, "report", "progress", "--target", "2019-04-30", "--plot", str(png))
    assert made.exit_code == 0, made.output
    assert _png_size(png) == (1000, 650)
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (650, 1000)
    assert pixels.std() > 0  # something is drawn
    svg = tmp_path / "burndown.svg"
    assert run(mid, "report", "progress", "--plot", str(svg)).exit_code == 0
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()


def test_plot_refuses_other_files_and_says_how_to_get_matplotlib(
    mid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = run(mid, "report", "progress", "--plot", str(tmp_path / "burndown.jpg"))
    assert wrong.exit_code == 2 and ".png or .svg" in wrong.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    missing = run(mid, "report", "progress", "--plot", str(tmp_path / "b.png"))
    assert missing.exit_code == 2
    assert "pip install 'csa-closure[plot]'" in missing.output
    assert not (tmp_path / "b.png").exists()


def test_watch_draws_the_headline_first(ctx: Context) -> None:
    """--watch redraws progress_renderable, whose first part is the headline."""
    from csa_closure.reports import render

    report = progress_report(mid_book(ctx).ctx)
    first = render.progress_renderable(report).renderables[0]
    assert first.plain == render.headline_renderable(report).plain  # type: ignore[union-attr]
    assert first.plain.startswith("36.3% of debts closed")  # type: ignore[union-attr]
