"""The synthetic legacy generator: the contract's conventions, determinism, calibration."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from csa_closure.errors import UsageError
from csa_closure.legacy.extract import LegacyExtract
from csa_closure.legacy.normalise import normalise
from csa_closure.simulation.legacy import (
    build_legacy_book,
    coverage_scenarios,
    generate_legacy,
    minus_months,
)
from csa_closure.simulation.seeded import SeededRandom, splitmix64_reference

NINO = re.compile(r"^[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z][0-9]{6}[A-D]$")
POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9]{1,2} [0-9][ABD-HJLNP-UW-Z]{2}$")
CSCS_DATE = re.compile(r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
POUNDS = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


def as_extract(book) -> LegacyExtract:  # type: ignore[no-untyped-def]
    return LegacyExtract(tables=book.tables, source="memory", dialect="sqlite")


@pytest.fixture(scope="module")
def clean_book():  # type: ignore[no-untyped-def]
    return build_legacy_book(4000, 42, dirty_rate=0.0)


# --- the random source -----------------------------------------------------------------


def test_random_columns_are_splitmix64_and_reproducible() -> None:
    rng = SeededRandom(7, "x")
    values = rng.u64("stream", 5).to_list()
    key = rng.key("stream")
    assert values == [splitmix64_reference(key, i) for i in range(5)]
    assert SeededRandom(7, "x").u64("stream", 5).to_list() == values
    assert SeededRandom(8, "x").u64("stream", 5).to_list() != values
    assert rng.u64("other", 5).to_list() != values


def test_random_helpers_respect_their_ranges_and_weights() -> None:
    rng = SeededRandom(1)
    between = rng.between("b", 10_000, 5, 9)
    assert between.min() == 5 and between.max() == 9
    per_row = rng.between("r", 4, pl.Series([0, 10, 20, 30]), pl.Series([0, 10, 25, 29]))
    assert per_row[0] == 0 and per_row[1] == 10 and 20 <= per_row[2] <= 25 and per_row[3] == 30
    picks = rng.pick("p", 100_000, [1, 0, 3]).value_counts().sort("p")
    assert picks["p"].to_list() == [0, 2]
    assert 0.23 < picks["count"][0] / 100_000 < 0.27
    assert 0.29 < rng.chance("c", 100_000, 0.3).mean() < 0.31  # type: ignore[operator]
    assert sorted(rng.order("o", 100).to_list()) == list(range(100))


def test_calendar_months_follow_the_policy() -> None:
    assert minus_months(date(2019, 5, 31), 3) == date(2019, 2, 28)
    assert minus_months(date(2020, 2, 29), 120) == date(2010, 2, 28)
    assert minus_months(date(2019, 3, 31), 3) == date(2018, 12, 31)
    assert minus_months(date(2019, 1, 15), 1) == date(2018, 12, 15)


# --- the contract's conventions --------------------------------------------------------


def test_cscs_follows_the_mainframe_conventions(clean_book) -> None:  # type: ignore[no-untyped-def]
    clients = clean_book.tables["cscs_client"]
    cases = clean_book.tables["cscs_case"]
    debts = clean_book.tables["cscs_debt"]
    payments = clean_book.tables["cscs_payment"]
    assert clients["client_no"].str.contains(r"^P[0-9]{9}$").all()
    assert clients["client_no"].is_unique().all()
    assert cases["case_no"].str.contains(r"^C[0-9]{9}$").all()
    assert clients["dob"].str.contains(CSCS_DATE.pattern).all()
    for column in ("addr_verified", "dod"):
        values = clients[column]
        present = values.drop_nulls().filter(values.drop_nulls() != "")
        assert present.str.contains(CSCS_DATE.pattern).all()
        assert values.is_null().any() and (values == "").any()  # both spellings of nothing
    assert set(clients["emp_code"].unique()) == {"E", "S", "B", "U"}
    assert set(cases["dv_ind"].unique()) == set(cases["stop_act_ind"].unique()) == {"Y", "N"}
    assert set(cases["enf_code"].unique().to_list()) == {None, "", "DEO", "LO", "CO", "BAIL"}
    assert debts["balance"].str.contains(POUNDS.pattern).all()
    assert payments["amount"].str.contains(POUNDS.pattern).all()
    assert payments["pay_date"].str.contains(CSCS_DATE.pattern).all()
    assert set(debts["creditor"].unique()) == {"PWC", "SOS"}
    ninos = clients["nino"].drop_nulls().filter(clients["nino"].drop_nulls() != "")
    assert ninos.str.contains(NINO.pattern).all()
    assert clients["surname"].str.to_uppercase().equals(clients["surname"])


def test_cs2_follows_the_typed_conventions(clean_book) -> None:  # type: ignore[no-untyped-def]
    parties = clean_book.tables["cs2_party"]
    cases = clean_book.tables["cs2_case"]
    assert parties["party_id"].str.contains(r"^[0-9]+$").all()
    assert cases["case_id"].str.contains(r"^[0-9]+$").all()
    assert cases["case_ref"].str.contains(r"^S[0-9]{9}$").all()
    assert set(cases["scheme"].unique()) == {"1993", "2003"}
    assert cases["effective_date"].str.contains(ISO_DATE.pattern).all()
    assert cases["liability_end_date"].drop_nulls().str.contains(ISO_DATE.pattern).all()
    assert set(cases["dv_marker"].unique()) == {"0", "1"}
    assert set(cases["enforcement"].unique().to_list()) == {
        None, "DEO", "LO", "CHARGING_ORDER", "COMMITTAL",
    }  # fmt: skip
    assert set(parties["employment"].unique()) == {
        "EMPLOYED",
        "SELF_EMPLOYED",
        "BENEFITS",
        "UNKNOWN",
    }
    assert clean_book.tables["cs2_arrears"]["amount_pence"].str.contains(r"^-?[0-9]+$").all()
    assert (parties["address_line_5"].is_null() | (parties["address_line_5"] != "")).all()
    converted = cases.filter(pl.col("scheme") == "1993")["effective_date"]
    assert (converted < "2003-03-03").all()
    assert (cases.filter(pl.col("scheme") == "2003")["effective_date"] >= "2003-03-03").all()


def test_addresses_parents_and_people(clean_book) -> None:  # type: ignore[no-untyped-def]
    for system, table, key, pwc, nrp in (
        ("CSCS", "cscs_client", "client_no", "pwc_client_no", "nrp_client_no"),
        ("CS2", "cs2_party", "party_id", "pwc_party_id", "nrp_party_id"),
    ):
        parties = clean_book.tables[table]
        cases = clean_book.tables["cscs_case" if system == "CSCS" else "cs2_case"]
        assert (cases[pwc] != cases[nrp]).all()
        assert cases[pwc].is_in(parties[key].implode()).all()
        assert cases[nrp].is_in(parties[key].implode()).all()
        assert cases[nrp].is_duplicated().any()  # a few NRPs are in several cases
        postcodes = parties["postcode"]
        share_valid = postcodes.str.contains(POSTCODE.pattern).mean()
        assert 0.98 < share_valid < 1.0  # a few deliberately unusable
        lines = parties.select(
            sum(
                (pl.col(c).is_not_null() & (pl.col(c) != "")).cast(pl.Int32)
                for c in parties.columns
                if re.fullmatch(r"addr_[1-5]|address_line_[1-5]", c)
            ).alias("lines")
        )["lines"]
        assert set(lines.unique()) == {1, 3, 4, 5}
        assert (lines == 1).mean() < 0.02  # type: ignore[operator]


def test_control_totals_are_the_raw_rows_as_the_legacy_system_reads_them(tmp_path: Path) -> None:
    book = build_legacy_book(1500, 3, dirty_rate=0.02)
    for system, table, creditor, amount, pounds in (
        ("CSCS", "cscs_debt", "creditor", "balance", True),
        ("CS2", "cs2_arrears", "owed_to", "amount_pence", False),
    ):
        rows = book.tables[table]
        for owed_to in ("PWC", "SOS"):
            total = 0
            for text in rows.filter(pl.col(creditor) == owed_to)[amount].to_list():
                try:  # an independent reading: Decimal pounds or int pence, else zero
                    total += int(Decimal(text) * 100) if pounds else int(text)
                except Exception:
                    total += 0
            assert book.control[system][f"{owed_to.lower()}_arrears_pence"] == total
        assert (
            book.control[system]["case_count"] == book.tables[table.split("_")[0] + "_case"].height
        )
    control = book.tables["extract_control"]
    assert control["as_at"].to_list() == ["2019-03-31", "2019-03-31"]


# --- determinism ---------------------------------------------------------------------


def test_the_same_seed_gives_the_same_sqlite_bytes(tmp_path: Path) -> None:
    first, second, other = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    generate_legacy(str(first), 600, 99, ensure_coverage=True)
    generate_legacy(str(second), 600, 99, ensure_coverage=True)
    generate_legacy(str(other), 600, 100, ensure_coverage=True)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_an_existing_output_is_not_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    path.write_bytes(b"precious")
    with pytest.raises(UsageError, match="already exists"):
        generate_legacy(str(path), 10, 1)
    assert path.read_bytes() == b"precious"
    generate_legacy(str(path), 10, 1, overwrite=True)
    assert path.read_bytes().startswith(b"SQLite format 3")


@pytest.mark.postgres
def test_postgres_legacy_tables_are_not_replaced_without_force(pg_schema_url: str) -> None:
    generate_legacy(pg_schema_url, 20, 1)
    with pytest.raises(UsageError, match="already has legacy tables"):
        generate_legacy(pg_schema_url, 20, 1)
    summary = generate_legacy(pg_schema_url, 30, 2, overwrite=True)
    assert summary.control["CSCS"]["case_count"] == 15


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="at least 2 cases"):
        build_legacy_book(1, 1)
    with pytest.raises(UsageError, match="dirty rate"):
        build_legacy_book(10, 1, dirty_rate=0.5)
    with pytest.raises(UsageError, match="ensure_coverage needs at least"):
        build_legacy_book(50, 1, ensure_coverage=True)


# --- coverage ------------------------------------------------------------------------


def test_coverage_plants_every_policy_row_and_collectability_branch() -> None:
    book = build_legacy_book(400, 8, ensure_coverage=True)
    names = set(book.coverage["scenario"].to_list())
    for rule in range(1, 11):
        assert any(name.startswith(f"pwc.{rule}.") for name in names), rule
    for rule in range(1, 6):
        assert any(name.startswith(f"sos.{rule}.") for name in names), rule
    for branch in (
        "nrp_deceased",
        "untraceable",
        "employed",
        "self_employed",
        "benefits",
        "unknown",
    ):
        assert any(name.startswith(f"collect.{branch}") for name in names), branch
    per_system = book.coverage.group_by("source_system").len().sort("source_system")
    assert per_system["len"].to_list() == [
        len(coverage_scenarios("CS2", date(2019, 3, 31))),
        len(coverage_scenarios("CSCS", date(2019, 3, 31))),
    ]


def test_coverage_boundaries_come_out_as_written() -> None:
    book = build_legacy_book(400, 8, ensure_coverage=True)
    loaded = normalise(as_extract(book))
    cases = loaded.cases.join(book.coverage, on=["source_system", "case_ref"])
    debts = loaded.debts.pivot("creditor", index="case_ref", values="balance_pence")

    def case(scenario: str, system: str = "CSCS") -> dict:
        return cases.filter(
            (pl.col("scenario") == scenario) & (pl.col("source_system") == system)
        ).row(0, named=True)

    for system in ("CSCS", "CS2"):
        assert case("pwc.9.at_threshold_exactly_10_years", system)["effective_date"] == date(
            2009, 3, 31
        )
        assert case("pwc.9.at_threshold_under_10_years", system)["effective_date"] == date(
            2009, 4, 1
        )
        assert case("pwc.2.ended_on_as_at_not_ongoing", system)["liability_end_date"] == date(
            2019, 3, 31
        )
        assert case("pwc.2.ongoing_no_end_date", system)["liability_end_date"] is None
        assert case("pwc.10.effective_29_february", system)["effective_date"].month == 2
        assert case("pwc.10.effective_29_february", system)["effective_date"].day == 29
        ref = case("pwc.9.exactly_65_pounds", system)["case_ref"]
        assert debts.filter(pl.col("case_ref") == ref)["PWC"].to_list() == [6500]
        paying = case("pwc.3.paying_exactly_3_months_before", system)["case_ref"]
        days = loaded.payment_days.filter(pl.col("case_ref") == paying)
        assert days.rows() == [(paying, date(2018, 12, 31), 1, 1, 1500)]
        nrp = case("pwc.7.nrp_deceased_on_as_at", system)["nrp_party_ref"]
        party = loaded.parties.filter(pl.col("party_ref") == nrp).row(0, named=True)
        assert party["deceased_on"] == date(2019, 3, 31)
        nrp = case("collect.untraceable_verified_before_2_years", system)["nrp_party_ref"]
        party = loaded.parties.filter(pl.col("party_ref") == nrp).row(0, named=True)
        assert party["nino"] is None and party["address_verified_on"] == date(2017, 3, 30)
    shared = cases.filter(pl.col("scenario") == "party.nrp_in_three_cases")
    assert shared.group_by("source_system").agg(pl.col("nrp_party_ref").n_unique())[
        "nrp_party_ref"
    ].to_list() == [1, 1]


# --- calibration -----------------------------------------------------------------------


def test_calibration_scales_the_published_figures() -> None:
    """At N cases: ~970k/1.3M PWC debts holding ~£2.5bn/1.3M each case, ~320k/1.3M SOS
    debts with ~£1.2bn/1.3M, ~3.8% of cases over £20,000 with ~39% of the debt."""
    n = 40_000
    book = normalise(as_extract(build_legacy_book(n, 2019, dirty_rate=0.0)))
    scale = n / 1_300_000
    debts = book.debts
    pwc = debts.filter(pl.col("creditor") == "PWC")
    sos = debts.filter(pl.col("creditor") == "SOS")
    assert abs(pwc.height - 970_000 * scale) < 0.03 * 970_000 * scale
    assert abs(sos.height - 320_000 * scale) < 0.05 * 320_000 * scale
    assert abs(pwc["balance_pence"].sum() - 2.5e11 * scale) < 0.08 * 2.5e11 * scale
    assert abs(sos["balance_pence"].sum() - 1.2e11 * scale) < 0.10 * 1.2e11 * scale
    per_case = debts.group_by("case_ref").agg(pl.col("balance_pence").sum())
    tail = per_case.filter(pl.col("balance_pence") > 2_000_000)
    assert 0.033 < tail.height / n < 0.043
    assert 0.34 < tail["balance_pence"].sum() / per_case["balance_pence"].sum() < 0.45
    cases = book.cases
    ongoing = (
        cases["liability_end_date"].is_null() | (cases["liability_end_date"] > date(2019, 3, 31))
    ).mean()
    assert 0.02 < ongoing < 0.06  # type: ignore[operator]
    paying = book.payment_days.filter(
        (pl.col("paid_on") >= date(2018, 12, 31))
        & (pl.col("paid_on") <= date(2019, 3, 31))
        & (pl.col("positive_count") > 0)
    )["case_ref"].n_unique()
    assert 0.04 < paying / n < 0.08
    assert (debts["balance_pence"] == 0).sum() > 0  # nil balances occur
    assert cases["enforcement_code"].is_not_null().mean() > 0.04  # type: ignore[operator]
    assert cases["dv_marker"].mean() > 0.02  # type: ignore[operator]
    assert cases["stop_acting"].mean() > 0.01  # type: ignore[operator]
    parties = book.parties
    assert parties["deceased_on"].is_not_null().sum() > 0
    assert (parties["deceased_on"] == date(2019, 3, 31)).sum() > 0
    nrps = parties.filter(pl.col("party_ref").is_in(cases["nrp_party_ref"].implode()))
    untraceable = nrps.filter(
        pl.col("nino").is_null()
        & (
            pl.col("address_verified_on").is_null()
            | (pl.col("address_verified_on") < date(2017, 3, 31))
        )
    )
    assert 0.05 < untraceable.height / nrps.height < 0.15
    mix = nrps.group_by("employment").len().sort("employment")
    assert mix["employment"].to_list() == ["BENEFITS", "EMPLOYED", "SELF_EMPLOYED", "UNKNOWN"]
    effective = cases["effective_date"]
    assert effective.min() >= date(1993, 4, 5) and effective.max() <= date(2012, 11, 24)  # type: ignore[operator]
