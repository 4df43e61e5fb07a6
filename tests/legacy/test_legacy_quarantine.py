"""Over generated dirty replicas: every dirty row is held with the right reason, nothing
clean is held, and per system and creditor extract_control = loaded + quarantined, exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csa_closure.legacy.extract import read_legacy
from csa_closure.legacy.normalise import NormalisedBook, normalise
from csa_closure.simulation.legacy import DIRTY_KIND_NAMES, GenerationSummary, generate_legacy

KEYS = ["source_system", "case_ref", "item_kind"]


def _pull(url: str) -> NormalisedBook:
    return normalise(read_legacy(url))


def _reasons(book: NormalisedBook) -> pl.DataFrame:
    return book.quarantine.select(*KEYS, "reasons").explode("reasons").unnest("reasons")


def assert_every_penny_accounted(book: NormalisedBook, summary: GenerationSummary) -> None:
    """The pull's invariant, computed here from the frames themselves (not the helper)."""
    for system, control in summary.control.items():
        for creditor in ("PWC", "SOS"):
            loaded = book.debts.filter(
                (pl.col("source_system") == system) & (pl.col("creditor") == creditor)
            )["balance_pence"].sum()
            held = book.quarantine.filter(pl.col("source_system") == system)[
                f"{creditor.lower()}_pence"
            ].sum()
            assert control[f"{creditor.lower()}_arrears_pence"] == loaded + held, (system, creditor)
        ctrl = book.control.filter(pl.col("source_system") == system).row(0, named=True)
        assert ctrl["case_count"] == control["case_count"]
    assert book.reconciliation()["difference_pence"].to_list() == [0] * 6


def assert_quarantine_is_exactly_the_dirt(book: NormalisedBook, summary: GenerationSummary) -> None:
    planted = summary.planted
    missing = planted.join(_reasons(book), on=[*KEYS, "code", "table", "field"], how="anti")
    assert missing.height == 0, f"planted dirt not held with its reason:\n{missing}"
    unplanted = book.quarantine.join(planted, on=KEYS, how="anti")
    assert unplanted.height == 0, f"clean rows held:\n{unplanted}"
    # Whole cases: a held case has no row among the loaded ones.
    held_cases = book.quarantine.filter(pl.col("item_kind") == "case")["case_ref"].implode()
    assert book.cases.filter(pl.col("case_ref").is_in(held_cases)).height == 0
    assert book.debts.filter(pl.col("case_ref").is_in(held_cases)).height == 0
    assert book.payment_days.filter(pl.col("case_ref").is_in(held_cases)).height == 0
    # Every loaded debt and payment belongs to a loaded case, every party is referenced.
    loaded = book.cases["case_ref"].implode()
    assert book.debts["case_ref"].is_in(loaded).all()
    assert book.payment_days["case_ref"].is_in(loaded).all()
    referenced = pl.concat([book.cases["pwc_party_ref"], book.cases["nrp_party_ref"]]).unique()
    assert sorted(referenced.to_list()) == book.parties["party_ref"].to_list()


def test_every_dirty_kind_is_held_with_its_reason_and_every_penny_reconciles(db_url: str) -> None:
    summary = generate_legacy(db_url, 700, 11, dirty_rate=0.01, ensure_coverage=True)
    book = _pull(db_url)
    assert_quarantine_is_exactly_the_dirt(book, summary)
    assert_every_penny_accounted(book, summary)
    # Each contract dirty kind occurred and was held, in both systems where the database
    # can store it (PostgreSQL's typed CS2 columns cannot hold bad dates or amounts).
    typed = db_url.startswith("postgresql")
    for system in ("CSCS", "CS2"):
        for kind in DIRTY_KIND_NAMES:
            storable = not (
                typed
                and system == "CS2"
                and kind
                in ("date_unparseable", "date_nonexistent", "bad_balance", "bad_payment_amount")
            )
            assert (summary.dirty[system][kind] > 0) == storable, (system, kind)
    # Every scenario case is clean and loaded.
    loaded = summary.coverage_cases.join(book.cases, on=["source_system", "case_ref"], how="inner")
    assert loaded.height == summary.coverage_cases.height
    # Counts add up: cases loaded + cases held = control case count.
    held_cases = book.quarantine.filter(pl.col("item_kind") == "case").height
    assert book.cases.height + held_cases == sum(c["case_count"] for c in summary.control.values())


def test_the_reason_codes_per_dirty_kind(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    summary = generate_legacy(str(path), 500, 5, ensure_coverage=True)
    codes = summary.planted.group_by("kind").agg(pl.col("code").unique()).rows()
    assert dict((kind, sorted(c)) for kind, c in codes) == {
        "date_unparseable": ["BAD_DATE"],
        "date_nonexistent": ["BAD_DATE"],
        "future_effective_date": ["FUTURE_EFFECTIVE_DATE"],
        "missing_effective_date": ["MISSING_VALUE"],
        "missing_parent_reference": ["MISSING_VALUE"],
        "unknown_party": ["UNKNOWN_PARTY"],
        "orphan_debt": ["ORPHAN_DEBT"],
        "orphan_payment": ["ORPHAN_PAYMENT"],
        "duplicate_debt": ["DUPLICATE_DEBT"],
        "bad_balance": ["BAD_AMOUNT"],
        "bad_payment_amount": ["BAD_AMOUNT"],
        "credit_balance": ["CREDIT_BALANCE"],
        "unknown_flag": ["UNKNOWN_CODE"],
        "unknown_enforcement": ["UNKNOWN_CODE"],
        "unknown_employment": ["UNKNOWN_CODE"],
    }
    # Bad dates hit every date column of both systems.
    dates = summary.planted.filter(pl.col("code") == "BAD_DATE")
    assert sorted(set(zip(dates["table"], dates["field"], strict=True))) == [
        ("cs2_case", "effective_date"),
        ("cs2_case", "liability_end_date"),
        ("cs2_party", "address_verified_on"),
        ("cs2_party", "birth_date"),
        ("cs2_party", "deceased_on"),
        ("cs2_payment", "received_on"),
        ("cscs_case", "eff_date"),
        ("cscs_case", "liab_end_date"),
        ("cscs_client", "addr_verified"),
        ("cscs_client", "dob"),
        ("cscs_client", "dod"),
        ("cscs_payment", "pay_date"),
    ]
    book = _pull(str(path))
    assert_quarantine_is_exactly_the_dirt(book, summary)


def test_one_system_at_a_time_gives_the_same_book(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    generate_legacy(str(path), 300, 9, dirty_rate=0.02)
    whole = _pull(str(path))
    for system in ("CSCS", "CS2"):
        part = normalise(read_legacy(str(path), systems=[system]))
        assert part.cases.equals(whole.cases.filter(pl.col("source_system") == system))
        assert part.quarantine.equals(whole.quarantine.filter(pl.col("source_system") == system))
        assert part.reconciliation()["difference_pence"].to_list() == [0] * 3


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=0, max_value=2**31),
    cases=st.integers(min_value=4, max_value=400),
    dirty_rate=st.sampled_from([0.0, 0.005, 0.01, 0.03, 0.05]),
)
def test_property_control_equals_loaded_plus_quarantined(
    seed: int, cases: int, dirty_rate: float
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = str(Path(directory) / "legacy.db")
        summary = generate_legacy(path, cases, seed, dirty_rate=dirty_rate)
        book = _pull(path)
    assert_every_penny_accounted(book, summary)
    assert_quarantine_is_exactly_the_dirt(book, summary)


@pytest.mark.postgres
def test_postgres_replica_reconciles_without_typed_cs2_dirt(pg_schema_url: str) -> None:
    summary = generate_legacy(pg_schema_url, 400, 3, dirty_rate=0.02)
    assert summary.dirty["CS2"]["bad_balance"] == 0
    assert summary.dirty["CSCS"]["bad_balance"] > 0
    book = _pull(pg_schema_url)
    assert_every_penny_accounted(book, summary)
    assert_quarantine_is_exactly_the_dirt(book, summary)
