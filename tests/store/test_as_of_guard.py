"""The as-of date guarded: a writing command at a date after today, or before the newest
as-of already recorded, is refused (exit 2) unless --allow-as-of, and then the run says so."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import ExitCode
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.store.runs import AS_OF_ALLOWED
from csa_closure.store.schema import stage_runs


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=40, seed=3)
    return path


def _runs(ctx: Context) -> list[tuple[str, date, dict[str, object]]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            select(stage_runs.c.stage, stage_runs.c.as_of, stage_runs.c.parameters).order_by(
                stage_runs.c.run_id
            )
        ).all()
    return [(r.stage, r.as_of, dict(r.parameters)) for r in rows]


def test_a_date_before_the_newest_recorded_as_of_is_refused_unless_allowed(
    ctx: Context, store_url: str, legacy_file: Path
) -> None:
    def run(as_of: str, *args: str) -> Result:
        return CliRunner().invoke(
            cli, ["--db", store_url, "--as-of", as_of, *args, "pull", "--source", str(legacy_file)]
        )

    first = run("2019-03-31")
    assert first.exit_code == 0, first.output
    typo = run("2019-03-13")  # a typed mistake for the 31st
    assert typo.exit_code == ExitCode.BAD_INPUT, typo.output
    message = typo.output
    assert "2019-03-13 is before 2019-03-31" in message and "--allow-as-of" in message
    assert [r[0] for r in _runs(ctx)] == ["pull"]  # nothing recorded for the refusal
    same_day = run("2019-03-31")
    assert same_day.exit_code == 0

    meant = run("2019-03-13", "--allow-as-of")
    assert meant.exit_code == 0, meant.output
    stage, as_of, parameters = _runs(ctx)[-1]
    assert (stage, as_of) == ("pull", date(2019, 3, 13))
    assert "is before 2019-03-31" in str(parameters[AS_OF_ALLOWED])
    assert AS_OF_ALLOWED not in _runs(ctx)[0][2]  # ordinary runs carry no such mark

    # read-only commands are not guarded: a report for an earlier date is fine
    report = CliRunner().invoke(
        cli, ["--db", store_url, "--as-of", "2019-01-01", "report", "runs", "--format", "json"]
    )
    assert report.exit_code == 0, report.output


def test_a_date_after_today_is_refused_unless_allowed(
    ctx: Context, store_url: str, legacy_file: Path
) -> None:
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    base = ["--db", store_url, "--as-of", tomorrow]
    future = CliRunner().invoke(cli, [*base, "pull", "--source", str(legacy_file)])
    assert future.exit_code == ExitCode.BAD_INPUT, future.output
    assert f"{tomorrow} is after today" in future.output
    assert _runs(ctx) == []
    meant = CliRunner().invoke(cli, [*base, "--allow-as-of", "pull", "--source", str(legacy_file)])
    assert meant.exit_code == 0, meant.output
    assert "is after today" in str(_runs(ctx)[0][2][AS_OF_ALLOWED])
    # a run let through does not move the line: today's ordinary run is not "before" it
    today = CliRunner().invoke(
        cli,
        [
            "--db",
            store_url,
            "--as-of",
            date.today().isoformat(),
            "pull",
            "--source",
            str(legacy_file),
        ],
    )
    assert today.exit_code == 0, today.output
