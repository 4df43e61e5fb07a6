"""Snapshot tests of the rendered reports: what a manager sees, character for character.

Each report is drawn on a recording rich console, 80 and 160 columns wide, from the same small store
(``mid_book`` / ``closed_book``, fixed clock and as-of date), on SQLite and on PostgreSQL, and
compared with the text under ``tests/reports/snapshots/``. Both databases must draw the same text.
At either width no line is longer than the width and no amount, date or code is split or
cut short: every one drawn on a 400-column console appears whole (unless the report says it
left a column out for width, when no partial one may appear).

After a deliberate change to a report, regenerate the snapshots and review the diff:

    CSA_CLOSURE_UPDATE_SNAPSHOTS=1 python -m pytest tests/reports/test_report_snapshots.py
    git diff tests/reports/snapshots/
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console, RenderableType
from sqlalchemy import update

from csa_closure.context import Context
from csa_closure.reconcile import reconcile_report
from csa_closure.reports import render
from csa_closure.reports.progress import progress_report
from csa_closure.reports.rules import rules_report
from csa_closure.reports.runs import list_runs
from csa_closure.stages.archive import archive, verify
from csa_closure.stages.decommission import decommission_check
from csa_closure.store.schema import archives, stage_runs
from tests.support.books import closed_book, mid_book

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE_ENV = "CSA_CLOSURE_UPDATE_SNAPSHOTS"
WIDTHS = (80, 160)
WIDE = 400
# what must never be split: pounds, dates, instants' times, case references, rule ids, hashes
TOKEN = re.compile(
    r"-?£[\d,]+\.\d\d|\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|\bC\d{6,}\b|\b[A-Z]{2,}-\d+\b"
    r"|\b[0-9a-f]{8,}\b"
)


def drawn(renderable: RenderableType, width: int = WIDE) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def assert_fits(name: str, renderable: RenderableType | list[RenderableType]) -> None:
    """Snapshots at both widths, each within its width and with every figure whole."""
    parts = renderable if isinstance(renderable, list) else [renderable]
    wide = "".join(drawn(r, WIDE) for r in parts)
    for width in WIDTHS:
        text = "".join(drawn(r, width) for r in parts)
        assert_snapshot(f"{name}_{width}", text)
        too_long = [line for line in text.splitlines() if len(line) > width]
        assert not too_long, f"{name} at {width} columns: {too_long[0]!r}"
        whole, shown = Counter(TOKEN.findall(wide)), Counter(TOKEN.findall(text))
        assert not shown - whole, f"{name} at {width}: split figures {sorted(shown - whole)}"
        if "not shown for width" not in text:
            assert whole == shown, f"{name} at {width}: lost {sorted(whole - shown)}"


def assert_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with {UPDATE_ENV}=1 to write it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} no longer matches tests/reports/snapshots/{path.name}; "
        "if the change is deliberate, "
        f"regenerate with {UPDATE_ENV}=1 and review the diff"
    )


@pytest.fixture
def mid(ctx: Context) -> Context:
    book = mid_book(ctx)
    # runs record the machine they ran on; the snapshot must not depend on it
    with ctx.engine.begin() as conn:
        conn.execute(update(stage_runs).values(host="ops-host"))
    return book.ctx


def test_progress_report(mid: Context) -> None:
    assert_fits("report_progress", render.progress_renderable(progress_report(mid)))


def test_reconcile_report(mid: Context) -> None:
    assert_fits("report_reconcile", render.reconcile_renderable(reconcile_report(mid)))


def test_rules_report(mid: Context) -> None:
    assert_fits("report_rules", render.rules_renderable(rules_report(mid)))


def test_runs_report(mid: Context) -> None:
    assert_fits("report_runs", render.runs_renderable(list_runs(mid)))


def test_decommission_check_on_an_unfinished_book(mid: Context) -> None:
    check = decommission_check(mid, examples=3)
    assert_fits("decommission_unfinished", render.decommission_renderable(check))


def test_archive_verify_and_decommission_on_a_closed_book(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    written = archive(book.ctx, tmp_path / "evidence")
    verified = verify(book.ctx, tmp_path / "evidence")
    # where pytest puts its directories varies, and Parquet bytes carry the writer's
    # version: neither may change the drawing (checksums are tested in test_archive.py)
    shown = Path("/srv/evidence/2019-03-31")
    written.path = verified.path = shown
    written.files = {n: replace(f, sha256="0" * 64) for n, f in written.files.items()}
    written.manifest_sha256 = "0" * 64
    with ctx.engine.begin() as conn:
        conn.execute(update(archives).values(path=str(shown)))
    check = decommission_check(book.ctx)
    assert check.passed
    assert_fits(
        "archive_verify_decommission",
        [
            render.archive_renderable(written),
            render.verify_renderable(verified),
            render.decommission_renderable(check),
        ],
    )


def test_nested_run_counts_are_flattened_into_keys() -> None:
    counts = {"pending": 1500, "by_kind": {"representation.PWC": 497}, "dry_run": False}
    assert (
        render._counts_text(counts)
        == "by_kind.representation.PWC 497, dry_run False, pending 1,500"
    )
