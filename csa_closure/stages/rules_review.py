"""Policy staff's questions about a rule set, answered over the pulled book (no writes).

``check_on_book`` runs the load-time checks' companion over every loaded debt (hits per rule,
rules never hit, shadowed rules, NULL conditions); ``simulate_on_book`` compares two rule
sets on every loaded debt. Both evaluate the whole population at once for the as-of date.
"""

from __future__ import annotations

import polars as pl
from sqlalchemy import func, select

from csa_closure.context import Context
from csa_closure.policy import (
    CheckReport,
    RuleSet,
    SimulationResult,
    check_rules,
    compute_features,
    load_rule_set,
    simulate,
)
from csa_closure.policy.stored import rule_set_from_canonical
from csa_closure.stages.facts import debt_facts
from csa_closure.store.schema import debts, rule_sets


def book_features(ctx: Context, rule_set: RuleSet) -> pl.DataFrame:
    """Features of every loaded debt for ``ctx.as_of``."""
    with ctx.engine.connect() as conn:
        facts = debt_facts(conn, ctx.as_of)
    return compute_features(facts, ctx.as_of, rule_set)


def check_on_book(ctx: Context, rule_set: RuleSet) -> CheckReport:
    return check_rules(rule_set, book_features(ctx, rule_set))


def rule_set_in_use(ctx: Context) -> RuleSet | None:
    """The rule set most debts were last decided by, rebuilt from the store; None if no debt
    has been decided yet."""
    with ctx.engine.connect() as conn:
        row = conn.execute(
            select(rule_sets.c.canonical)
            .join(debts, debts.c.ruleset_hash == rule_sets.c.ruleset_hash)
            .group_by(rule_sets.c.ruleset_hash, rule_sets.c.canonical)
            .order_by(func.count().desc(), rule_sets.c.ruleset_hash)
            .limit(1)
        ).first()
    return None if row is None else rule_set_from_canonical(row.canonical)


def simulate_on_book(ctx: Context, new: RuleSet, current: RuleSet | None) -> SimulationResult:
    """``new`` against ``current`` (default: the rule set in use, else the default rules)."""
    against = current or rule_set_in_use(ctx) or load_rule_set()
    return simulate(new, against, book_features(ctx, new))
