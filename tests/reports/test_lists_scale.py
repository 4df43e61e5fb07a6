"""``quarantine list`` and ``review list``: a summary by reason first, ``--limit``, and
working at 200,000 cases (the summary is one pass or one grouped query; the list reads its
limit)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import polars as pl
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert

from csa_closure.cli import cli
from csa_closure.store.dialect import insert_frame
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import cases, debts, parties, quarantine, stage_runs

REASONS = ("BAD_DATE", "NEGATIVE_BALANCE", "ORPHAN_DEBT", "DUPLICATE_CASE")
REVIEW_REASONS = ("NRP_DECEASED", "NRP_DISPUTE", "CMS_REJECTED:NINO_MISMATCH")


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", url, "--as-of", "2019-04-01", *args])


def fill(url: str, n: int) -> None:
    """``n`` held quarantine items and ``n`` cases, each with a debt in review, cycling the
    reasons (item i has reason i % 4, and also BAD_DATE when i % 10 == 0)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(stage_runs)
            .values(
                stage="pull", actor="t", host="h", started_at=datetime(2019, 4, 1, tzinfo=UTC),
                as_of=date(2019, 4, 1), status="completed", parameters={},
            )
            .returning(stage_runs.c.run_id)
        ).scalar_one()  # fmt: skip
        i = pl.int_range(0, n, eager=True)
        refs = ("C" + i.cast(pl.String).str.zfill(9)).alias("case_ref")
        second = {"code": "BAD_DATE", "table": "t", "field": "g", "detail": "d"}
        reasons = [
            [{"code": REASONS[k % 4], "table": "t", "field": "f", "detail": "d"}]
            + ([second] if k % 10 == 0 and k % 4 else [])
            for k in range(n)
        ]
        insert_frame(
            conn,
            quarantine,
            pl.DataFrame({
                "source_system": "CSCS", "case_ref": refs, "item_kind": "case",
                "status": "held", "pwc_pence": 100, "sos_pence": 50, "row_count": 1,
                "reasons": [json.dumps(r) for r in reasons], "first_run_id": run_id,
                "last_run_id": run_id,
            }),
        )  # fmt: skip
        common = {"source_system": "CSCS", "employment": "UNKNOWN",
                  "source_fingerprint": "x", "pulled_run_id": run_id}  # fmt: skip
        insert_frame(
            conn, parties, pl.DataFrame([{"party_ref": p, **common} for p in ("P1", "P2")])
        )
        insert_frame(
            conn,
            cases,
            pl.DataFrame({
                "case_ref": refs, "source_system": "CSCS", "source_case_key": refs,
                "scheme": "1993", "effective_date": date(2000, 1, 1), "pwc_party_ref": "P1",
                "nrp_party_ref": "P2", "dv_marker": False, "stop_acting": False,
                "source_fingerprint": "x", "pulled_run_id": run_id,
            }),
        )  # fmt: skip
        insert_frame(
            conn,
            debts,
            pl.DataFrame({
                "case_ref": refs, "source_system": "CSCS", "creditor": "PWC",
                "opening_pence": 1000, "source_pence": 1000, "state": "review",
                "needs_tracing": False, "needs_caseworker": True,
                "review_reason": pl.Series([REVIEW_REASONS[k % 3] for k in range(n)]),
            }),
        )  # fmt: skip
    engine.dispose()


def test_lists_summarise_by_reason_first_and_take_a_limit(store_url: str) -> None:
    fill(store_url, 120)
    shown = run(store_url, "quarantine", "list")
    assert shown.exit_code == 0, shown.output
    head, _, rest = shown.output.partition("Items (first 50 of 120")
    assert rest, shown.output  # the table's default limit, said so
    assert "Quarantine: 120 items, by reason" in head and "BAD_DATE" in head
    data = json.loads(run(store_url, "quarantine", "list", "--format", "json").output)
    assert data["count"] == 120 and len(data["items"]) == 120  # json: all
    by_reason = {r["reason"]: r for r in data["summary"]}
    # its own 30, and the 6 with a second code (k = 10, 30, ..., 110)
    assert by_reason["BAD_DATE"]["items"] == 30 + 6
    assert by_reason["ORPHAN_DEBT"] == {
        "reason": "ORPHAN_DEBT", "items": 30, "pwc_pence": 3000, "sos_pence": 1500,
    }  # fmt: skip
    limited = json.loads(
        run(store_url, "quarantine", "list", "--limit", "7", "--reason", "BAD_DATE",
            "--format", "json").output
    )  # fmt: skip
    assert limited["count"] == 36 and len(limited["items"]) == 7
    assert all("BAD_DATE" in i["reason_codes"] for i in limited["items"])

    queue = run(store_url, "review", "list", "--limit", "5")
    assert queue.exit_code == 0, queue.output
    assert queue.output.index("by review reason") < queue.output.index("Debts (first 5 of 120")
    data = json.loads(run(store_url, "review", "list", "--format", "json").output)
    assert data["count"] == 120 and len(data["items"]) == 120
    assert {(r["review_reason"], r["debts"], r["pence"]) for r in data["summary"]} == {
        (reason, 40, 40_000) for reason in REVIEW_REASONS
    }
    cms = json.loads(
        run(
            store_url, "review", "list", "--reason", "CMS", "--limit", "3", "--format", "json"
        ).output
    )
    assert (
        cms["count"] == 40 and [i["review_reason"] for i in cms["items"]] == [REVIEW_REASONS[2]] * 3
    )


@pytest.mark.slow
def test_lists_summarise_200000_cases(store_url: str) -> None:
    """The lists page and summarise a queue of 200,000 cases (no row limit of either
    database in the way). How fast is not asserted here: a timed test fails when the machine
    is loaded, and speed is measured in benchmarks/ (the project's rule)."""
    fill(store_url, 200_000)
    for args in (("quarantine", "list"), ("review", "list")):
        shown = run(store_url, *args)
        assert shown.exit_code == 0, shown.output
        assert "of 200,000" in shown.output
