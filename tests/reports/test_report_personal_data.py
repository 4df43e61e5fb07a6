"""No personal data in any report, check or default archive: every byte is scanned.

The books' parents have distinctive names, addresses, postcodes, NINOs and dates of birth
(``PERSONAL_TOKENS``). Each command is run in each format, with debug logging on, and its whole
output searched; the default archive's files are searched both as bytes and decoded. An
archive made with --include-personal-data must contain them (so the scan is shown to work).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.context import Context
from tests.support.books import PERSONAL_TOKENS, mid_book

COMMANDS = [
    ["report", "progress"],
    ["report", "reconcile"],
    ["report", "rules"],
    ["report", "runs"],
    ["decommission", "check"],
]


def _found(text: str) -> list[str]:
    lowered = text.lower()
    return [t for t in PERSONAL_TOKENS if t.lower() in lowered]


def _decoded(path: Path) -> str:
    """Every value of a Parquet file as text (compressed bytes would hide a name)."""
    return pl.read_parquet(path).write_csv()


def _archive_text(out: Path) -> str:
    parts = []
    for path in sorted(out.iterdir()):
        parts.append(path.read_bytes().decode("utf-8", errors="replace"))
        if path.suffix == ".parquet":
            parts.append(_decoded(path))
    return "\n".join(parts)


def test_no_report_check_or_default_archive_shows_personal_data(
    ctx: Context, store_url: str, tmp_path: Path
) -> None:
    mid_book(ctx)
    runner = CliRunner()
    base = ["-vv", "--db", store_url, "--as-of", "2019-03-31"]
    outputs: dict[str, str] = {}
    for command in COMMANDS:
        for fmt in ("table", "json", "csv"):
            result = runner.invoke(cli, [*base, *command, "--format", fmt])
            assert result.exception is None or isinstance(result.exception, SystemExit)
            outputs[f"{' '.join(command)} {fmt}"] = result.output
    out = tmp_path / "evidence"
    outputs["archive"] = runner.invoke(cli, [*base, "archive", "--out", str(out)]).output
    for fmt in ("table", "json", "csv"):
        outputs[f"archive verify {fmt}"] = runner.invoke(
            cli, [*base, "archive", "verify", str(out), "--format", fmt]
        ).output
    assert all(outputs.values())
    leaks = {name: _found(text) for name, text in outputs.items() if _found(text)}
    assert leaks == {}
    assert _found(_archive_text(out)) == []
    assert not (out / "parties.parquet").exists()


def test_the_scan_finds_personal_data_when_it_is_asked_for(
    ctx: Context, store_url: str, tmp_path: Path
) -> None:
    mid_book(ctx)
    out = tmp_path / "with-pd"
    result = CliRunner().invoke(
        cli,
        ["--db", store_url, "archive", "--out", str(out), "--include-personal-data"],
    )
    assert result.exit_code == 0, result.output
    assert _found(result.output) == []  # the command's own output still shows none
    assert sorted(_found(_decoded(out / "parties.parquet"))) == sorted(PERSONAL_TOKENS)
    others = "\n".join(_decoded(p) for p in out.glob("*.parquet") if p.name != "parties.parquet")
    assert _found(others) == []
