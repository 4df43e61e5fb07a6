"""Checking a rule set against a population of debts (``csa-closure rules check``).

Load-time validation has already refused anything malformed; this reports how each row
behaves on real debts: first hits per rule (the debts it decides), rules never hit, rules
shadowed (their condition is TRUE for some debts but earlier rows always take them), and
conditions that evaluated to NULL (which never match). The eligibility tables are checked
over the debts of their creditor; the collectability table over every debt given (what it
would decide if every parent with care asked for collection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from csa_closure.policy.errors import PolicyInternalError
from csa_closure.policy.evaluate import first_hit_index, rule_expr
from csa_closure.policy.features import bind_features
from csa_closure.policy.ruleset import COLLECTABILITY, PWC, SOS, TABLES, RuleSet


@dataclass(frozen=True)
class RuleCheck:
    rule_id: str
    table: str
    position: int
    outcome: str
    reason: str
    when: str  # canonical condition text
    first_hits: int  # debts this rule decides
    first_hit_pence: int
    true_count: int  # debts for which the condition is TRUE (first hit or not)
    null_count: int  # debts for which the condition is NULL
    null_reached: int  # of those, debts that reached this row and fell through on NULL
    shadowed: bool  # TRUE for some debts, yet never the first hit (not said of a catch-all)
    taken_by: dict[str, int] = field(default_factory=dict)  # if shadowed: earlier rule -> debts

    @property
    def never_hit(self) -> bool:
        return self.first_hits == 0


@dataclass(frozen=True)
class TableCheck:
    table: str
    debts: int
    pence: int
    rules: tuple[RuleCheck, ...]


@dataclass(frozen=True)
class CheckReport:
    rule_set_name: str
    rule_set_hash: str
    debts: int
    tables: tuple[TableCheck, ...]
    unused_parameters: tuple[str, ...]
    unused_reasons: tuple[str, ...]

    def rules(self) -> list[RuleCheck]:
        return [rule for table in self.tables for rule in table.rules]

    @property
    def never_hit(self) -> list[str]:
        return [r.rule_id for r in self.rules() if r.never_hit]

    @property
    def shadowed(self) -> list[str]:
        return [r.rule_id for r in self.rules() if r.shadowed]

    @property
    def null_conditions(self) -> dict[str, int]:
        """Rules whose condition evaluated to NULL for some debts, with the count."""
        return {r.rule_id: r.null_count for r in self.rules() if r.null_count}

    def warnings(self) -> list[str]:
        """What policy staff should look at; none of these stops the rule set being used."""
        notes: list[str] = []
        for table in self.tables:
            for r in table.rules:
                notes += _rule_warnings(r, table.debts)
        notes += [f"parameter {name} is not used by any rule" for name in self.unused_parameters]
        notes += [f"reason {code} is not given by any rule" for code in self.unused_reasons]
        return notes

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_set_name": self.rule_set_name,
            "rule_set_hash": self.rule_set_hash,
            "debts": self.debts,
            "tables": self.tables,
            "never_hit": self.never_hit,
            "shadowed": self.shadowed,
            "null_conditions": self.null_conditions,
            "unused_parameters": self.unused_parameters,
            "unused_reasons": self.unused_reasons,
            "warnings": self.warnings(),
        }


def _rule_warnings(r: RuleCheck, debts: int) -> list[str]:
    notes: list[str] = []
    if r.shadowed:
        takers = ", ".join(f"{k} ({v})" for k, v in r.taken_by.items())
        notes.append(
            f"{r.rule_id} is shadowed: its condition is true for {r.true_count} debts, but "
            f"earlier rows always take them: {takers}"
        )
    elif r.never_hit and debts and r.true_count == 0:
        notes.append(f"{r.rule_id} is never hit: its condition is true for none of {debts} debts")
    elif r.never_hit and debts:
        notes.append(
            f"{r.rule_id} (the catch-all) is never reached: earlier rows decide every debt"
        )
    if r.null_reached:
        notes.append(
            f"{r.rule_id}: the condition was NULL for {r.null_reached} debts that reached it, "
            "so they fell through to later rows"
        )
    return notes


def check_rules(rule_set: RuleSet, features: pl.DataFrame) -> CheckReport:
    """How every row of every table behaves on ``features`` (a ``compute_features`` frame)."""
    bound = bind_features(features, rule_set)
    populations = {
        PWC: pl.col("creditor") == PWC,
        SOS: pl.col("creditor") == SOS,
        COLLECTABILITY: pl.lit(True),
    }
    tables = tuple(
        _check_table(rule_set, name, bound.lazy().filter(populations[name])) for name in TABLES
    )
    return CheckReport(
        rule_set_name=rule_set.name,
        rule_set_hash=rule_set.hash,
        debts=bound.height,
        tables=tables,
        unused_parameters=tuple(rule_set.unused_parameters()),
        unused_reasons=tuple(rule_set.unused_reasons()),
    )


def _check_table(rule_set: RuleSet, table: str, frame: pl.LazyFrame) -> TableCheck:
    rules = rule_set.tables[table].rules
    params = rule_set.param_values()
    conds = [rule_expr(rule, params).alias(f"_c{i}") for i, rule in enumerate(rules)]
    evaluated = frame.select(
        pl.col("balance_pence"), *conds, first_hit_index(rules, params).alias("_hit")
    ).collect()
    hit = pl.col("_hit")
    aggs: list[pl.Expr] = [pl.len().alias("_debts"), pl.col("balance_pence").sum().alias("_pence")]
    for i in range(len(rules)):
        c = pl.col(f"_c{i}")
        aggs += [
            (hit == i).sum().alias(f"first{i}"),
            pl.col("balance_pence").filter(hit == i).sum().alias(f"pence{i}"),
            c.sum().alias(f"true{i}"),
            c.is_null().sum().alias(f"null{i}"),
            (c.is_null() & (hit > i)).sum().alias(f"reached{i}"),
        ]
    totals = evaluated.select(aggs).row(0, named=True)
    expected = frame.select(pl.len()).collect().item()
    if totals["_debts"] != expected:
        raise PolicyInternalError(
            f"table {table}: the evaluation gave {totals['_debts']} rows for {expected} debts"
        )
    checks = []
    for i, rule in enumerate(rules):
        first, true = int(totals[f"first{i}"] or 0), int(totals[f"true{i}"] or 0)
        shadowed = first == 0 and true > 0 and not rule.is_catch_all
        taken_by: dict[str, int] = {}
        if shadowed:
            takers = evaluated.filter(pl.col(f"_c{i}")).group_by("_hit").len().sort("_hit").rows()
            taken_by = {rules[j].id: int(n) for j, n in takers}
        checks.append(
            RuleCheck(
                rule_id=rule.id,
                table=table,
                position=rule.position,
                outcome=rule.outcome.value,
                reason=rule.reason,
                when=rule.condition.text,
                first_hits=first,
                first_hit_pence=int(totals[f"pence{i}"] or 0),
                true_count=true,
                null_count=int(totals[f"null{i}"] or 0),
                null_reached=int(totals[f"reached{i}"] or 0),
                shadowed=shadowed,
                taken_by=taken_by,
            )
        )
    return TableCheck(
        table=table,
        debts=int(totals["_debts"]),
        pence=int(totals["_pence"] or 0),
        rules=tuple(checks),
    )
