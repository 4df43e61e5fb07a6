"""The CLI as a whole: every command documented, and the schema guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from csa_closure.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _commands(
    group: click.Group, prefix: str = "csa-closure"
) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def test_every_command_and_option_has_help_text() -> None:
    missing = []
    for path, command in _commands(cli):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []


def test_every_command_is_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    undocumented = [
        path
        for path, command in _commands(cli)
        if not isinstance(command, click.Group)
        and not re.search(re.escape(path) + r"(\s|`|$)", readme)
    ]
    assert undocumented == []


def test_commands_refuse_a_store_whose_schema_is_not_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = CliRunner().invoke(cli, ["--db", url, "quarantine", "list"])
    assert result.exit_code == 3
    assert "csa-closure db upgrade" in result.output


def test_db_upgrade_then_status_reports_current(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", url, "db", "status"]).exit_code == 3
    upgraded = runner.invoke(cli, ["--db", url, "db", "upgrade", "--format", "json"])
    assert upgraded.exit_code == 0, upgraded.output
    assert '"is_current": true' in upgraded.output
    assert runner.invoke(cli, ["--db", url, "db", "status"]).exit_code == 0


def test_a_bad_as_of_date_is_refused_with_the_format() -> None:
    result = CliRunner().invoke(cli, ["--as-of", "31/03/2019", "db", "status"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output
