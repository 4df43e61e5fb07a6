"""check_rules, simulate and explain_debt on small populations whose answers are known."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from csa_closure.cli.output import jsonable
from csa_closure.policy import (
    FEATURES,
    FeatureInputError,
    check_rules,
    compute_features,
    decide,
    explain_debt,
    load_rule_set,
    simulate,
)
from csa_closure.simulation.debts import synthetic_debts
from tests.support.policy import D, copy_default_rules, default_rules, features

DAY = timedelta(days=1)

# One debt for each PWC row 1-10, and one for each SOS row.
POPULATION = [
    {"case_ref": "C000000001", "balance_pence": 0},  # PWC-01
    {"case_ref": "C000000002", "liability_end_date": None},  # PWC-02
    {"case_ref": "C000000003", "last_positive_payment_on": D},  # PWC-03
    {"case_ref": "C000000004", "enforcement_code": "DEO"},  # PWC-04
    {"case_ref": "C000000005", "pwc_deceased_on": D},  # PWC-05
    {"case_ref": "C000000006", "stop_acting": True},  # PWC-06
    {"case_ref": "C000000007", "nrp_deceased_on": D},  # PWC-07
    {"case_ref": "C000000008", "balance_pence": 6_000},  # PWC-08
    {"case_ref": "C000000009", "balance_pence": 90_000},  # PWC-09 (old case)
    {"case_ref": "C000000010", "balance_pence": 55_000, "effective_date": date(2015, 1, 1)},  # 10
    {"case_ref": "C000000011", "balance_pence": 400_000},  # PWC-10
    {"case_ref": "C000000001", "creditor": "SOS", "balance_pence": 0},  # SOS-01
    {"case_ref": "C000000011", "creditor": "SOS", "balance_pence": 300_000},  # SOS-05
]


@pytest.fixture
def population() -> pl.DataFrame:
    return features(POPULATION)


def _insert_after(directory: Path, rule_id: str, block: str) -> None:
    path = directory / "eligibility.toml"
    text = path.read_text()
    start = text.index(f'id = "{rule_id}"')
    end = text.index("[[", start)
    path.write_text(text[:end] + block.strip() + "\n\n" + text[end:])


# --- check ----------------------------------------------------------------------------------------


def test_check_counts_first_hits_per_rule(population: pl.DataFrame) -> None:
    report = check_rules(default_rules(), population)
    hits = {r.rule_id: r.first_hits for r in report.rules()}
    assert hits == {
        **{f"PWC-{i:02d}": 1 for i in range(1, 10)},
        "PWC-10": 2,
        "SOS-01": 1,
        "SOS-02": 0,
        "SOS-03": 0,
        "SOS-04": 0,
        "SOS-05": 1,
        "COL-01": 1,
        "COL-02": 0,
        "COL-03": 9,
        "COL-04": 3,
    }
    pwc = report.tables[0]
    assert (pwc.table, pwc.debts, pwc.pence) == ("PWC", 11, 1_751_000)
    assert {r.rule_id: r.first_hit_pence for r in pwc.rules}["PWC-10"] == 455_000
    assert report.never_hit == ["SOS-02", "SOS-03", "SOS-04", "COL-02"]
    assert report.shadowed == []
    assert report.null_conditions == {}
    assert report.debts == 13
    assert report.rule_set_hash == default_rules().hash


def test_check_finds_a_shadowed_rule(tmp_path: Path, population: pl.DataFrame) -> None:
    directory = copy_default_rules(tmp_path / "rules")
    _insert_after(
        directory,
        "PWC-08",
        """
[[PWC]]
id = "PWC-08b"
description = "Tiny balances (never reached: PWC-08 takes them)."
when = "balance_pence < 100"
outcome = "write_off_silent"
reason = "BELOW_65"
""",
    )
    rules = load_rule_set(directory)
    report = check_rules(rules, population)
    assert report.shadowed == ["PWC-08b"]
    shadowed = next(r for r in report.rules() if r.rule_id == "PWC-08b")
    assert shadowed.true_count == 1 and shadowed.first_hits == 0
    assert shadowed.taken_by == {"PWC-01": 1}  # the zero balance is taken by row 1
    assert any(w.startswith("PWC-08b is shadowed") for w in report.warnings())


def test_check_counts_null_conditions(tmp_path: Path, population: pl.DataFrame) -> None:
    directory = copy_default_rules(tmp_path / "rules")
    _insert_after(
        directory,
        "PWC-04",
        """
[[PWC]]
id = "PWC-04b"
description = "Paid in the last 30 days (NULL when never paid)."
when = "days_since_last_payment <= 30"
outcome = "transfer"
reason = "PAYING"
""",
    )
    report = check_rules(load_rule_set(directory), population)
    row = next(r for r in report.rules() if r.rule_id == "PWC-04b")
    assert row.null_count == 10  # every PWC debt but the one paid on D
    assert row.null_reached == 7  # those reaching row 4b: not taken by rows 1-4
    assert report.null_conditions == {"PWC-04b": 10}
    assert row.shadowed and row.taken_by == {"PWC-03": 1}  # true only for a debt PWC-03 takes
    assert "PWC-04b: the condition was NULL for 7 debts that reached it" in "\n".join(
        report.warnings()
    )


def test_check_reports_unused_parameters_and_reasons(tmp_path: Path) -> None:
    directory = copy_default_rules(tmp_path / "rules")
    with (directory / "parameters.toml").open("a") as f:
        f.write('\n[spare_days]\ntype = "days"\nvalue = 7\ndescription = "Not used."\n')
    with (directory / "reasons.toml").open("a") as f:
        f.write('SPARE = "Not given by any rule."\n')
    report = check_rules(load_rule_set(directory), features([{}]))
    assert report.unused_parameters == ("spare_days",)
    assert report.unused_reasons == ("SPARE",)
    assert "parameter spare_days is not used by any rule" in report.warnings()


def test_check_report_is_json(population: pl.DataFrame) -> None:
    data = json.loads(json.dumps(jsonable(check_rules(default_rules(), population))))
    assert data["never_hit"] == ["SOS-02", "SOS-03", "SOS-04", "COL-02"]
    assert data["tables"][0]["rules"][0]["rule_id"] == "PWC-01"


# --- simulate -------------------------------------------------------------------------------------


def test_simulating_the_same_rules_changes_nothing(population: pl.DataFrame) -> None:
    result = simulate(default_rules(), default_rules(), population)
    assert result.changed_debts == 0 and result.changes() == []
    assert result.new.totals == result.current.totals
    assert sum(t.debts for t in result.new.totals) == 13


def test_simulate_threshold_change(population: pl.DataFrame) -> None:
    new = default_rules().with_overrides({"threshold_pence": "60000"})
    result = simulate(new, default_rules(), population)
    changes = result.changes()
    assert len(changes) == 1
    cell = changes[0]
    assert (cell.from_outcome, cell.to_outcome, cell.debts, cell.pence) == (
        "representation",
        "write_off_notice",
        1,
        55_000,
    )
    assert cell.example_case_refs == ("C000000010",)
    assert (result.changed_debts, result.changed_pence) == (1, 55_000)
    assert result.debts == 13 and result.pence == sum(
        p.get("balance_pence", 200_000) for p in POPULATION
    )
    totals = {t.outcome: (t.debts, t.pence) for t in result.new.totals}
    assert totals["representation"] == (1, 400_000)
    assert result.new.hash == new.hash and result.new.overrides == {"threshold_pence": "£600.00"}


def test_simulate_counts_letters_by_the_stated_rule(population: pl.DataFrame) -> None:
    letters = simulate(default_rules(), default_rules(), population).current.letters
    # representation: C10, C11 -> 2 final-chance letters to the PWC
    assert letters.final_chance_pwc == 2
    # write_off_notice: PWC-05 (PWC dead), PWC-06, PWC-09 -> PWC letters 2, NRP letters 3
    assert (letters.write_off_notice_pwc, letters.write_off_notice_nrp) == (2, 3)
    # transfer: PWC-02, 03, 04 -> both parents alive
    assert (letters.transfer_notice_pwc, letters.transfer_notice_nrp) == (3, 3)
    assert letters.total == 13


def test_simulate_letters_skip_a_dead_nrp() -> None:
    frame = features(
        [
            {"stop_acting": True, "nrp_deceased_on": D},  # PWC-06 before PWC-07: notice
            {"liability_end_date": None, "nrp_deceased_on": D, "pwc_deceased_on": D},  # transfer
        ]
    )
    letters = simulate(default_rules(), default_rules(), frame).current.letters
    assert (letters.write_off_notice_pwc, letters.write_off_notice_nrp) == (1, 0)
    assert (letters.transfer_notice_pwc, letters.transfer_notice_nrp) == (0, 0)


def test_simulate_collection_forecast(population: pl.DataFrame) -> None:
    result = simulate(default_rules(), default_rules(), population)
    forecast = result.current.collection
    # transfers: PWC-02, 03, 04 at £2,000.00 each, employed NRPs: 60% yield, £300 cost each
    assert forecast.transfer_debts == 3
    assert forecast.transfer_pence == 600_000
    assert forecast.expected_yield_pence == 360_000
    assert forecast.collection_cost_pence == 90_000
    assert forecast.net_pence == 270_000
    cheaper = default_rules().with_overrides(
        {"collection_cost_per_debt_pence": "10000", "recovery_rate_employed": "0.5"}
    )
    other = simulate(cheaper, default_rules(), population).new.collection
    assert (other.expected_yield_pence, other.collection_cost_pence) == (300_000, 30_000)


def test_simulate_recomputes_features_for_each_rule_set() -> None:
    frame = features([{"case_ref": "C000000077", "last_positive_payment_on": D - 100 * DAY}])
    wider = default_rules().with_overrides({"paying_window_months": "4"})
    result = simulate(wider, default_rules(), frame)
    assert [(c.from_outcome, c.to_outcome) for c in result.changes()] == [
        ("representation", "transfer")
    ]


def test_simulate_examples_are_the_smallest_debt_ids() -> None:
    frame = features(
        [
            {"case_ref": f"C{i:09d}", "balance_pence": 55_000, "effective_date": date(2015, 1, 1)}
            for i in range(10, 0, -1)
        ]
    )
    result = simulate(
        default_rules().with_overrides({"threshold_pence": "60000"}), default_rules(), frame
    )
    (cell,) = result.changes()
    assert cell.debts == 10
    assert cell.example_case_refs == ("C000000010", "C000000009", "C000000008")  # debt ids 1-3


def test_simulation_result_is_json(population: pl.DataFrame) -> None:
    result = simulate(
        default_rules().with_overrides({"threshold_pence": "60000"}), default_rules(), population
    )
    data = json.loads(json.dumps(jsonable(result)))
    assert data["changed_debts"] == 1
    assert data["new"]["letters"]["total"] == result.new.letters.total
    assert data["matrix"][0].keys() >= {"from_outcome", "to_outcome", "debts", "pence"}


# --- explain ------------------------------------------------------------------------------------


def test_explain_shows_each_row_tried_and_the_parameters(population: pl.DataFrame) -> None:
    row = population.filter(pl.col("case_ref") == "C000000009")
    explanation = explain_debt(default_rules(), row)
    assert (explanation.outcome, explanation.reason, explanation.rule_id) == (
        "write_off_notice",
        "BELOW_THRESHOLD",
        "PWC-09",
    )
    trail = explanation.eligibility.trials
    assert [t.rule_id for t in trail] == [f"PWC-{i:02d}" for i in range(1, 10)]
    assert [t.result for t in trail] == [False] * 8 + [True]
    assert [t.matched for t in trail] == [False] * 8 + [True]
    assert trail[8].features == {"balance_pence": 90_000, "case_age_years": 19}
    params = {p.name: (p.value, p.display) for p in explanation.eligibility.parameters}
    assert params == {
        "old_case_age_years": (10, "10 years"),
        "threshold_old_case_pence": (100_000, "£1,000.00"),
        "threshold_pence": (50_000, "£500.00"),
    }
    assert explanation.features["case_age_years"] == 19
    assert list(explanation.features) == [f.name for f in FEATURES]
    assert explanation.dates["effective_date"] == date(2000, 1, 1)
    assert explanation.collectability.rule_id == "COL-03"
    assert explanation.rule_set_hash == default_rules().hash


def test_explain_shows_null_results(tmp_path: Path, population: pl.DataFrame) -> None:
    directory = copy_default_rules(tmp_path / "rules")
    _insert_after(
        directory,
        "PWC-01",
        """
[[PWC]]
id = "PWC-01b"
description = "Paid in the last 30 days."
when = "days_since_last_payment <= 30"
outcome = "transfer"
reason = "PAYING"
""",
    )
    row = population.filter(pl.col("case_ref") == "C000000011", pl.col("creditor") == "PWC")
    explanation = explain_debt(load_rule_set(directory), row)
    assert explanation.eligibility.trials[1].rule_id == "PWC-01b"
    assert explanation.eligibility.trials[1].result is None  # NULL: does not match
    assert explanation.rule_id == "PWC-10"


def test_explain_uses_the_rule_sets_own_parameters(population: pl.DataFrame) -> None:
    row = population.filter(pl.col("case_ref") == "C000000010")
    rules = default_rules().with_overrides({"threshold_pence": "60000"})
    explanation = explain_debt(rules, row)
    assert explanation.rule_id == "PWC-09"
    shown = {p.name: p.display for p in explanation.eligibility.parameters}
    assert shown["threshold_pence"] == "£600.00"
    assert explanation.rule_set_hash == rules.hash


def test_explain_a_mapping_and_refuse_many_rows(population: pl.DataFrame) -> None:
    as_dict = population.row(12, named=True)
    explanation = explain_debt(default_rules(), as_dict)
    assert (explanation.creditor, explanation.rule_id) == ("SOS", "SOS-05")
    with pytest.raises(FeatureInputError, match="one debt's features, not 13 rows"):
        explain_debt(default_rules(), population)
    data = json.loads(json.dumps(jsonable(explanation)))
    assert data["eligibility"]["trials"][-1]["matched"] is True
    assert data["as_of"] == "2019-03-31"


def test_explain_agrees_with_decide_on_a_synthetic_book() -> None:
    frame = compute_features(synthetic_debts(400, D, seed=3), D, default_rules())
    decided = decide(default_rules(), frame)["rule_id"].to_list()
    for i in range(frame.height):
        assert explain_debt(default_rules(), frame.slice(i, 1)).rule_id == decided[i]
