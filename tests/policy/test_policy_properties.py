"""Property tests (hypothesis).

1. Random well-typed conditions over random feature rows (NULLs anywhere): the polars
   evaluation (``pl.sql_expr``) agrees with the plain-Python reference evaluator, and the
   canonical text re-parses to itself.
2. Random valid rule sets (random tables, random parameter values) over random debts for a
   random as-of date: every debt gets exactly one outcome, in order; the features agree with
   the plain-Python reference features; ``decide`` and ``collectability`` agree with the
   reference first-hit evaluation row by row.
3. The default rules over random debts agree with an independent transcription of
   policy.md in plain Python (exact fractions for the yield: no rounding at all).
"""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from functools import cache
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from csa_closure.domain.states import Outcome
from csa_closure.policy import (
    bind_features,
    check_rules,
    collectability,
    compute_features,
    decide,
    reference_decide,
    reference_first_hit,
    rule_set_from_documents,
)
from csa_closure.policy.calendar import minus_months, minus_years
from csa_closure.policy.conditions import Scope, compile_condition, parse
from csa_closure.policy.conditions.ast import (
    Arith,
    Between,
    BoolOp,
    Call,
    Case,
    Compare,
    InList,
    IsNull,
    Literal,
    Name,
    Negate,
    Node,
    Not,
    ValueType,
)
from csa_closure.policy.conditions.reference import evaluate
from csa_closure.policy.conditions.render import canonical_text
from csa_closure.policy.errors import EvaluationOverflow
from csa_closure.policy.features import (
    CONDITION_TYPES,
    NOT_IN_CONDITIONS,
    reference_features,
)
from csa_closure.policy.ruleset import ALLOWED_OUTCOMES
from tests.support.policy import INPUT_SCHEMA, default_rules

INTEGER, BOOLEAN, TEXT = ValueType.INTEGER, ValueType.BOOLEAN, ValueType.TEXT
EXTRA_PARAMS = {"p_pence": INTEGER, "p_years": INTEGER, "p_flag": BOOLEAN}
SCOPE = Scope(CONDITION_TYPES, EXTRA_PARAMS, NOT_IN_CONDITIONS)
NAMES = {
    t: sorted(
        [n for n, nt in CONDITION_TYPES.items() if nt is t]
        + [n for n, nt in EXTRA_PARAMS.items() if nt is t]
    )
    for t in (INTEGER, BOOLEAN, TEXT)
}
TEXTS = ["PWC", "SOS", "CSCS", "CS2", "EMPLOYED", "UNKNOWN", "1993", "", "it's", "Zé"]
NULL = Literal(None)

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# --- random conditions ----------------------------------------------------------------------------


def _leaf(t: ValueType) -> st.SearchStrategy[Node]:
    if t is INTEGER:
        literal = st.builds(
            Literal, st.one_of(st.integers(-1_000, 100_000), st.sampled_from([0, 1, 6_500, 10_000]))
        )
    elif t is BOOLEAN:
        literal = st.builds(Literal, st.booleans())
    else:
        literal = st.builds(Literal, st.sampled_from(TEXTS))
    return st.one_of(literal, st.builds(Name, st.sampled_from(NAMES[t])))


def _some_null(items: st.SearchStrategy[Node], low: int, high: int) -> st.SearchStrategy[tuple]:
    """2-3 expressions, some may be a bare NULL, not all."""
    return (
        st.lists(st.one_of(items, st.just(NULL)), min_size=low, max_size=high)
        .filter(lambda xs: any(x is not NULL for x in xs))
        .map(tuple)
    )


@cache
def expr(t: ValueType, depth: int) -> st.SearchStrategy[Node]:
    leaf = _leaf(t)
    if depth == 0:
        return leaf
    sub = lambda tt: expr(tt, depth - 1)  # noqa: E731
    result = st.one_of(sub(t), st.just(NULL))
    case = st.builds(
        Case,
        st.lists(st.tuples(sub(BOOLEAN), result), min_size=1, max_size=2).map(tuple),
        st.one_of(st.none(), result),
    ).filter(lambda c: any(r is not NULL for _, r in c.whens) or c.else_ not in (None, NULL))
    coalesce = st.builds(lambda args: Call("COALESCE", args), _some_null(sub(t), 2, 3))
    options: list[st.SearchStrategy[Node]] = [leaf, case, coalesce]
    if t is INTEGER:
        options += [
            st.builds(Negate, sub(INTEGER)),
            st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), sub(INTEGER), sub(INTEGER)),
            st.builds(lambda a: Call("ABS", (a,)), sub(INTEGER)),
            st.builds(
                lambda f, args: Call(f, args),
                st.sampled_from(["LEAST", "GREATEST"]),
                _some_null(sub(INTEGER), 2, 3),
            ),
        ]
    elif t is BOOLEAN:
        ordered = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])
        options += [
            st.builds(Not, sub(BOOLEAN)),
            st.builds(
                BoolOp,
                st.sampled_from(["AND", "OR"]),
                st.lists(sub(BOOLEAN), min_size=2, max_size=3).map(tuple),
            ),
            st.builds(Compare, ordered, sub(INTEGER), sub(INTEGER)),
            st.builds(Compare, ordered, sub(TEXT), sub(TEXT)),
            st.builds(Compare, st.sampled_from(["=", "<>"]), sub(BOOLEAN), sub(BOOLEAN)),
            st.builds(IsNull, st.one_of(sub(INTEGER), sub(TEXT), sub(BOOLEAN)), st.booleans()),
            st.builds(
                InList,
                sub(INTEGER),
                st.lists(sub(INTEGER), min_size=1, max_size=3).map(tuple),
                st.booleans(),
            ),
            st.builds(
                InList,
                sub(TEXT),
                st.lists(sub(TEXT), min_size=1, max_size=3).map(tuple),
                st.booleans(),
            ),
            st.builds(Between, sub(INTEGER), sub(INTEGER), sub(INTEGER), st.booleans()),
            st.builds(Between, sub(TEXT), sub(TEXT), sub(TEXT), st.booleans()),
        ]
    return st.one_of(*options)


def _value(t: ValueType) -> st.SearchStrategy[Any]:
    if t is INTEGER:
        values = st.one_of(
            st.integers(-1_000, 1_000_000), st.sampled_from([0, 6_499, 6_500, 50_000])
        )
    elif t is BOOLEAN:
        values = st.booleans()
    else:
        values = st.sampled_from(TEXTS)
    return st.one_of(st.none(), values)


@st.composite
def feature_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """1-8 rows of features. Each column is either the same in every row (often: polars
    takes shortcuts on uniform and all-NULL columns) or drawn row by row."""
    n = draw(st.integers(1, 8))
    columns: dict[str, list[Any]] = {}
    for name, t in CONDITION_TYPES.items():
        if draw(st.booleans()):
            columns[name] = [draw(_value(t))] * n
        else:
            columns[name] = [draw(_value(t)) for _ in range(n)]
    return [{name: values[i] for name, values in columns.items()} for i in range(n)]


extra_params = st.fixed_dictionaries(
    {"p_pence": st.integers(0, 1_000_000), "p_years": st.integers(0, 100), "p_flag": st.booleans()}
)
_FRAME_SCHEMA = {
    name: {INTEGER: pl.Int64, BOOLEAN: pl.Boolean, TEXT: pl.String}[t]
    for name, t in CONDITION_TYPES.items()
}


def _reference(condition, rows, params):  # type: ignore[no-untyped-def]
    try:
        return [condition.evaluate(row, params) for row in rows]
    except EvaluationOverflow:
        reject()


@settings(PROPERTY, max_examples=300)
@given(
    nodes=st.lists(expr(BOOLEAN, 3), min_size=1, max_size=6),
    rows=feature_rows(),
    params=extra_params,
)
def test_random_conditions_polars_agrees_with_reference(
    nodes: list[Node], rows: list, params: dict
) -> None:
    conditions = []
    expected = []
    for node in nodes:
        text = canonical_text(node)
        condition = compile_condition(text, SCOPE)  # every generated condition is valid
        canonical = condition.text
        assert canonical_text(parse(canonical)) == canonical  # the canonical text is a fixpoint
        try:
            values = [evaluate(node, {**row, **params}) for row in rows]  # the generated tree
        except EvaluationOverflow:
            reject()
        assert _reference(condition, rows, params) == values  # the tree parsed from its text
        conditions.append(condition)
        expected.append(values)
    frame = pl.DataFrame(rows, schema=_FRAME_SCHEMA)
    # each condition as a column
    evaluated = frame.with_columns(c.expr(params).alias(f"_r{i}") for i, c in enumerate(conditions))
    for i, condition in enumerate(conditions):
        got = evaluated[f"_r{i}"].to_list()
        assert got == expected[i], (condition.text, condition.sql(params))
    # as counted by check_rules: TRUE and NULL counts, in a lazy aggregation
    counts = (
        frame.lazy()
        .select(
            pl.col("balance_pence"),
            *(c.expr(params).alias(f"c{i}") for i, c in enumerate(conditions)),
        )
        .select(
            pl.len().alias("n"),
            *(pl.col(f"c{i}").sum().alias(f"t{i}") for i in range(len(conditions))),
            *(pl.col(f"c{i}").is_null().sum().alias(f"u{i}") for i in range(len(conditions))),
        )
        .collect()
        .row(0, named=True)
    )
    assert counts["n"] == len(rows)
    for i, values in enumerate(expected):
        assert counts[f"t{i}"] == sum(v is True for v in values)
        assert counts[f"u{i}"] == sum(v is None for v in values)
    # as a first-hit table (what decide does), next to another column
    chain = pl.when(conditions[0].expr(params)).then(0)
    for i, c in enumerate(conditions[1:], start=1):
        chain = chain.when(c.expr(params)).then(i)
    hits = (
        frame.lazy().select(pl.col("balance_pence"), chain.otherwise(None).alias("hit")).collect()
    )
    first = [
        next((i for i, v in enumerate(col) if v is True), None)
        for col in zip(*expected, strict=True)
    ]
    assert hits["hit"].to_list() == first


# --- random debts ---------------------------------------------------------------------------------

SPECIAL_DATES = [
    date(2020, 2, 29),
    date(2019, 2, 28),
    date(2019, 3, 31),
    date(2019, 5, 31),
    date(2016, 2, 29),
    date(2018, 12, 31),
]
as_of_dates = st.one_of(
    st.sampled_from(SPECIAL_DATES), st.dates(date(2012, 1, 1), date(2024, 12, 31))
)
BALANCES = [
    0,
    1,
    6_499,
    6_500,
    49_999,
    50_000,
    50_001,
    85_714,
    85_715,
    99_999,
    100_000,
    100_001,
    600_000,
]


@st.composite
def debts_for(draw: st.DrawFn, as_of: date) -> pl.DataFrame:
    """1-10 debts meeting the input contract, with dates near the policy's boundaries."""
    n = draw(st.integers(1, 10))

    def near(anchor: date, span: int = 40) -> date:
        return anchor + timedelta(days=draw(st.integers(-span, span)))

    def a_date() -> date:
        anchors = [as_of, minus_months(as_of, 3), minus_years(as_of, 2), minus_years(as_of, 10)]
        return draw(
            st.one_of(
                st.builds(near, st.sampled_from(anchors)),
                st.dates(date(1990, 1, 1), date(2025, 12, 31)),
            )
        )

    def maybe_date() -> date | None:
        return draw(st.one_of(st.none(), st.builds(a_date)))

    rows = []
    for i in range(n):
        paid = draw(st.one_of(st.none(), st.integers(0, 400)))
        rows.append(
            {
                "debt_id": i + 1,
                "case_ref": f"C{draw(st.integers(0, 3)):09d}",
                "source_system": draw(st.sampled_from(["CSCS", "CS2"])),
                "scheme": draw(st.sampled_from(["1993", "2003"])),
                "creditor": draw(st.sampled_from(["PWC", "SOS"])),
                "balance_pence": draw(
                    st.one_of(st.sampled_from(BALANCES), st.integers(0, 5_000_000))
                ),
                "effective_date": a_date(),
                "liability_end_date": maybe_date(),
                "enforcement_code": draw(st.one_of(st.none(), st.sampled_from(["DEO", "LO"]))),
                "stop_acting": draw(st.booleans()),
                "dv_marker": draw(st.booleans()),
                "pwc_deceased_on": maybe_date(),
                "nrp_deceased_on": maybe_date(),
                "nrp_has_nino": draw(st.booleans()),
                "nrp_address_verified_on": maybe_date(),
                "nrp_employment": draw(
                    st.sampled_from(["EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN"])
                ),
                "last_positive_payment_on": None if paid is None else as_of - timedelta(days=paid),
            }
        )
    return pl.DataFrame(rows, schema=INPUT_SCHEMA, orient="row")


# --- random rule sets -----------------------------------------------------------------------------

REASONS = {"R_ONE": "First reason.", "R_TWO": "Second reason."}


@st.composite
def rule_sets(draw: st.DrawFn):  # type: ignore[no-untyped-def]
    def rate_text() -> str:
        bp = draw(st.integers(0, 10_000))
        return f"{bp // 10_000}.{bp % 10_000:04d}"

    parameters = {
        "paying_window_months": {
            "type": "months",
            "value": draw(st.integers(0, 24)),
            "description": "w",
        },
        "address_confirmed_within_years": {
            "type": "years",
            "value": draw(st.integers(0, 5)),
            "description": "a",
        },
        "collection_cost_per_debt_pence": {
            "type": "pence",
            "value": draw(st.integers(0, 100_000)),
            "description": "c",
        },
        "p_pence": {"type": "pence", "value": draw(st.integers(0, 1_000_000)), "description": "p"},
        "p_years": {"type": "years", "value": draw(st.integers(0, 100)), "description": "y"},
        "p_flag": {"type": "bool", "value": draw(st.booleans()), "description": "f"},
    }
    for name in ("employed", "self_employed", "benefits", "unknown"):
        parameters[f"recovery_rate_{name}"] = {
            "type": "rate",
            "value": rate_text(),
            "description": "r",
        }

    def table(prefix: str, allowed: tuple[Outcome, ...]) -> list[dict[str, str]]:
        conditions = draw(
            st.lists(expr(BOOLEAN, 2).filter(lambda n: n != Literal(True)), min_size=0, max_size=5)
        )
        rows = []
        for i, node in enumerate([*conditions, Literal(True)], start=1):
            rows.append(
                {
                    "id": f"{prefix}-{i:02d}",
                    "description": f"row {i}",
                    "when": canonical_text(node),
                    "outcome": draw(st.sampled_from(allowed)).value,
                    "reason": draw(st.sampled_from(sorted(REASONS))),
                }
            )
        return rows

    documents = {
        "ruleset": {"format": 1, "name": "random", "description": "generated"},
        "parameters": parameters,
        "reasons": dict(REASONS),
        "eligibility": {
            "PWC": table("P", ALLOWED_OUTCOMES["PWC"]),
            "SOS": table("S", ALLOWED_OUTCOMES["SOS"]),
        },
        "collectability": {"collectability": table("C", ALLOWED_OUTCOMES["collectability"])},
    }
    return rule_set_from_documents(documents)


def _check_one_outcome_each(result: pl.DataFrame, frame: pl.DataFrame) -> None:
    assert result.columns == ["debt_id", "outcome", "reason", "rule_id"]
    assert result["debt_id"].to_list() == frame["debt_id"].to_list()
    assert result.null_count().sum_horizontal().item() == 0
    assert set(result["outcome"]) <= {o.value for o in Outcome}


@settings(PROPERTY, max_examples=100)
@given(data=st.data(), as_of=as_of_dates, rule_set=rule_sets())
def test_random_rule_sets_polars_agrees_with_reference(
    data: st.DataObject, as_of: date, rule_set
) -> None:  # type: ignore[no-untyped-def]
    inputs = data.draw(debts_for(as_of))
    frame = compute_features(inputs, as_of, rule_set)
    bound_rows = bind_features(frame, rule_set).iter_rows(named=True)
    fp = rule_set.feature_parameters()
    params = rule_set.param_values()
    try:
        decided = decide(rule_set, frame)
        collected = collectability(rule_set, frame)
        expected = []
        for row, source in zip(bound_rows, inputs.iter_rows(named=True), strict=True):
            derived = reference_features(source, as_of, fp)
            assert {k: row[k] for k in derived} == derived
            eligibility = reference_decide(rule_set, row)
            collect = reference_first_hit(rule_set.collectability_table, row, params)
            assert eligibility is not None and collect is not None
            expected.append((eligibility.id, collect.id))
    except EvaluationOverflow:
        reject()
    _check_one_outcome_each(decided, inputs)
    _check_one_outcome_each(collected, inputs)
    assert list(zip(decided["rule_id"], collected["rule_id"], strict=True)) == expected
    for rule_id, outcome, reason in decided.select("rule_id", "outcome", "reason").iter_rows():
        rule = rule_set.rule(rule_id)
        assert (rule.outcome.value, rule.reason) == (outcome, reason)
    _check_report_agrees(rule_set, frame, expected)


def _check_report_agrees(rule_set, frame: pl.DataFrame, expected: list) -> None:  # type: ignore[no-untyped-def]
    """check_rules' counts equal counts from the reference evaluation, row by row."""
    report = check_rules(rule_set, frame)
    rows = list(bind_features(frame, rule_set).iter_rows(named=True))
    params = rule_set.param_values()
    firsts = [e for e, _ in expected] + [c for _, c in expected]
    for table in report.tables:
        population = [r for r in rows if table.table in ("collectability", r["creditor"])]
        assert table.debts == len(population)
        for check in table.rules:
            rule = rule_set.rule(check.rule_id)
            values = [rule.condition.evaluate(r, params) for r in population]
            assert check.true_count == sum(v is True for v in values)
            assert check.null_count == sum(v is None for v in values)
            assert check.first_hits == firsts.count(rule.id)
            assert check.shadowed == (
                check.first_hits == 0 and check.true_count > 0 and not rule.is_catch_all
            )


# --- the default rules against policy.md, transcribed independently -------------------------------

RATES = {
    "EMPLOYED": Fraction(60, 100),
    "SELF_EMPLOYED": Fraction(35, 100),
    "BENEFITS": Fraction(10, 100),
    "UNKNOWN": Fraction(5, 100),
}


def policy_md(row: dict[str, Any], d: date) -> tuple[str, str]:
    """policy.md's eligibility tables, read directly."""
    if row["balance_pence"] == 0:
        return "nil", "NIL_BALANCE"
    end = row["liability_end_date"]
    if end is None or end > d:
        return "transfer", "ONGOING_LIABILITY"
    paid = row["last_positive_payment_on"]
    if paid is not None and minus_months(d, 3) <= paid <= d:
        return "transfer", "PAYING"
    if row["enforcement_code"] is not None:
        return "transfer", "ENFORCEMENT_ACTIVE"
    if row["creditor"] == "SOS":
        return "write_off_silent", "SOS_DEBT"
    if row["pwc_deceased_on"] is not None and row["pwc_deceased_on"] <= d:
        return "write_off_notice", "PWC_DECEASED"
    if row["stop_acting"]:
        return "write_off_notice", "STOP_ACTING"
    if row["nrp_deceased_on"] is not None and row["nrp_deceased_on"] <= d:
        return "manual_review", "NRP_DECEASED"
    if row["balance_pence"] < 6_500:
        return "write_off_silent", "BELOW_65"
    threshold = 100_000 if row["effective_date"] <= minus_years(d, 10) else 50_000
    if row["balance_pence"] <= threshold:
        return "write_off_notice", "BELOW_THRESHOLD"
    return "representation", "FINAL_CHANCE"


def policy_md_collectability(row: dict[str, Any], d: date) -> tuple[str, str]:
    if row["nrp_deceased_on"] is not None and row["nrp_deceased_on"] <= d:
        return "write_off_notice", "NRP_DECEASED"
    verified = row["nrp_address_verified_on"]
    # "no address confirmed on or after D minus 2 years" (a confirmation after D is a fact
    # the run cannot have known, so it is ignored like a payment after D)
    confirmed = verified is not None and minus_years(d, 2) <= verified <= d
    if not row["nrp_has_nino"] and not confirmed:
        return "write_off_notice", "UNTRACEABLE"
    expected_yield = row["balance_pence"] * RATES[row["nrp_employment"]]  # exact, unrounded
    if expected_yield - 30_000 >= 0:
        return "transfer", "COLLECTABLE"
    return "write_off_notice", "NOT_COST_EFFECTIVE"


@settings(PROPERTY, max_examples=200)
@given(data=st.data(), as_of=as_of_dates)
def test_default_rules_match_policy_md(data: st.DataObject, as_of: date) -> None:
    inputs = data.draw(debts_for(as_of))
    rules = default_rules()
    frame = compute_features(inputs, as_of, rules)
    decided = decide(rules, frame).select("outcome", "reason").rows()
    collected = collectability(rules, frame).select("outcome", "reason").rows()
    rows = list(inputs.iter_rows(named=True))
    assert decided == [policy_md(row, as_of) for row in rows]
    assert collected == [policy_md_collectability(row, as_of) for row in rows]
