"""Deciding debts: first-hit evaluation of the rule tables, vectorised in polars.

Each row's condition is SQL evaluated by ``pl.sql_expr`` over the whole features frame; the
first row whose condition is TRUE gives the outcome. A condition that evaluates to NULL (for
example a comparison with a missing value) does not match: the next row is tried. Every table
ends in a catch-all row, so every debt gets exactly one outcome.

``reference_first_hit`` is the same decision for one debt in plain Python (three-valued
logic), used by explain and as the specification the polars evaluation is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from csa_closure.policy.errors import PolicyInternalError
from csa_closure.policy.features import bind_features
from csa_closure.policy.ruleset import COLLECTABILITY, PWC, SOS, Rule, RuleSet, RuleTable

DECISION_COLUMNS = ("debt_id", "outcome", "reason", "rule_id")
ParamValues = Mapping[str, int | bool]


def rule_expr(rule: Rule, params: ParamValues) -> pl.Expr:
    """The rule's condition as a polars expression (Boolean, NULL where SQL gives NULL)."""
    return rule.condition.expr(params)


def first_hit_index(rules: Sequence[Rule], params: ParamValues, offset: int = 0) -> pl.Expr:
    """The 0-based index (plus ``offset``) of the first rule whose condition is TRUE; NULL
    when none is (impossible for a table ending in a catch-all)."""
    if not rules:
        return pl.lit(None, dtype=pl.Int32)
    chain: Any = pl.when(rule_expr(rules[0], params)).then(pl.lit(offset, dtype=pl.Int32))
    for i, rule in enumerate(rules[1:], start=1):
        chain = chain.when(rule_expr(rule, params)).then(pl.lit(offset + i, dtype=pl.Int32))
    return chain.otherwise(pl.lit(None, dtype=pl.Int32))  # type: ignore[no-any-return]


def decide(rule_set: RuleSet, features: pl.DataFrame) -> pl.DataFrame:
    """The eligibility decision of every debt: columns ``debt_id``, ``outcome``, ``reason``,
    ``rule_id`` (strings), one row per debt in the order of ``features``. PWC debts are
    decided by the PWC table and SOS debts by the SOS table; the first hit wins."""
    bound = bind_features(features, rule_set)
    return decide_bound(rule_set, bound)


def collectability(rule_set: RuleSet, features: pl.DataFrame) -> pl.DataFrame:
    """The collectability decision of every debt given (normally the PWC debts whose parent
    with care asked for collection): same columns as ``decide``."""
    bound = bind_features(features, rule_set)
    return collectability_bound(rule_set, bound)


def decide_bound(rule_set: RuleSet, bound: pl.DataFrame) -> pl.DataFrame:
    """``decide`` for a frame already bound to ``rule_set``'s parameters."""
    rules = eligibility_rules(rule_set)
    return _decisions(bound, eligibility_index(rule_set), rules)


def collectability_bound(rule_set: RuleSet, bound: pl.DataFrame) -> pl.DataFrame:
    rules = list(rule_set.tables[COLLECTABILITY].rules)
    index = first_hit_index(rules, rule_set.param_values())
    return _decisions(bound, index, rules)


def eligibility_rules(rule_set: RuleSet) -> list[Rule]:
    """The PWC rules then the SOS rules: what ``eligibility_index`` indexes into."""
    return [*rule_set.tables[PWC].rules, *rule_set.tables[SOS].rules]


def eligibility_index(rule_set: RuleSet) -> pl.Expr:
    """Index into ``eligibility_rules`` of the rule that decides each debt."""
    params = rule_set.param_values()
    pwc = rule_set.tables[PWC].rules
    creditor = pl.col("creditor")
    return (
        pl.when(creditor == PWC)
        .then(first_hit_index(pwc, params))
        .when(creditor == SOS)
        .then(first_hit_index(rule_set.tables[SOS].rules, params, offset=len(pwc)))
        .otherwise(pl.lit(None, dtype=pl.Int32))
    )


def _decisions(bound: pl.DataFrame, index: pl.Expr, rules: Sequence[Rule]) -> pl.DataFrame:
    indexed = bound.lazy().select(pl.col("debt_id"), index.alias("_rule")).collect()
    if indexed.height != bound.height:
        raise PolicyInternalError(
            f"the evaluation gave {indexed.height} decisions for {bound.height} debts"
        )
    undecided = indexed["_rule"].null_count()
    if undecided:
        raise PolicyInternalError(
            f"{undecided} debts matched no rule although every table ends in a catch-all"
        )
    return indexed.select(pl.col("debt_id"), *rule_columns(pl.col("_rule"), rules))


def rule_columns(index: pl.Expr, rules: Sequence[Rule]) -> list[pl.Expr]:
    """``outcome``, ``reason`` and ``rule_id`` (strings) of the rule at ``index``."""
    positions = list(range(len(rules)))

    def pick(values: list[str], name: str) -> pl.Expr:
        return index.replace_strict(positions, values, return_dtype=pl.String).alias(name)

    return [
        pick([r.outcome.value for r in rules], "outcome"),
        pick([r.reason for r in rules], "reason"),
        pick([r.id for r in rules], "rule_id"),
    ]


def reference_first_hit(
    table: RuleTable | Sequence[Rule], row: Mapping[str, Any], params: ParamValues
) -> Rule | None:
    """The first rule whose condition is TRUE for ``row``, by the plain-Python reference
    evaluator (NULL and FALSE do not match)."""
    rules = table.rules if isinstance(table, RuleTable) else table
    for rule in rules:
        if rule.condition.evaluate(row, params) is True:
            return rule
    return None


def reference_decide(rule_set: RuleSet, row: Mapping[str, Any]) -> Rule | None:
    """``decide`` for one bound features row, in plain Python."""
    return reference_first_hit(rule_set.eligibility(row["creditor"]), row, rule_set.param_values())
