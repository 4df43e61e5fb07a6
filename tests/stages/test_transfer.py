"""Transfer to the CMS: the package and its manifest, crash safety, acknowledgements."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import func, select

from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.simulation.acknowledgements import write_ack_file
from csa_closure.stages import transfer as transfer_stage
from csa_closure.stages.responses import record_response
from csa_closure.stages.review import decide
from csa_closure.stages.transfer import (
    export_transfers,
    list_batches,
    rewrite_package,
    verify_package,
)
from csa_closure.stages.transfer_ack import import_ack
from csa_closure.store.schema import transfer_batches, transfer_items
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    assert_balanced,
    debt_row,
    read_csv,
    seal_pull,
    states,
    write_csv,
)

AS_OF = date(2019, 3, 31)
ACK_HEADER = ("batch_id", "case_ref", "creditor", "status", "reason")


def _ready_book(ctx: Context, cases: int = 6) -> list[int]:
    book = BookBuilder(ctx)
    ids = []
    for i in range(1, cases + 1):
        case = book.case(
            f"C{i:09d}",
            pwc=book.party(family_name=f"Carer{i}", postcode="LS1 4AP"),
            nrp=book.party(family_name=f"Payer{i}", nino=f"QQ{i:06d}A"),
        )
        ids.append(
            book.debt(
                case,
                "PWC",
                100_000 * i + 1,
                state="transfer_ready",
                outcome="transfer",
                reason="COLLECTABLE",
            )
        )
        if i % 2:
            ids.append(
                book.debt(
                    case,
                    "SOS",
                    7_000 * i,
                    state="transfer_ready",
                    outcome="transfer",
                    reason="PAYING",
                )
            )
    seal_pull(ctx)
    return ids


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_package_and_its_manifest_check_out(ctx: Context, tmp_path: Path) -> None:
    ids = _ready_book(ctx)
    result = export_transfers(ctx, tmp_path / "out", batch_size=4)
    # batches of about 4 debts that never split a case's two debts
    assert [b.row_count for b in result.batches] == [5, 3, 1]  # C3 starts at row 4: kept whole
    assert result.debts_exported == len(ids) == 9
    total = sum(debt_row(ctx, d).opening_pence for d in ids)
    assert result.total_pence == total
    assert _mode(tmp_path / "out") == 0o700
    seen_cases: set[str] = set()
    for batch in result.batches:
        folder = Path(batch.path)
        assert sorted(os.listdir(folder)) == ["debts.parquet", "manifest.json"]
        assert _mode(folder) == 0o700
        assert _mode(folder / "debts.parquet") == _mode(folder / "manifest.json") == 0o600
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(manifest) == {"batch_id", "created_at", "row_count", "total_pence", "files"}
        assert manifest["batch_id"] == batch.batch_id == folder.name
        assert manifest["created_at"].endswith("Z")
        digest = hashlib.sha256((folder / "debts.parquet").read_bytes()).hexdigest()
        assert manifest["files"] == {"debts.parquet": digest}
        frame = pl.read_parquet(folder / "debts.parquet")
        assert frame.schema["amount_pence"] == pl.Int64
        assert manifest["row_count"] == frame.height == batch.row_count
        assert manifest["total_pence"] == frame["amount_pence"].sum() == batch.total_pence
        assert hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() == (
            batch.manifest_sha256
        )
        for column in (
            "case_ref",
            "source_system",
            "scheme",
            "creditor",
            "transfer_reason",
            "pwc_family_name",
            "pwc_postcode",
            "nrp_nino",
            "nrp_address_line_1",
            "nrp_birth_date",
        ):
            assert column in frame.columns
        assert frame["nrp_family_name"].str.starts_with("Payer").all()
        cases = set(frame["case_ref"])
        assert not cases & seen_cases  # a case is in one batch only
        seen_cases |= cases
        assert verify_package(folder).ok
    assert set(states(ctx).values()) == {"transfer_sent"}
    assert_balanced(ctx)
    # nothing is exported twice
    again = export_transfers(ctx, tmp_path / "out")
    assert again.batches == [] and again.debts_exported == 0
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(transfer_items)).scalar_one() == 9


def test_verify_finds_what_the_cms_would_refuse(ctx: Context, tmp_path: Path) -> None:
    _ready_book(ctx, cases=2)
    folder = Path(export_transfers(ctx, tmp_path / "out").batches[0].path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["total_pence"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    os.chmod(folder / "debts.parquet", 0o644)
    with (folder / "debts.parquet").open("ab") as handle:
        handle.write(b"tampered")
    check = verify_package(folder)
    assert not check.ok
    problems = " | ".join(check.problems)
    assert "SHA-256 does not match" in problems or "parquet" in problems
    assert "readable by others" in problems


def test_a_crash_after_recording_the_batch_is_finished_by_the_next_export(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready_book(ctx, cases=3)
    out = tmp_path / "out"
    real_place = transfer_stage._place

    def crash(*args: object, **kwargs: object) -> Path:
        raise OSError("disk went away")

    monkeypatch.setattr(transfer_stage, "_place", crash)
    with pytest.raises(OSError):
        export_transfers(ctx, out)
    # the batch and its debts are recorded; the files are not there
    with ctx.engine.connect() as conn:
        batch_id, status = conn.execute(
            select(transfer_batches.c.batch_id, transfer_batches.c.status)
        ).one()
    assert status == "exporting" and set(states(ctx).values()) == {"transfer_sent"}
    assert [p for p in out.iterdir() if not p.name.startswith(".")] == []
    # a half-written folder left by the crash is replaced, never trusted
    (out / batch_id).mkdir(mode=0o700)
    (out / batch_id / "debts.parquet").write_bytes(b"half")
    monkeypatch.setattr(transfer_stage, "_place", real_place)
    finished = export_transfers(ctx, out)
    assert [(b.batch_id, b.resumed) for b in finished.batches] == [(batch_id, True)]
    assert verify_package(out / batch_id).ok
    assert list_batches(ctx)[0].status == "exported"
    # the files are a pure function of what was recorded: a rewrite is byte-identical
    copy = rewrite_package(ctx, batch_id, tmp_path / "copy")
    for name in ("debts.parquet", "manifest.json"):
        assert (Path(copy.path) / name).read_bytes() == (out / batch_id / name).read_bytes()
    assert_balanced(ctx)


def test_a_rewrite_is_refused_if_it_would_differ(ctx: Context, tmp_path: Path) -> None:
    _ready_book(ctx, cases=1)
    batch = export_transfers(ctx, tmp_path / "out").batches[0]
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE parties SET postcode = 'XX1 1XX'")
    with pytest.raises(UsageError, match="no longer comes out as it was exported"):
        rewrite_package(ctx, batch.batch_id, tmp_path / "copy")
    assert not (tmp_path / "copy" / batch.batch_id).exists()


def test_acknowledgements_close_accepted_debts_and_return_rejected_ones(
    ctx: Context, tmp_path: Path
) -> None:
    _ready_book(ctx, cases=3)  # C1 PWC+SOS, C2 PWC, C3 PWC+SOS
    batch = export_transfers(ctx, tmp_path / "out").batches[0].batch_id
    rows = [
        (batch, "C000000001", "PWC", "ACCEPTED", ""),
        (batch, "C000000001", "SOS", "REJECTED", "NRP_NOT_TRACED"),
        (batch, "C000000002", "PWC", "ACCEPTED", ""),
        (batch, "C000000002", "PWC", "ACCEPTED", ""),  # duplicate in the file
        (batch, "C000000003", "PWC", "REJECTED", "address incomplete"),
        (batch, "C000000003", "PWC", "ACCEPTED", ""),  # CONFLICTING_ACK with the row above
        ("TB20190101-000001-001", "C000000003", "SOS", "ACCEPTED", ""),  # UNKNOWN_BATCH
        (batch, "C000000009", "PWC", "ACCEPTED", ""),  # NOT_IN_BATCH
        (batch, "C000000003", "SOS", "MAYBE", ""),  # BAD_STATUS
        (batch, "C000000003", "XYZ", "ACCEPTED", ""),  # BAD_CREDITOR
        (batch, "", "SOS", "ACCEPTED", ""),  # MISSING_VALUE
        (batch, "C000000003", "SOS"),  # MALFORMED_ROW
    ]
    path = write_csv(tmp_path / "ack.csv", rows, ACK_HEADER)
    result = import_ack(ctx, path)
    assert result.rows == 12 == result.accepted + result.duplicates + result.rejected
    assert (result.accepted, result.duplicates) == (4, 1)
    assert result.rejected_by_reason == {
        "BAD_CREDITOR": 1,
        "BAD_STATUS": 1,
        "CONFLICTING_ACK": 1,
        "MALFORMED_ROW": 1,
        "MISSING_VALUE": 1,
        "NOT_IN_BATCH": 1,
        "UNKNOWN_BATCH": 1,
    }
    assert (result.transferred, result.returned_to_review) == (2, 2)
    by_case = {(r.case_ref, r.creditor): r for r in _debts(ctx)}
    assert by_case[("C000000001", "PWC")].state == "transferred"
    assert by_case[("C000000001", "SOS")].state == "review"
    assert by_case[("C000000001", "SOS")].review_reason == "CMS_REJECTED:NRP_NOT_TRACED"
    assert by_case[("C000000003", "PWC")].review_reason == "CMS_REJECTED"
    assert by_case[("C000000003", "SOS")].state == "transfer_sent"  # not acknowledged yet
    rejects = Path(result.rejects_file or "")
    assert _mode(rejects) == 0o600 and len(read_csv(rejects)) == 7
    assert read_csv(rejects)[0].keys() >= {"row_number", "batch_id", "case_ref", "reason_code"}
    assert result.batches_acknowledged == []
    assert_balanced(ctx)
    # the same file again changes nothing
    again = import_ack(ctx, path)
    assert again.already_imported and again.rejected == 7
    # the last debt, and a repeat of an earlier answer, in another file
    last = write_csv(
        tmp_path / "ack2.csv",
        [
            (batch, "C000000003", "SOS", "ACCEPTED", ""),
            (batch, "C000000001", "PWC", "ACCEPTED", ""),  # duplicate of yesterday's
            (batch, "C000000001", "SOS", "ACCEPTED", ""),  # CONFLICTING_ACK: rejected before
        ],
        ACK_HEADER,
    )
    second = import_ack(ctx, last)
    assert (second.accepted, second.duplicates, second.rejected) == (1, 1, 1)
    assert second.batches_acknowledged == [batch]
    assert list_batches(ctx)[0].status == "acknowledged"
    # a caseworker fixes the rejected debt and sends it again, in a new batch
    decide(ctx, "C000000001", "SOS", "transfer", "NRP_TRACED")
    resent = export_transfers(ctx, tmp_path / "out")
    assert [b.row_count for b in resent.batches] == [1]
    assert_balanced(ctx)


def _debts(ctx: Context) -> list:  # type: ignore[type-arg]
    with ctx.engine.connect() as conn:
        return list(conn.exec_driver_sql("SELECT * FROM debts"))


def test_a_dispute_received_while_in_the_package_is_forwarded_when_the_cms_accepts(
    ctx: Context, tmp_path: Path
) -> None:
    _ready_book(ctx, cases=2)
    batch = export_transfers(ctx, tmp_path / "out").batches[0]
    record_response(ctx, "C000000002", party="NRP", response="DISPUTE_AMOUNT")
    ack = write_ack_file(Path(batch.path), tmp_path / "ack.csv", seed=3)
    assert (ack.rows, ack.rejected) == (3, 0)
    result = import_ack(ctx, tmp_path / "ack.csv")
    assert result.transferred == 3 and result.disputes_to_forward == ["C000000002"]
    assert_balanced(ctx)


def test_a_simulated_cms_answer_with_rejects_duplicates_and_an_unknown_batch(
    ctx: Context, tmp_path: Path
) -> None:
    _ready_book(ctx, cases=6)
    batch = export_transfers(ctx, tmp_path / "out").batches[0]
    ack = write_ack_file(
        Path(batch.path), tmp_path / "ack.csv", seed=11, rejected=2, duplicates=2, unknown_rows=1
    )
    assert ack.rows == 9 + 2 + 1
    result = import_ack(ctx, tmp_path / "ack.csv")
    assert (result.accepted, result.duplicates, result.rejected) == (9, 2, 1)
    assert result.rejected_by_reason == {"UNKNOWN_BATCH": 1}
    assert (result.transferred, result.returned_to_review) == (7, 2)
    assert result.batches_acknowledged == [batch.batch_id]
    assert_balanced(ctx)
