"""The decommission gate: every gate fails for its own reason, and all pass on a closed book."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import ExitCode
from csa_closure.stages.archive import archive, verify
from csa_closure.stages.decommission import (
    DecommissionCheck,
    decommission_check,
)
from csa_closure.store import events as event_log
from csa_closure.store.runs import stage_run
from tests.support.books import closed_book

GATES = [
    "debts_closed",
    "reconciliation_balanced",
    "letters_final",
    "quarantine_resolved",
    "archive_verified",
]


def _archived_and_verified(ctx: Context, out: Path) -> None:
    archive(ctx, out)
    assert verify(ctx, out).ok


def _failing(check: DecommissionCheck) -> list[str]:
    return [g.name for g in check.gates if not g.passed]


def _gate(check: DecommissionCheck, name: str):  # type: ignore[no-untyped-def]
    return next(g for g in check.gates if g.name == name)


def test_every_gate_passes_on_a_closed_archived_book(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    _archived_and_verified(book.ctx, tmp_path / "a")
    check = decommission_check(book.ctx)
    assert [g.name for g in check.gates] == GATES
    assert check.passed, [(g.name, g.detail) for g in check.gates]
    assert all(g.blocking_count == 0 and g.examples == [] for g in check.gates)


@pytest.mark.parametrize(
    ("defect", "gate", "blocking", "examples", "detail"),
    [
        ("open_debt", "debts_closed", 1, ["S000000004"], "awaiting_letter 1"),
        ("unbalanced", "reconciliation_balanced", 4, ["CSCS PWC source"], "does not hold"),
        ("letter_not_final", "letters_final", 1, ["S000000002"], "accepted 1"),
        ("quarantine_held", "quarantine_resolved", 1, ["C000000099"], "13,023 pence"),
    ],
)
def test_each_gate_fails_for_its_own_reason(
    ctx: Context,
    tmp_path: Path,
    defect: str,
    gate: str,
    blocking: int,
    examples: list[str],
    detail: str,
) -> None:
    book = closed_book(ctx, defect)
    _archived_and_verified(book.ctx, tmp_path / "a")
    check = decommission_check(book.ctx)
    assert _failing(check) == [gate]
    failed = _gate(check, gate)
    assert failed.blocking_count == blocking
    assert failed.examples[: len(examples)] == examples
    assert detail in failed.detail
    assert not check.passed


def test_no_archive_blocks(ctx: Context) -> None:
    check = decommission_check(closed_book(ctx).ctx)
    assert _failing(check) == ["archive_verified"]
    assert "no archive written" in _gate(check, "archive_verified").detail


def test_an_unverified_archive_blocks(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    check = decommission_check(book.ctx)
    assert _failing(check) == ["archive_verified"]
    assert "never verified" in _gate(check, "archive_verified").detail


def test_a_failed_verification_blocks(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    (tmp_path / "a" / "ledger.parquet").unlink()
    assert not verify(book.ctx, tmp_path / "a").ok
    check = decommission_check(book.ctx)
    assert _failing(check) == ["archive_verified"]
    assert "failed verification" in _gate(check, "archive_verified").detail


def test_a_newer_unverified_archive_blocks(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    _archived_and_verified(book.ctx, tmp_path / "a")
    archive(book.ctx, tmp_path / "b")
    assert _failing(decommission_check(book.ctx)) == ["archive_verified"]


def test_a_store_changed_after_the_archive_blocks(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    _archived_and_verified(book.ctx, tmp_path / "a")
    with stage_run(book.ctx.on(date(2019, 4, 2)), "notify", {}) as run, run.chunk() as conn:
        event_log.record(
            conn, run, "letters.status_changed", case_ref="S000000002", entity="letter:1"
        )
    check = decommission_check(book.ctx)
    assert _failing(check) == ["archive_verified"]
    gate = _gate(check, "archive_verified")
    assert gate.examples == ["events.parquet"]
    assert "the store changed after archive 1" in gate.detail
    # a new archive, verified, clears it; later read-only runs (verify itself) do not count
    _archived_and_verified(book.ctx, tmp_path / "b")
    assert decommission_check(book.ctx).passed


def test_examples_are_limited_but_the_count_is_complete(ctx: Context) -> None:
    book = closed_book(ctx, "open_debt")
    check = decommission_check(book.ctx, examples=0)
    gate = _gate(check, "debts_closed")
    assert gate.blocking_count == 1 and gate.examples == []


def test_cli_json_and_exit_codes(ctx: Context, store_url: str, tmp_path: Path) -> None:
    book = closed_book(ctx)
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31"]
    blocked = runner.invoke(cli, [*base, "decommission", "check", "--format", "json"])
    assert blocked.exit_code == ExitCode.GATE_CLOSED == 7
    data = json.loads(blocked.output)
    assert data["passed"] is False
    assert [g["name"] for g in data["gates"]] == GATES
    assert set(data["gates"][0]) == {"name", "passed", "blocking_count", "examples", "detail"}
    table = runner.invoke(cli, [*base, "decommission", "check"])
    assert table.exit_code == 7 and "NOT READY" in table.output

    _archived_and_verified(book.ctx, tmp_path / "a")
    passed = runner.invoke(cli, [*base, "decommission", "check", "--format", "json"])
    assert passed.exit_code == 0, passed.output
    assert json.loads(passed.output)["passed"] is True
    as_csv = runner.invoke(cli, [*base, "decommission", "check", "--format", "csv"])
    assert as_csv.exit_code == 0
    assert as_csv.output.splitlines()[0] == "name,passed,blocking_count,examples,detail"
