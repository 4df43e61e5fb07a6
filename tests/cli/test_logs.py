"""Logs an operator can keep: -v says what each chunk wrote, --log-file writes JSON lines with
no personal data, and every run records the log it wrote to."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from csa_closure.cli import cli
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import stage_runs
from tests.conftest import AS_OF


def test_log_file_has_each_chunk_as_json_lines_and_runs_name_it(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = tmp_path / "legacy.db"
    generate_legacy(str(legacy), 300, 11, AS_OF)
    monkeypatch.setenv("CSA_CLOSURE_CHUNK_SIZE", "100")
    log_file = tmp_path / "logs" / "closure.jsonl"
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-04-01", "--log-file", str(log_file)]
    pulled = runner.invoke(cli, [*base, "-v", "pull", "--source", str(legacy)])
    assert pulled.exit_code == 0, pulled.output
    assessed = runner.invoke(cli, [*base, "assess"])
    assert assessed.exit_code == 0, assessed.output
    assert "chunk" not in assessed.output  # without -v the terminal shows no progress logs
    logging.shutdown()
    entries = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert entries and all({"at", "level", "logger", "message"} <= set(e) for e in entries)
    chunks = [e for e in entries if e.get("stage") == "pull" and "chunk" in e]
    assert len(chunks) >= 3  # 300 cases at 100 a chunk
    assert chunks[0]["rows"]["cases"] == 100 and chunks[0]["message"].startswith(
        "pull run 1: chunk 1 committed, rows written: cases 100"
    )
    finished = [e for e in entries if e.get("status") == "completed"]
    assert {e["stage"] for e in finished} == {"pull", "assess"}
    assert (log_file.stat().st_mode & 0o777) == 0o600
    engine = make_engine(store_url)
    with engine.connect() as conn:
        logs = set(conn.execute(select(stage_runs.c.log_file)).scalars())
        loaded = conn.execute(text("SELECT count(*) FROM cases")).scalar_one()
        personal = {
            v
            for row in conn.execute(
                text("SELECT family_name, given_names, nino, address_line_1, postcode FROM parties")
            )
            for v in row
            if v and len(v) > 3
        }
    engine.dispose()
    assert logs == {str(log_file.resolve())}
    assert sum(c["rows"].get("cases", 0) for c in chunks) == loaded  # every case, chunk by chunk
    written = log_file.read_text()
    assert personal and not [v for v in personal if v in written]
