"""The evidence archive: a round trip through Parquet, and verify catching every tampering."""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.errors import ExitCode, LeaseHeld, UsageError
from csa_closure.reconcile import reconcile
from csa_closure.stages.archive import (
    ARCHIVE_LEASE,
    MANIFEST,
    MARKER,
    _snapshot,
    archive,
    verify,
)
from csa_closure.store import events as event_log
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import archives, debts, events, ledger_entries, stage_runs
from tests.support.books import FIXED_CLOCK_START, closed_book, mid_book

EVIDENCE = {
    "cases",
    "payment_days",
    "debts",
    "decisions",
    "events",
    "ledger",
    "letter_batches",
    "letters",
    "letter_status_history",
    "response_imports",
    "responses",
    "import_rejections",
    "transfer_batches",
    "transfer_items",
    "runs",
    "quarantine",
    "rule_sets",
}


def _count(ctx: Context, table) -> int:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_round_trip_every_file_matches_the_store(ctx: Context, tmp_path: Path) -> None:
    book = mid_book(ctx)
    out = tmp_path / "evidence"
    result = archive(book.ctx, out)

    assert {p.name for p in out.iterdir()} == {f"{n}.parquet" for n in EVIDENCE} | {MANIFEST}
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())

    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["includes_personal_data"] is False
    assert manifest["as_of"] == "2019-03-31"
    assert manifest["created_at"] == FIXED_CLOCK_START.isoformat()
    assert manifest["reconciliation"] == reconcile(book.ctx).to_json()
    assert manifest["run_id"] == result.run_id

    debts_file = pl.read_parquet(out / "debts.parquet")
    assert debts_file.height == _count(ctx, debts) == manifest["files"]["debts.parquet"]["rows"]
    assert debts_file["opening_pence"].sum() == 1_681_000
    assert manifest["files"]["debts.parquet"]["totals"]["opening_pence"] == 1_681_000
    assert debts_file.schema["opening_pence"] == pl.Int64
    assert debts_file.schema["response_deadline"] == pl.Date
    assert debts_file.schema["needs_tracing"] == pl.Boolean
    events_file = pl.read_parquet(out / "events.parquet")
    assert events_file.height == _count(ctx, events)
    assert events_file.schema["occurred_at"] == pl.Datetime("us", "UTC")
    assert events_file["event_id"].is_sorted()
    ledger = pl.read_parquet(out / "ledger.parquet")
    assert ledger["amount_pence"].sum() == 40_000  # three write-offs, one reversed
    assert ledger.height == _count(ctx, ledger_entries)

    decisions = pl.read_parquet(out / "decisions.parquet")
    assert decisions.filter(pl.col("case_ref") == "C000000006").select(
        "event_type", "outcome", "reason"
    ).rows() == [
        ("debt.decided", "write_off_silent", "SOS_DEBT"),
        ("debt.decided", "manual_review", "NRP_DECEASED"),
        ("debt.reviewed", "write_off_notice", "NRP_DECEASED"),
    ]
    runs = pl.read_parquet(out / "runs.parquet")
    assert runs["run_id"].max() == result.run_id - 1  # the archive's own run is not in it

    with ctx.engine.connect() as conn:
        row = conn.execute(select(archives)).one()
        run = conn.execute(select(stage_runs).where(stage_runs.c.run_id == result.run_id)).one()
    assert row.manifest_sha256 == result.manifest_sha256
    assert row.includes_personal_data is False and row.verified_ok is None
    assert row.counts["files"]["debts.parquet"] == {
        "rows": 11,
        "totals": {"opening_pence": 1_681_000, "source_pence": 1_681_000},
    }
    assert (run.stage, run.status, run.counts["events"]) == ("archive", "completed", 21)


def test_small_batches_write_the_same_rows(ctx: Context, tmp_path: Path) -> None:
    book = mid_book(ctx)
    archive(book.ctx, tmp_path / "big")
    small = archive(book.ctx, tmp_path / "small", batch_rows=2)
    for name in ("events.parquet", "debts.parquet", "decisions.parquet"):
        big_frame = pl.read_parquet(tmp_path / "big" / name)
        small_frame = pl.read_parquet(tmp_path / "small" / name)
        assert small_frame.equals(big_frame), name
    assert small.files["events.parquet"].rows == 21


def test_verify_passes_and_is_recorded(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    result = verify(book.ctx, tmp_path / "a")
    assert result.ok, result.problems
    assert all(c.checksum_ok and c.totals_ok for c in result.files)
    assert all(c.manifest_rows == c.file_rows == c.store_rows for c in result.files)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(archives)).one()
    assert row.verified_ok is True and row.verified_at == FIXED_CLOCK_START


def _problems(ctx: Context, out: Path) -> list[tuple[str, str]]:
    result = verify(ctx, out)
    with ctx.engine.connect() as conn:
        recorded = (
            conn.execute(select(archives.c.verified_ok).order_by(archives.c.archive_id))
            .scalars()
            .all()
        )
    assert recorded[-1] is result.ok
    return [(p.file, p.problem) for p in result.problems]


def test_verify_detects_a_tampered_file(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    ledger = tmp_path / "a" / "ledger.parquet"
    frame = pl.read_parquet(ledger).with_columns(pl.col("amount_pence") + 1)
    ledger.unlink()
    frame.write_parquet(ledger)
    ledger.chmod(0o600)
    problems = _problems(book.ctx, tmp_path / "a")
    assert [f for f, _ in problems] == ["ledger.parquet", "ledger.parquet"]
    assert "SHA-256" in problems[0][1]
    assert "pence totals" in problems[1][1]


def test_verify_detects_flipped_bytes(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    target = tmp_path / "a" / "debts.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    problems = _problems(book.ctx, tmp_path / "a")
    assert problems and {f for f, _ in problems} == {"debts.parquet"}
    assert "SHA-256" in problems[0][1]


def test_verify_detects_a_missing_file_and_an_extra_one(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    (tmp_path / "a" / "letters.parquet").unlink()
    (tmp_path / "a" / "notes.txt").write_text("x")
    problems = _problems(book.ctx, tmp_path / "a")
    assert ("letters.parquet", "missing from the archive directory") in problems
    assert ("notes.txt", "is not listed in the manifest") in problems


def test_verify_detects_a_changed_manifest(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    path = tmp_path / "a" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["files"]["debts.parquet"]["rows"] = 5
    path.write_text(json.dumps(manifest))
    problems = _problems(book.ctx, tmp_path / "a")
    files = [f for f, _ in problems]
    assert files[0] == MANIFEST and "the store recorded" in problems[0][1]
    assert "debts.parquet" in files


def test_verify_detects_a_store_changed_since(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    assert verify(book.ctx, tmp_path / "a").ok
    with stage_run(book.ctx.on(date(2019, 4, 1)), "notify", {}) as run, run.chunk() as conn:
        event_log.record(
            conn, run, "letters.status_changed", case_ref="S000000002", entity="letter:1"
        )
    problems = _problems(book.ctx, tmp_path / "a")
    assert [f for f, _ in problems] == ["events.parquet"]
    assert "the store changed after the archive was written" in problems[0][1]
    # a debt moved without any row count changing is caught by the reconciliation
    with ctx.engine.begin() as conn:
        conn.execute(
            debts.update().where(debts.c.case_ref == "S000000003").values(state="transfer_sent")
        )
    assert "reconciliation" in {f for f, _ in _problems(book.ctx, tmp_path / "a")}


def test_verify_of_a_directory_without_a_manifest(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    (tmp_path / "empty").mkdir()
    result = verify(book.ctx, tmp_path / "empty")
    assert [(p.file, p.problem) for p in result.problems] == [
        (MANIFEST, "missing: this is not a finished archive")
    ]
    with pytest.raises(UsageError, match="not a directory"):
        verify(book.ctx, tmp_path / "nowhere")


def test_a_non_empty_directory_is_refused(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "someone-elses.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        archive(book.ctx, tmp_path / "busy")
    assert (tmp_path / "busy" / "someone-elses.txt").read_text() == "keep me"
    archive(book.ctx, tmp_path / "done")
    with pytest.raises(UsageError, match="already holds a finished archive"):
        archive(book.ctx, tmp_path / "done")
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        archive(book.ctx, tmp_path / "file")


def test_an_interrupted_archive_is_written_again_in_place(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    out = tmp_path / "a"
    out.mkdir(mode=0o755)
    (out / MARKER).write_text("{}")
    (out / "cases.parquet").write_bytes(b"half a file")
    (out / "manifest.json.partial").write_text("{")
    archive(book.ctx, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert not (out / MARKER).exists() and not (out / "manifest.json.partial").exists()
    assert verify(book.ctx, out).ok


def test_personal_data_only_when_asked(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    with_pd = archive(book.ctx, tmp_path / "pd", include_personal_data=True)
    parties = pl.read_parquet(tmp_path / "pd" / "parties.parquet")
    assert parties.height == 6 and "family_name" in parties.columns
    assert with_pd.includes_personal_data
    assert json.loads((tmp_path / "pd" / MANIFEST).read_text())["includes_personal_data"]
    assert verify(book.ctx, tmp_path / "pd").ok
    # an archive that says it has none but carries the file is not a good archive
    archive(book.ctx, tmp_path / "plain")
    (tmp_path / "plain" / "parties.parquet").write_bytes(
        (tmp_path / "pd" / "parties.parquet").read_bytes()
    )
    problems = _problems(book.ctx, tmp_path / "plain")
    assert ("parties.parquet", "is not listed in the manifest") in problems


def test_cli_writes_verifies_and_exits_6_on_a_mismatch(
    ctx: Context, store_url: str, tmp_path: Path
) -> None:
    closed_book(ctx)
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31"]
    out = tmp_path / "evidence"
    written = runner.invoke(cli, [*base, "archive", "--out", str(out), "--format", "json"])
    assert written.exit_code == 0, written.output
    assert json.loads(written.output)["files"]["debts.parquet"]["rows"] == 4
    verified = runner.invoke(cli, [*base, "archive", "verify", str(out)])
    assert verified.exit_code == 0, verified.output
    assert "every check passed" in verified.output
    (out / "events.parquet").unlink()
    failed = runner.invoke(cli, [*base, "archive", "verify", str(out), "--format", "json"])
    assert failed.exit_code == ExitCode.VERIFY_FAILED == 6
    data = json.loads(failed.output)
    assert data["ok"] is False
    assert {"file": "events.parquet", "problem": "missing from the archive directory"} in data[
        "problems"
    ]
    table = runner.invoke(cli, [*base, "archive", "verify", str(out)])
    assert table.exit_code == 6 and "events.parquet: missing" in table.output


def test_cli_usage(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--db", store_url]
    nothing = runner.invoke(cli, [*base, "archive"])
    assert nothing.exit_code == 2 and "--out DIR" in nothing.output
    mixed = runner.invoke(cli, [*base, "archive", "--out", str(tmp_path), "verify", str(tmp_path)])
    assert mixed.exit_code == 2 and "cannot be used with `archive verify`" in mixed.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    refused = runner.invoke(cli, [*base, "archive", "--out", str(busy)])
    assert refused.exit_code == 2 and "not empty" in refused.output


def test_the_archive_reads_one_snapshot_while_others_write(ctx: Context) -> None:
    book = closed_book(ctx)

    def count(conn) -> int:  # type: ignore[no-untyped-def]
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())

    with _snapshot(ctx.engine) as reader:
        before = count(reader)
        with stage_run(book.ctx, "notify", {}) as run, run.chunk() as conn:
            event_log.record(conn, run, "letters.status_changed", case_ref="S000000002")
        assert count(reader) == before  # the new event is not seen inside the snapshot
    with ctx.engine.connect() as conn:
        assert count(conn) == before + 1


def test_a_broken_manifest_fails_the_archive_recorded_at_that_path(
    ctx: Context, tmp_path: Path
) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    (tmp_path / "a" / MANIFEST).write_text("{ not json")
    assert _problems(book.ctx, tmp_path / "a") == [(MANIFEST, "is not valid JSON")]


def test_a_second_archive_run_waits_for_the_first(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    out = tmp_path / "a"
    out.mkdir()
    (out / MARKER).write_text("{}")  # the first run is writing here
    with stage_run(book.ctx, "archive", {}, claims=[ARCHIVE_LEASE]):
        with pytest.raises(LeaseHeld):
            archive(book.ctx, out)
        assert (out / MARKER).exists()  # its files were left alone


def test_verify_detects_files_open_to_others(ctx: Context, tmp_path: Path) -> None:
    book = closed_book(ctx)
    archive(book.ctx, tmp_path / "a")
    (tmp_path / "a").chmod(0o755)
    (tmp_path / "a" / "events.parquet").chmod(0o644)
    problems = _problems(book.ctx, tmp_path / "a")
    assert problems == [
        ("a/ (the directory)", "is not owner-only (mode 755); others may read it"),
        ("events.parquet", "is not owner-only (mode 644); others may read it"),
    ]
