"""compute_features: the feature catalogue, calendar rules and the input contract."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from csa_closure.policy import (
    FEATURES,
    OUTPUT_COLUMNS,
    FeatureInputError,
    bind_features,
    compute_features,
)
from csa_closure.policy.calendar import minus_months, minus_years, whole_years
from csa_closure.policy.features import (
    FEATURES_SCHEMA,
    FeatureParameters,
    case_age_years_expr,
    offset_date,
)
from csa_closure.simulation.debts import synthetic_debts
from tests.support.policy import D, debts, default_rules, features

DAY = timedelta(days=1)


def one(field: str, as_of: date = D, **fields):  # type: ignore[no-untyped-def]
    return features([fields], as_of)[field][0]


# --- calendar -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("d", "months", "expected"),
    [
        (date(2019, 5, 31), 3, date(2019, 2, 28)),
        (date(2020, 5, 31), 3, date(2020, 2, 29)),
        (date(2019, 3, 31), 3, date(2018, 12, 31)),
        (date(2019, 3, 31), 1, date(2019, 2, 28)),
        (date(2019, 7, 31), 1, date(2019, 6, 30)),
        (date(2020, 2, 29), 120, date(2010, 2, 28)),
        (date(2020, 2, 29), 48, date(2016, 2, 29)),
        (date(2019, 1, 15), 0, date(2019, 1, 15)),
        (date(2019, 1, 15), 13, date(2017, 12, 15)),
    ],
)
def test_minus_months_clamps_to_month_end(d: date, months: int, expected: date) -> None:
    assert minus_months(d, months) == expected
    assert offset_date(d, months=months) == expected  # polars' calendar-aware offset agrees


def test_minus_years_of_leap_day() -> None:
    assert minus_years(date(2020, 2, 29), 10) == date(2010, 2, 28)
    assert minus_years(date(2020, 2, 29), 4) == date(2016, 2, 29)
    assert offset_date(date(2020, 2, 29), years=10) == date(2010, 2, 28)


def test_case_age_years_agrees_with_polars_offsets() -> None:
    """case_age_years >= N exactly when effective_date <= D offset by -N years (polars)."""
    as_ofs = [date(2020, 2, 29), date(2019, 2, 28), date(2019, 3, 1), date(2019, 12, 31)]
    start, stop = date(1995, 1, 1), date(2021, 1, 1)
    days = pl.date_range(start, stop, "1d", eager=True).alias("effective_date")
    for as_of in as_ofs:
        frame = pl.DataFrame(days).with_columns(
            case_age_years_expr(pl.col("effective_date"), as_of).alias("age")
        )
        for n in (0, 1, 2, 9, 10, 11, 20):
            cutoff = pl.lit(as_of).dt.offset_by(f"-{n}y")
            mismatches = frame.filter((pl.col("age") >= n) != (pl.col("effective_date") <= cutoff))
            assert mismatches.height == 0, (as_of, n, mismatches.head())
        sample = frame.gather_every(97)
        for eff, age in sample.iter_rows():
            assert age == whole_years(eff, as_of)


@pytest.mark.parametrize(
    ("effective", "as_of", "age"),
    [
        (date(2009, 3, 31), date(2019, 3, 31), 10),
        (date(2009, 4, 1), date(2019, 3, 31), 9),
        (date(2010, 2, 28), date(2020, 2, 29), 10),
        (date(2010, 3, 1), date(2020, 2, 29), 9),
        (date(2008, 2, 29), date(2018, 2, 28), 9),
        (date(2008, 2, 29), date(2018, 3, 1), 10),
        (date(2008, 2, 29), date(2020, 2, 29), 12),
        (date(2019, 3, 31), date(2019, 3, 31), 0),
        (date(2019, 4, 1), date(2019, 3, 31), -1),
    ],
)
def test_case_age_years(effective: date, as_of: date, age: int) -> None:
    assert one("case_age_years", as_of, effective_date=effective) == age
    assert whole_years(effective, as_of) == age


# --- derived flags --------------------------------------------------------------------------------


def test_liability_ongoing() -> None:
    assert one("liability_ongoing", liability_end_date=None) is True
    assert one("liability_ongoing", liability_end_date=D) is False
    assert one("liability_ongoing", liability_end_date=D + DAY) is True


def test_paying_and_days_since_last_payment() -> None:
    start = minus_months(D, 3)
    assert one("paying", last_positive_payment_on=start) is True
    assert one("paying", last_positive_payment_on=start - DAY) is False
    assert one("paying", last_positive_payment_on=D) is True
    assert one("paying", last_positive_payment_on=None) is False
    assert one("days_since_last_payment", last_positive_payment_on=D) == 0
    assert one("days_since_last_payment", last_positive_payment_on=start) == 90
    assert one("days_since_last_payment", last_positive_payment_on=None) is None


def test_deaths_on_or_before_d() -> None:
    for who in ("pwc", "nrp"):
        assert one(f"{who}_deceased", **{f"{who}_deceased_on": D}) is True
        assert one(f"{who}_deceased", **{f"{who}_deceased_on": D - DAY}) is True
        assert one(f"{who}_deceased", **{f"{who}_deceased_on": D + DAY}) is False
        assert one(f"{who}_deceased", **{f"{who}_deceased_on": None}) is False


def test_enforcement_active_means_a_code_is_recorded() -> None:
    assert one("enforcement_active", enforcement_code="DEO") is True
    assert one("enforcement_active", enforcement_code="") is True  # recorded, even if blank
    assert one("enforcement_active", enforcement_code=None) is False


def test_traceability() -> None:
    window = minus_years(D, 2)
    assert one("nrp_traceable", nrp_has_nino=True, nrp_address_verified_on=None) is True
    row = {"nrp_has_nino": False}
    assert one("nrp_address_confirmed", **row, nrp_address_verified_on=window) is True
    assert one("nrp_traceable", **row, nrp_address_verified_on=window) is True
    assert one("nrp_untraceable", **row, nrp_address_verified_on=window) is False
    assert one("nrp_untraceable", **row, nrp_address_verified_on=window - DAY) is True
    assert one("nrp_untraceable", **row, nrp_address_verified_on=None) is True


def test_an_address_confirmed_after_the_as_of_date_is_ignored() -> None:
    """Facts dated after D do not count (like payments), so a decision for D reproduces."""
    row = {"nrp_has_nino": False}
    assert one("nrp_address_confirmed", **row, nrp_address_verified_on=D) is True
    assert one("nrp_address_confirmed", **row, nrp_address_verified_on=D + DAY) is False
    assert one("nrp_untraceable", **row, nrp_address_verified_on=D + DAY) is True


def test_output_columns_and_types() -> None:
    frame = features([{}])
    assert tuple(frame.columns) == OUTPUT_COLUMNS
    assert dict(frame.schema) == {k: v for k, v in FEATURES_SCHEMA.items()}
    assert {f.name for f in FEATURES} <= set(frame.columns)
    assert frame["as_of"][0] == D
    assert frame["collection_cost_pence"][0] == 30_000


def test_empty_input_gives_empty_features() -> None:
    frame = compute_features(debts([]), D, default_rules())
    assert frame.height == 0
    assert tuple(frame.columns) == OUTPUT_COLUMNS


# --- parameters change parameter-dependent features ---------------------------------------------


def test_windows_come_from_parameters() -> None:
    rules = default_rules().with_overrides({"paying_window_months": "6"})
    paid = minus_months(D, 5)
    assert features([{"last_positive_payment_on": paid}])["paying"][0] is False
    assert features([{"last_positive_payment_on": paid}], rules=rules)["paying"][0] is True


def test_bind_features_recomputes_with_the_rule_sets_parameters() -> None:
    frame = features([{"last_positive_payment_on": minus_months(D, 5), "balance_pence": 10_000}])
    rules = default_rules().with_overrides(
        {
            "paying_window_months": "6",
            "recovery_rate_employed": "0.5",
            "address_confirmed_within_years": "3",
        }
    )
    bound = bind_features(frame, rules)
    assert bound["paying"][0] is True
    assert bound["recovery_rate_bp"][0] == 5_000
    assert bound["expected_yield_pence"][0] == 5_000
    assert bind_features(bound, default_rules()).equals(frame)


def test_feature_parameters_from_rule_set() -> None:
    fp = default_rules().feature_parameters()
    assert fp == FeatureParameters(
        paying_window_months=3,
        address_confirmed_within_years=2,
        recovery_rate_bp=(
            ("EMPLOYED", 6000),
            ("SELF_EMPLOYED", 3500),
            ("BENEFITS", 1000),
            ("UNKNOWN", 500),
        ),
        collection_cost_pence=30_000,
    )
    assert compute_features(debts([{}]), D, fp).equals(features([{}]))


# --- the input contract -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"creditor": "XYZ"}, "creditor is not PWC or SOS"),
        ({"source_system": "OTHER"}, "source_system is not CSCS or CS2"),
        ({"nrp_employment": "RETIRED"}, "nrp_employment is not"),
        ({"balance_pence": -1}, "balance_pence is negative"),
        ({"last_positive_payment_on": D + DAY}, "last_positive_payment_on is after"),
        ({"balance_pence": None}, "balance_pence is NULL"),
        ({"effective_date": None}, "effective_date is NULL"),
    ],
)
def test_input_contract_refusals(change: dict, message: str) -> None:
    frame = debts([{}, change])
    with pytest.raises(FeatureInputError) as info:
        compute_features(frame, D, default_rules())
    assert message in str(info.value)
    assert "debt_id 2" in str(info.value)


def test_missing_column_and_wrong_type_refused() -> None:
    with pytest.raises(FeatureInputError, match="lacks columns: nrp_employment"):
        compute_features(debts([{}]).drop("nrp_employment"), D, default_rules())
    bad = debts([{}]).with_columns(pl.col("balance_pence").cast(pl.Float64))
    with pytest.raises(FeatureInputError, match="balance_pence is Float64, expected Int64"):
        compute_features(bad, D, default_rules())


def test_duplicate_debt_ids_refused() -> None:
    frame = debts([{}, {}]).with_columns(pl.lit(7, dtype=pl.Int64).alias("debt_id"))
    with pytest.raises(FeatureInputError, match="debt_id is not unique"):
        compute_features(frame, D, default_rules())


def test_safe_casts_are_accepted() -> None:
    frame = debts([{}]).with_columns(
        pl.col("debt_id").cast(pl.Int32), pl.col("creditor").cast(pl.Categorical)
    )
    assert compute_features(frame, D, default_rules())["debt_id"].dtype == pl.Int64


def test_bind_refuses_a_frame_that_is_not_features() -> None:
    with pytest.raises(FeatureInputError, match="lacks columns"):
        bind_features(debts([{}]), default_rules())


def test_synthetic_book_meets_the_contract() -> None:
    frame = compute_features(synthetic_debts(5_000, D), D, default_rules())
    assert frame.height == 5_000
    assert frame["debt_id"].is_unique().all()
