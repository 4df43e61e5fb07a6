"""``csa-closure report ...`` through the CLI: formats, options and exit codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from sqlalchemy import update

from csa_closure.cli import cli
from csa_closure.cli.report import watch
from csa_closure.context import Context
from csa_closure.errors import ExitCode
from csa_closure.store.schema import debts
from tests.support.books import mid_book


def run(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", store_url, "--as-of", "2019-03-31", *args])


@pytest.fixture
def mid(ctx: Context, store_url: str) -> str:
    mid_book(ctx)
    return store_url


def test_progress_in_every_format(mid: str) -> None:
    table = run(mid, "report", "progress", "--chart-days", "7")
    assert table.exit_code == 0, table.output
    assert "Funnel at 2019-03-31" in table.output and "Expected finish" in table.output
    as_json = json.loads(run(mid, "report", "progress", "--format", "json").output)
    assert as_json["funnel"]["loaded"] == {"debts": 11, "pence": 1_681_000}
    assert as_json["finish"]["daily_letter_limit"] == 20_000
    limited = json.loads(
        run(mid, "report", "progress", "--format", "json", "--daily-letter-limit", "1").output
    )
    assert limited["finish"]["sending_days"] == 1  # one letter still to send
    rows = list(
        csv.DictReader(io.StringIO(run(mid, "report", "progress", "--format", "csv").output))
    )
    assert {r["section"] for r in rows} >= {"state", "letters", "deadlines", "closures", "finish"}


def test_watch_is_for_the_table_only(mid: str) -> None:
    result = run(mid, "report", "progress", "--watch", "--format", "json")
    assert result.exit_code == 2 and "--watch" in result.output


def test_watch_redraws_until_ctrl_c() -> None:
    drawn: list[int] = []
    sleeps: list[float] = []

    def build() -> str:
        drawn.append(len(drawn))
        return f"frame {len(drawn)}"

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt

    out = Console(file=io.StringIO(), width=40)
    watch(out, build, 2.5, sleep=sleep)
    assert len(drawn) == 3 and sleeps == [2.5, 2.5, 2.5]


def test_reconcile_json_has_the_promised_keys(mid: str) -> None:
    result = run(mid, "report", "reconcile", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["balanced"] is True
    for creditor in ("PWC", "SOS"):
        for key in (
            "source_pence",
            "quarantined_pence",
            "loaded_pence",
            "nil_pence",
            "written_off_pence",
            "transferred_pence",
            "open_pence",
        ):
            assert isinstance(data[creditor][key], int), (creditor, key)
    assert data["SOS"]["written_off_pence"] == 40_000
    assert data["systems"]["CSCS"]["SOS"]["reversed_pence"] == 20_000
    assert data["problems"] == []


def test_reconcile_exits_5_and_names_the_equation_when_unbalanced(ctx: Context, mid: str) -> None:
    with ctx.engine.begin() as conn:  # a debt's balance altered behind the ledger's back
        conn.execute(
            update(debts)
            .where(debts.c.case_ref == "C000000001", debts.c.creditor == "SOS")
            .values(opening_pence=30_001)
        )
    table = run(mid, "report", "reconcile")
    assert table.exit_code == ExitCode.UNBALANCED == 5
    assert "NOT BALANCED" in table.output
    assert "CSCS SOS: source + drift = loaded + quarantined does not hold" in table.output
    data = json.loads(run(mid, "report", "reconcile", "--format", "json").output)
    # the source equation, and the ledger against the state (the book equation with it)
    assert data["balanced"] is False and len(data["problems"]) == 3
    rows = list(
        csv.DictReader(io.StringIO(run(mid, "report", "reconcile", "--format", "csv").output))
    )
    assert [
        (r["system"], r["creditor"], r["balanced"]) for r in rows if r["balanced"] == "False"
    ] == [
        ("CSCS", "SOS", "False"),
        ("ALL", "SOS", "False"),
    ]


def test_rules_current_and_history(mid: str) -> None:
    data = json.loads(run(mid, "report", "rules", "--format", "json").output)
    nrp = [h for h in data["history"] if h["reason"] == "NRP_DECEASED"]
    assert {(h["outcome"], h["current"], h["superseded"]) for h in nrp} == {
        ("manual_review", 0, 1),
        ("write_off_notice", 1, 0),
    }
    assert data["superseded_decisions"] == 1
    current = {(r["rule_id"], r["outcome"]): r for r in data["current"]}
    assert current["sos-05-write-off", "write_off_silent"]["debts"] == 3
    assert current["sos-05-write-off", "write_off_silent"]["closed_pence"] == 40_000
    only = json.loads(run(mid, "report", "rules", "--ruleset", "nope", "--format", "json").output)
    assert only["current"] == [] and only["history"] == []
    csv_out = run(mid, "report", "rules", "--format", "csv").output
    assert csv_out.startswith("view,ruleset_hash,rule_id,outcome,reason,")
    table = run(mid, "report", "rules")
    assert table.exit_code == 0 and "superseded" in table.output


def test_runs_filtered_and_limited(mid: str) -> None:
    data = json.loads(run(mid, "report", "runs", "--format", "json").output)
    assert [r["run_id"] for r in data["runs"]][:2] == [16, 15]
    assert data["runs"][-1]["stage"] == "seed" and data["runs"][-1]["duration_seconds"] is None
    assert "parameters" not in data["runs"][0]
    assessed = json.loads(
        run(mid, "report", "runs", "--stage", "assess", "--limit", "2", "--format", "json").output
    )
    assert [r["stage"] for r in assessed["runs"]] == ["assess", "assess"]
    assert date.fromisoformat(assessed["runs"][0]["as_of"]) == date(2019, 3, 1)
    rows = list(csv.DictReader(io.StringIO(run(mid, "report", "runs", "--format", "csv").output)))
    assert json.loads(next(r for r in rows if r["stage"] == "pull")["counts"]) == {
        "cases_loaded": 7
    }
    assert run(mid, "report", "runs", "--limit", "0").exit_code == 0
