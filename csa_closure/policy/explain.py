"""Why a debt got its outcome (``csa-closure explain``).

For one debt: the feature values as evaluated, each rule row tried in order (its condition
and its result: TRUE, FALSE or NULL, where NULL does not match), the row that matched, and
the parameter values its condition refers to. The collectability table is traced too, to
show what would happen if the parent with care asked for collection.

Results come from the plain-Python reference evaluator and are checked against the polars
evaluation of the same row; a disagreement is a bug and raises ``PolicyInternalError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from csa_closure.policy.errors import FeatureInputError, PolicyInternalError
from csa_closure.policy.evaluate import collectability_bound, decide_bound
from csa_closure.policy.features import FEATURES, FEATURES_SCHEMA, OUTPUT_COLUMNS, bind_features
from csa_closure.policy.ruleset import COLLECTABILITY, Rule, RuleSet

DATE_FACTS = (
    "effective_date",
    "liability_end_date",
    "last_positive_payment_on",
    "pwc_deceased_on",
    "nrp_deceased_on",
    "nrp_address_verified_on",
)


@dataclass(frozen=True)
class ParameterValue:
    name: str
    type: str
    value: int | bool  # rates in basis points
    display: str  # £65.00, 3 months, 0.60


@dataclass(frozen=True)
class RuleTrial:
    rule_id: str
    position: int
    description: str
    when: str  # canonical condition text
    result: bool | None  # None: the condition was NULL (does not match)
    matched: bool
    features: dict[str, Any]  # the features the condition reads, as evaluated
    parameters: tuple[ParameterValue, ...]  # the parameters it reads


@dataclass(frozen=True)
class TableTrace:
    table: str
    trials: tuple[RuleTrial, ...]  # the rows tried, in order, ending with the match
    rule_id: str
    outcome: str
    reason: str
    reason_description: str
    parameters: tuple[ParameterValue, ...]  # those the matching condition refers to


@dataclass(frozen=True)
class DebtExplanation:
    debt_id: int
    case_ref: str
    creditor: str
    as_of: date
    rule_set_name: str
    rule_set_hash: str
    features: dict[str, Any]  # every feature of the catalogue, as evaluated
    dates: dict[str, date | None]  # the dates the features were computed from
    eligibility: TableTrace
    collectability: TableTrace  # what would follow if the PWC asked for collection

    @property
    def outcome(self) -> str:
        return self.eligibility.outcome

    @property
    def reason(self) -> str:
        return self.eligibility.reason

    @property
    def rule_id(self) -> str:
        return self.eligibility.rule_id


def explain_debt(
    rule_set: RuleSet, features_row: pl.DataFrame | Mapping[str, Any]
) -> DebtExplanation:
    """Explain the decision for one debt: ``features_row`` is a one-row ``compute_features``
    frame (or that row as a mapping)."""
    frame = _one_row(features_row)
    bound = bind_features(frame, rule_set)
    row = bound.row(0, named=True)
    eligibility = _trace(rule_set, rule_set.eligibility(row["creditor"]).name, row)
    collect = _trace(rule_set, COLLECTABILITY, row)
    _agree(eligibility, decide_bound(rule_set, bound))
    _agree(collect, collectability_bound(rule_set, bound))
    return DebtExplanation(
        debt_id=row["debt_id"],
        case_ref=row["case_ref"],
        creditor=row["creditor"],
        as_of=row["as_of"],
        rule_set_name=rule_set.name,
        rule_set_hash=rule_set.hash,
        features={f.name: row[f.name] for f in FEATURES},
        dates={name: row[name] for name in DATE_FACTS},
        eligibility=eligibility,
        collectability=collect,
    )


def _one_row(features_row: pl.DataFrame | Mapping[str, Any]) -> pl.DataFrame:
    if isinstance(features_row, pl.DataFrame):
        frame = features_row
    else:
        missing = [c for c in OUTPUT_COLUMNS if c not in features_row]
        if missing:
            raise FeatureInputError("the features row lacks " + ", ".join(missing))
        frame = pl.DataFrame(
            [{c: features_row[c] for c in OUTPUT_COLUMNS}],
            schema=FEATURES_SCHEMA,
            orient="row",
        )
    if frame.height != 1:
        raise FeatureInputError(f"explain takes one debt's features, not {frame.height} rows")
    return frame


def _parameters(rule_set: RuleSet, rule: Rule) -> tuple[ParameterValue, ...]:
    out = []
    for name in rule.condition.parameters:
        p = rule_set.parameters[name]
        out.append(ParameterValue(name, p.type.value, p.value, p.display()))
    return tuple(out)


def _trace(rule_set: RuleSet, table: str, row: Mapping[str, Any]) -> TableTrace:
    params = rule_set.param_values()
    trials: list[RuleTrial] = []
    for rule in rule_set.tables[table].rules:
        result = rule.condition.evaluate(row, params)
        matched = result is True
        trials.append(
            RuleTrial(
                rule_id=rule.id,
                position=rule.position,
                description=rule.description,
                when=rule.condition.text,
                result=None if result is None else bool(result),
                matched=matched,
                features={name: row[name] for name in rule.condition.features},
                parameters=_parameters(rule_set, rule),
            )
        )
        if matched:
            return TableTrace(
                table=table,
                trials=tuple(trials),
                rule_id=rule.id,
                outcome=rule.outcome.value,
                reason=rule.reason,
                reason_description=rule_set.reasons[rule.reason].description,
                parameters=_parameters(rule_set, rule),
            )
    raise PolicyInternalError(f"no row of table {table} matched although it ends in a catch-all")


def _agree(trace: TableTrace, decided: pl.DataFrame) -> None:
    by_polars = decided["rule_id"][0]
    if by_polars != trace.rule_id:
        raise PolicyInternalError(
            f"table {trace.table}: the reference evaluation chose {trace.rule_id} but the "
            f"vectorised evaluation chose {by_polars}"
        )
