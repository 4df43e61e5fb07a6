"""Stages out of order: each says how many debts wait and the command to run first, and a
stage that could do nothing exits NOT_READY. Through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from csa_closure.cli import cli
from csa_closure.errors import ExitCode
from csa_closure.simulation.legacy import generate_legacy
from tests.conftest import context_for

AFTER_ASSESS = [
    ["resolve"],
    ["notify", "build"],
    ["transfer", "export", "--out", "{tmp}/cms"],
]


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=40, seed=8)
    return path


def test_stages_run_before_assess_name_the_command_to_run_first(
    store_url: str, legacy_file: Path, tmp_path: Path
) -> None:
    base = ["--db", store_url, "--as-of", "2019-03-31"]

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, [*base, *(a.format(tmp=tmp_path) for a in args)])
        return result.exit_code, result.output

    # an empty store: nothing pulled
    for args in [["assess"], *AFTER_ASSESS]:
        code, output = run(*args)
        assert code == ExitCode.NOT_READY, (args, output)
        assert "Run first: csa-closure pull" in output, output
    # pulled, nothing assessed: every debt waits
    pulled = CliRunner().invoke(cli, [*base, "pull", "--source", str(legacy_file)])
    assert pulled.exit_code == 0, pulled.output
    for args in AFTER_ASSESS:
        code, output = run(*args)
        assert code == ExitCode.NOT_READY, (args, output)
        assert "debts are waiting to be assessed. Run first: csa-closure assess" in output
    assert not (tmp_path / "cms").exists()
    # assessed, then one debt waiting again (a re-pull's new case, here made by hand)
    assessed = CliRunner().invoke(cli, [*base, "assess"])
    assert assessed.exit_code == 0, assessed.output
    ctx = context_for(store_url)
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE debts SET state = 'pulled', outcome = NULL, ruleset_hash = NULL "
                "WHERE debt_id = (SELECT min(debt_id) FROM debts)"
            )
        )
    ctx.engine.dispose()
    resolved = CliRunner().invoke(cli, [*base, "resolve", "--format", "json"])
    assert resolved.exit_code == 0, resolved.output
    assert "Note: 1 debt(s) are waiting to be assessed and are not in this resolve" in (
        resolved.stderr
    )
    json.loads(resolved.stdout)  # stdout stays clean JSON
