"""Every pence inside the proof: debt rows whose creditor cannot be read (empty, lower-case,
unknown) are held, and their pence are reconciled in their own bucket, through the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from csa_closure.cli import cli
from csa_closure.simulation.legacy import generate_legacy


def _unreadable_rows(legacy: Path) -> int:
    """Make three CSCS PWC rows unreadable at source (as the legacy control then counts them:
    under no creditor); returns their pence."""
    with sqlite3.connect(legacy) as db:
        rows = db.execute(
            "SELECT rowid, balance FROM cscs_debt WHERE creditor = 'PWC' "
            "AND balance GLOB '[0-9]*.[0-9][0-9]' ORDER BY rowid LIMIT 3"
        ).fetchall()
        pence = sum(round(float(balance) * 100) for _, balance in rows)
        for (rowid, _), creditor in zip(rows, (None, "pwc", "XYZ"), strict=True):
            db.execute("UPDATE cscs_debt SET creditor = ? WHERE rowid = ?", (creditor, rowid))
        db.execute(
            "UPDATE extract_control SET pwc_arrears_pence = pwc_arrears_pence - ? "
            "WHERE system = 'CSCS'",
            (pence,),
        )
    return pence


def test_unreadable_creditors_are_reconciled_in_their_own_bucket(
    store_url: str, tmp_path: Path
) -> None:
    legacy = tmp_path / "legacy.db"
    generate_legacy(str(legacy), cases=60, seed=21)
    pence = _unreadable_rows(legacy)
    assert pence > 0
    base = ["--db", store_url, "--as-of", "2019-03-31"]
    pulled = CliRunner().invoke(cli, [*base, "pull", "--source", str(legacy), "--format", "json"])
    assert pulled.exit_code == 0, pulled.output
    bucket = json.loads(pulled.stdout)["systems"]["CSCS"]["UNREADABLE"]
    assert bucket["source_pence"] == bucket["quarantined_pence"] == pence
    assert bucket["loaded_at_source_pence"] == 0 and bucket["balanced"] is True

    report = CliRunner().invoke(cli, [*base, "report", "reconcile", "--format", "json"])
    assert report.exit_code == 0, report.output
    reconciled = json.loads(report.stdout)
    assert reconciled["balanced"] is True
    assert reconciled["UNREADABLE"]["source_pence"] == pence
    assert reconciled["systems"]["CSCS"]["UNREADABLE"]["quarantined_pence"] == pence
    table = CliRunner().invoke(cli, [*base, "report", "reconcile"])
    assert "UNREADABLE" in table.output

    # the held rows are named in quarantine with the reason, and a re-pull changes nothing
    again = CliRunner().invoke(cli, [*base, "pull", "--source", str(legacy), "--format", "json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["systems"]["CSCS"]["UNREADABLE"] == bucket
