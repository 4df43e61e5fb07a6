"""The default rules encode policy.md exactly: every row of its tables and every boundary."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest

from csa_closure.policy import collectability, decide
from csa_closure.policy.calendar import minus_months, minus_years
from tests.support.policy import D, debts, decide_one, default_rules, features

DAY = timedelta(days=1)
TEN_YEARS_AGO = minus_years(D, 10)  # 2009-03-31


def outcome(**fields):  # type: ignore[no-untyped-def]
    return decide_one(**fields)[:2]


# --- the shape of the default rule set -------------------------------------------------------


def test_default_tables_are_policy_rows_in_order() -> None:
    rules = default_rules()
    rows = [(r.id, r.outcome.value, r.reason) for r in rules.tables["PWC"].rules]
    assert rows == [
        ("PWC-01", "nil", "NIL_BALANCE"),
        ("PWC-02", "transfer", "ONGOING_LIABILITY"),
        ("PWC-03", "transfer", "PAYING"),
        ("PWC-04", "transfer", "ENFORCEMENT_ACTIVE"),
        ("PWC-05", "write_off_notice", "PWC_DECEASED"),
        ("PWC-06", "write_off_notice", "STOP_ACTING"),
        ("PWC-07", "manual_review", "NRP_DECEASED"),
        ("PWC-08", "write_off_silent", "BELOW_65"),
        ("PWC-09", "write_off_notice", "BELOW_THRESHOLD"),
        ("PWC-10", "representation", "FINAL_CHANCE"),
    ]
    sos = [(r.id, r.outcome.value, r.reason) for r in rules.tables["SOS"].rules]
    assert sos == [
        ("SOS-01", "nil", "NIL_BALANCE"),
        ("SOS-02", "transfer", "ONGOING_LIABILITY"),
        ("SOS-03", "transfer", "PAYING"),
        ("SOS-04", "transfer", "ENFORCEMENT_ACTIVE"),
        ("SOS-05", "write_off_silent", "SOS_DEBT"),
    ]
    col = [(r.id, r.outcome.value, r.reason) for r in rules.tables["collectability"].rules]
    assert col == [
        ("COL-01", "write_off_notice", "NRP_DECEASED"),
        ("COL-02", "write_off_notice", "UNTRACEABLE"),
        ("COL-03", "transfer", "COLLECTABLE"),
        ("COL-04", "write_off_notice", "NOT_COST_EFFECTIVE"),
    ]


def test_default_parameters_are_policy_values() -> None:
    values = default_rules().param_values()
    assert values == {
        "write_off_silent_below_pence": 6_500,
        "threshold_pence": 50_000,
        "threshold_old_case_pence": 100_000,
        "old_case_age_years": 10,
        "paying_window_months": 3,
        "address_confirmed_within_years": 2,
        "recovery_rate_employed": 6_000,
        "recovery_rate_self_employed": 3_500,
        "recovery_rate_benefits": 1_000,
        "recovery_rate_unknown": 500,
        "collection_cost_per_debt_pence": 30_000,
    }


# --- PWC table, row by row --------------------------------------------------------------------


def test_baseline_reaches_final_chance() -> None:
    assert decide_one() == ("representation", "FINAL_CHANCE", "PWC-10")


def test_row1_zero_balance_is_nil_before_anything_else() -> None:
    assert outcome(balance_pence=0) == ("nil", "NIL_BALANCE")
    assert outcome(balance_pence=0, liability_end_date=None, pwc_deceased_on=D) == (
        "nil",
        "NIL_BALANCE",
    )
    assert outcome(balance_pence=1) == ("write_off_silent", "BELOW_65")


def test_row2_liability_ongoing_boundaries() -> None:
    assert outcome(liability_end_date=None) == ("transfer", "ONGOING_LIABILITY")
    assert outcome(liability_end_date=D) == ("representation", "FINAL_CHANCE")  # ends on D
    assert outcome(liability_end_date=D + DAY) == ("transfer", "ONGOING_LIABILITY")


def test_row3_paying_window_boundaries() -> None:
    window_start = minus_months(D, 3)  # 2018-12-31
    assert window_start == date(2018, 12, 31)
    assert outcome(last_positive_payment_on=window_start) == ("transfer", "PAYING")
    assert outcome(last_positive_payment_on=window_start - DAY) == (
        "representation",
        "FINAL_CHANCE",
    )
    assert outcome(last_positive_payment_on=D) == ("transfer", "PAYING")


def test_row3_paying_window_clamps_to_month_end() -> None:
    as_of = date(2019, 5, 31)  # minus 3 months is 28 February 2019
    assert decide_one(as_of, last_positive_payment_on=date(2019, 2, 28))[1] == "PAYING"
    assert decide_one(as_of, last_positive_payment_on=date(2019, 2, 27))[1] == "FINAL_CHANCE"
    leap = date(2020, 5, 31)  # minus 3 months is 29 February 2020
    assert decide_one(leap, last_positive_payment_on=date(2020, 2, 29))[1] == "PAYING"
    assert decide_one(leap, last_positive_payment_on=date(2020, 2, 28))[1] == "FINAL_CHANCE"


def test_row4_enforcement_active() -> None:
    assert outcome(enforcement_code="DEO") == ("transfer", "ENFORCEMENT_ACTIVE")
    assert outcome(enforcement_code=None) == ("representation", "FINAL_CHANCE")


def test_row5_pwc_death_on_d_and_day_after() -> None:
    assert outcome(pwc_deceased_on=D) == ("write_off_notice", "PWC_DECEASED")
    assert outcome(pwc_deceased_on=D + DAY) == ("representation", "FINAL_CHANCE")


def test_row6_stop_acting() -> None:
    assert outcome(stop_acting=True) == ("write_off_notice", "STOP_ACTING")


def test_row7_nrp_death_on_d_and_day_after() -> None:
    assert outcome(nrp_deceased_on=D) == ("manual_review", "NRP_DECEASED")
    assert outcome(nrp_deceased_on=D + DAY) == ("representation", "FINAL_CHANCE")


def test_row8_below_65_boundary() -> None:
    assert outcome(balance_pence=6_499) == ("write_off_silent", "BELOW_65")
    assert outcome(balance_pence=6_500) == ("write_off_notice", "BELOW_THRESHOLD")


@pytest.mark.parametrize(
    ("effective_date", "balance", "expected"),
    [
        # one day short of 10 years: threshold £500.00
        (TEN_YEARS_AGO + DAY, 50_000, "write_off_notice"),
        (TEN_YEARS_AGO + DAY, 50_001, "representation"),
        # exactly 10 years: threshold £1,000.00
        (TEN_YEARS_AGO, 50_000, "write_off_notice"),
        (TEN_YEARS_AGO, 50_001, "write_off_notice"),
        (TEN_YEARS_AGO, 100_000, "write_off_notice"),
        (TEN_YEARS_AGO, 100_001, "representation"),
        # much older
        (date(1995, 1, 1), 100_000, "write_off_notice"),
        (date(1995, 1, 1), 100_001, "representation"),
    ],
)
def test_row9_threshold_by_case_age(effective_date: date, balance: int, expected: str) -> None:
    got = outcome(effective_date=effective_date, balance_pence=balance)
    reason = "BELOW_THRESHOLD" if expected == "write_off_notice" else "FINAL_CHANCE"
    assert got == (expected, reason)


def test_effective_date_29_february() -> None:
    # 28 Feb 2018 minus 10 years is 28 Feb 2008: a case effective 29 Feb 2008 is not yet 10.
    feb29 = {"effective_date": date(2008, 2, 29), "balance_pence": 60_000}
    assert decide_one(date(2018, 2, 28), **feb29)[0] == "representation"
    assert decide_one(date(2018, 3, 1), **feb29)[0] == "write_off_notice"
    # D = 29 Feb 2020 minus 10 years is 28 Feb 2010.
    leap_d = date(2020, 2, 29)
    assert decide_one(leap_d, effective_date=date(2010, 2, 28), balance_pence=60_000)[0] == (
        "write_off_notice"
    )
    assert decide_one(leap_d, effective_date=date(2010, 3, 1), balance_pence=60_000)[0] == (
        "representation"
    )
    # A leap-day D reaching back to a leap year: 29 Feb 2020 minus 12 years is 29 Feb 2008.
    old = {"effective_date": date(2008, 2, 29), "balance_pence": 60_000}
    assert decide_one(leap_d, **old)[0] == "write_off_notice"
    assert decide_one(date(2018, 2, 27), **old)[0] == "representation"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"liability_end_date": None, "last_positive_payment_on": D}, "ONGOING_LIABILITY"),
        ({"last_positive_payment_on": D, "enforcement_code": "X"}, "PAYING"),
        ({"enforcement_code": "X", "pwc_deceased_on": D}, "ENFORCEMENT_ACTIVE"),
        ({"pwc_deceased_on": D, "stop_acting": True}, "PWC_DECEASED"),
        ({"stop_acting": True, "nrp_deceased_on": D}, "STOP_ACTING"),
        ({"nrp_deceased_on": D, "balance_pence": 100}, "NRP_DECEASED"),
        ({"balance_pence": 100, "effective_date": date(1990, 1, 1)}, "BELOW_65"),
    ],
)
def test_first_hit_wins(fields: dict, reason: str) -> None:
    assert decide_one(**fields)[1] == reason


# --- SOS table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"balance_pence": 0}, ("nil", "NIL_BALANCE")),
        ({"liability_end_date": None}, ("transfer", "ONGOING_LIABILITY")),
        ({"liability_end_date": D + DAY}, ("transfer", "ONGOING_LIABILITY")),
        ({"liability_end_date": D}, ("write_off_silent", "SOS_DEBT")),
        ({"last_positive_payment_on": minus_months(D, 3)}, ("transfer", "PAYING")),
        ({"last_positive_payment_on": minus_months(D, 3) - DAY}, ("write_off_silent", "SOS_DEBT")),
        ({"enforcement_code": "DEO"}, ("transfer", "ENFORCEMENT_ACTIVE")),
        # PWC rows 5-9 do not apply to the Government's debt
        ({"pwc_deceased_on": D}, ("write_off_silent", "SOS_DEBT")),
        ({"stop_acting": True}, ("write_off_silent", "SOS_DEBT")),
        ({"nrp_deceased_on": D}, ("write_off_silent", "SOS_DEBT")),
        ({"balance_pence": 100}, ("write_off_silent", "SOS_DEBT")),
        ({"balance_pence": 50_000}, ("write_off_silent", "SOS_DEBT")),
        ({"balance_pence": 10_000_000}, ("write_off_silent", "SOS_DEBT")),
    ],
)
def test_sos_rows(fields: dict, expected: tuple[str, str]) -> None:
    assert outcome(creditor="SOS", **fields) == expected


def test_pwc_and_sos_debts_on_one_case_decide_differently() -> None:
    frame = features(
        [
            {"case_ref": "C000000042", "creditor": "PWC", "balance_pence": 300_000},
            {"case_ref": "C000000042", "creditor": "SOS", "balance_pence": 300_000},
        ]
    )
    result = decide(default_rules(), frame)
    assert result.rows() == [
        (1, "representation", "FINAL_CHANCE", "PWC-10"),
        (2, "write_off_silent", "SOS_DEBT", "SOS-05"),
    ]


def test_paying_is_a_case_fact_applying_to_both_debts() -> None:
    paid = minus_months(D, 1)
    frame = features(
        [
            {"creditor": "PWC", "last_positive_payment_on": paid},
            {"creditor": "SOS", "last_positive_payment_on": paid},
        ]
    )
    assert decide(default_rules(), frame)["reason"].to_list() == ["PAYING", "PAYING"]


# --- collectability ----------------------------------------------------------------------------


def collect_one(as_of: date = D, **fields):  # type: ignore[no-untyped-def]
    frame = features([fields], as_of)
    return collectability(default_rules(), frame).select("outcome", "reason").row(0)


def test_collectability_nrp_deceased() -> None:
    assert collect_one(nrp_deceased_on=D) == ("write_off_notice", "NRP_DECEASED")
    assert collect_one(nrp_deceased_on=D + DAY) == ("transfer", "COLLECTABLE")


def test_collectability_untraceable_boundaries() -> None:
    two_years = minus_years(D, 2)
    no_nino = {"nrp_has_nino": False}
    assert collect_one(**no_nino, nrp_address_verified_on=two_years) == ("transfer", "COLLECTABLE")
    assert collect_one(**no_nino, nrp_address_verified_on=two_years - DAY) == (
        "write_off_notice",
        "UNTRACEABLE",
    )
    assert collect_one(**no_nino, nrp_address_verified_on=None) == (
        "write_off_notice",
        "UNTRACEABLE",
    )
    # a NINO alone makes the NRP traceable
    assert collect_one(nrp_has_nino=True, nrp_address_verified_on=None) == (
        "transfer",
        "COLLECTABLE",
    )


def test_collectability_address_window_clamps_to_month_end() -> None:
    as_of = date(2020, 2, 29)  # minus 2 years is 28 February 2018
    fields = {"nrp_has_nino": False}
    assert collect_one(as_of, **fields, nrp_address_verified_on=date(2018, 2, 28))[1] == (
        "COLLECTABLE"
    )
    assert collect_one(as_of, **fields, nrp_address_verified_on=date(2018, 2, 27))[1] == (
        "UNTRACEABLE"
    )


@pytest.mark.parametrize(
    ("employment", "collectable_from"),
    [
        ("EMPLOYED", 50_000),  # 50,000 x 0.60 = 30,000.00
        ("SELF_EMPLOYED", 85_715),  # 85,715 x 0.35 = 30,000.25 -> 30,000
        ("BENEFITS", 300_000),  # 300,000 x 0.10 = 30,000
        ("UNKNOWN", 600_000),  # 600,000 x 0.05 = 30,000
    ],
)
def test_collectability_yield_minus_cost_boundary(employment: str, collectable_from: int) -> None:
    at = collect_one(nrp_employment=employment, balance_pence=collectable_from)
    below = collect_one(nrp_employment=employment, balance_pence=collectable_from - 1)
    assert at == ("transfer", "COLLECTABLE")  # yield minus cost is exactly zero
    assert below == ("write_off_notice", "NOT_COST_EFFECTIVE")


def test_expected_yield_rounds_down_to_the_penny() -> None:
    frame = features(
        [
            {"nrp_employment": "SELF_EMPLOYED", "balance_pence": 85_714},  # 29,999.9
            {"nrp_employment": "SELF_EMPLOYED", "balance_pence": 3},  # 1.05
            {"nrp_employment": "EMPLOYED", "balance_pence": 1},  # 0.6
            {"nrp_employment": "UNKNOWN", "balance_pence": 19},  # 0.95
            {"nrp_employment": "BENEFITS", "balance_pence": 10**12},
        ]
    )
    assert frame["expected_yield_pence"].to_list() == [29_999, 1, 0, 0, 10**11]
    assert frame["expected_yield_pence"].dtype == pl.Int64
    assert frame["recovery_rate_bp"].to_list() == [3_500, 3_500, 6_000, 500, 1_000]


def test_decide_keeps_order_and_gives_one_outcome_per_debt() -> None:
    rows = [{"balance_pence": b} for b in (0, 100, 6_500, 200_000)] * 3
    frame = debts(rows).with_columns(pl.Series("debt_id", [9, 3, 7, 1, 12, 2, 5, 6, 4, 8, 11, 10]))
    from csa_closure.policy import compute_features

    result = decide(default_rules(), compute_features(frame, D, default_rules()))
    assert result["debt_id"].to_list() == [9, 3, 7, 1, 12, 2, 5, 6, 4, 8, 11, 10]
    assert result.null_count().sum_horizontal().item() == 0
    assert result["rule_id"].to_list()[:4] == ["PWC-01", "PWC-08", "PWC-09", "PWC-10"]
