"""The demo is reproducible: the same seed gives the same book, letters and totals, byte for
byte, however loaded the machine is (its clock is logical and its random tokens seeded)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from click.testing import CliRunner

from csa_closure.cli import cli

CASES = "400"


def _spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


@contextmanager
def _cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy processes on every core while the block runs."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for p in spinners:
        p.start()
    try:
        yield
    finally:
        for p in spinners:
            p.terminate()
            p.join()


def _demo(directory: Path) -> dict[str, str]:
    runner = CliRunner()
    ran = runner.invoke(
        cli,
        ["demo", "--cases", CASES, "--seed", "7", "--dir", str(directory), "--format", "json"],
    )
    assert ran.exit_code == 0, ran.output
    db = f"sqlite:///{directory / 'csa_closure.db'}"
    ledger = runner.invoke(cli, ["--db", db, "ledger", "list", "--format", "csv"])
    assert ledger.exit_code == 0, ledger.output
    reconcile = runner.invoke(
        cli, ["--db", db, "--as-of", "2020-12-31", "report", "reconcile", "--format", "json"]
    )
    assert reconcile.exit_code == 0, reconcile.output
    with sqlite3.connect(directory / "csa_closure.db") as conn:
        letters = conn.execute(
            "SELECT reference, debt_id, purpose, status, letter_date, sent_at FROM letters "
            "ORDER BY letter_id"
        ).fetchall()
        debts = conn.execute("SELECT * FROM debts ORDER BY debt_id").fetchall()
        events = conn.execute(
            "SELECT event_id, debt_id, event_type, occurred_at FROM events ORDER BY event_id"
        ).fetchall()
    return {
        "ledger": ledger.output,
        "reconcile": reconcile.output,
        "letters": json.dumps(letters),
        "debts": json.dumps(debts),
        "events": json.dumps(events),
    }


def test_two_demos_with_the_same_seed_are_byte_identical_whatever_the_load(
    tmp_path: Path,
) -> None:
    quiet = _demo(tmp_path / "quiet")
    with _cpu_load():
        loaded = _demo(tmp_path / "loaded")
    assert quiet["ledger"].count("\n") > 10  # write-offs were made
    assert json.loads(quiet["letters"])  # letters were sent
    for name in quiet:
        assert quiet[name] == loaded[name], f"{name} differs between the two runs"
