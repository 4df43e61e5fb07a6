"""One table of exit codes: the ``ExitCode`` enum, the docs' table, and no number elsewhere."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import ExitCode
from tests.support.builders import BookBuilder
from tests.support.resolve import RESPONSE_HEADER, final_chance_debt, seal_pull, write_csv

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "json-output.md"
_ROW = re.compile(r"^\| (\d+) \| `([A-Z_]+)` \| (.+) \|$")


def _documented() -> dict[int, str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m[1]): m[2] for line in section.splitlines() if (m := _ROW.match(line))}


def test_the_docs_table_is_the_enum() -> None:
    assert _documented() == {code.value: code.name for code in ExitCode}


def test_the_runbook_says_what_to_do_about_every_exit_code() -> None:
    text = (ROOT / "runbooks" / "README.md").read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(m[1]): m[2] for line in section.splitlines() if (m := _ROW.match(line))}
    assert listed == {code.value: code.name for code in ExitCode}


def test_no_module_defines_an_exit_code_by_number() -> None:
    # the numbers live in csa_closure/errors.py only; everything else names an ExitCode
    literal = re.compile(r"(SystemExit|ctx\.exit|sys\.exit|Exit)\(\s*\d|exit_code\s*=\s*\d")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "csa_closure").rglob("*.py"))
        if path.name != "errors.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert offenders == []


def test_a_response_file_with_every_row_rejected_exits_all_rejected(
    ctx: Context, store_url: str, tmp_path: Path
) -> None:
    book = BookBuilder(ctx)
    book.debt(book.case("C000000001"), "PWC", 10_000, state="awaiting_letter")
    seal_pull(ctx)
    rows = [
        ("D1", "C000000009", "PWC", "COLLECT", "2019-03-01", "POST"),  # no such case
        ("D2", "C000000001", "PWC", "MAYBE", "2019-03-01", "POST"),  # not a response
    ]
    path = write_csv(tmp_path / "r.csv", rows, RESPONSE_HEADER)
    args = ["--db", store_url, "--as-of", "2019-03-31", "responses", "import", str(path)]
    result = CliRunner().invoke(cli, [*args, "--format", "json"])
    assert result.exit_code == ExitCode.ALL_REJECTED == 9, result.output
    assert "every one of the file's 2 rows was rejected" in result.stderr
    assert '"rejected": 2' in result.stdout  # the figures are still printed

    # one accepted row among rejected ones is an ordinary import
    final_chance_debt(book, book.case("C000000002"), 250_000, date(2019, 1, 30))
    mixed = write_csv(
        tmp_path / "m.csv",
        [*rows, ("D3", "C000000002", "PWC", "COLLECT", "2019-03-01", "POST")],
        RESPONSE_HEADER,
    )
    again = CliRunner().invoke(cli, [*args[:-1], str(mixed), "--format", "json"])
    assert again.exit_code == 0, again.output
    assert '"accepted": 1' in again.stdout
