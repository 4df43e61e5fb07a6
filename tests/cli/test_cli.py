"""The CLI as a whole: every command documented, and the schema guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from csa_closure.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"


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


def test_the_root_help_lists_each_command_by_its_own_first_sentence() -> None:
    """The root help reads COMMANDS, not the command modules (so it starts fast): each entry
    must name the command's real module and say what the command's own help says."""
    from csa_closure.cli import COMMANDS

    assert set(COMMANDS) == set(cli.commands)
    for name, (_, _, first_sentence) in COMMANDS.items():
        command = cli.commands[name]
        assert command.name == name
        assert click.Command(name, help=first_sentence).get_short_help_str(1000) == (
            command.get_short_help_str(1000)
        ), name


def test_help_and_version_import_no_heavy_library() -> None:
    """`csa-closure --help` and `--version` must not wait for polars, SQLAlchemy, Alembic,
    pyarrow or rich: checked in a fresh interpreter, by what was imported (not by timing)."""
    import subprocess
    import sys

    heavy = ("polars", "sqlalchemy", "alembic", "pyarrow", "rich", "notifications_python_client")
    probe = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from csa_closure.cli import cli\n"
        "for args in (['--help'], ['--version'], ['db', '--help']):\n"
        "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
        "    if args[0] != 'db':\n"
        f"        print(args[0], sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == ["--help []", "--version []"]
