"""Outcomes by rule and reason, per rule-set hash: what the rules decided, debts and pounds.

Two views, both aggregated in SQL:

- **current**: each debt's decision as it stands now (``debts.outcome``, ``reason``,
  ``rule_id``, ``ruleset_hash``), with debts and pence, and how many of them are closed.
  Caseworker decisions carry the caseworker rule id and no rule-set hash. Debts not yet
  decided are one row, outcome empty.
- **history**: every decision ever made, from the event log: the events in
  ``domain.events.DECISION_EVENTS``, whose ``detail`` records the ``outcome``, ``reason``,
  ``rule_id`` and ``ruleset_hash`` of the decision. Each is counted as ``current`` when it is
  the latest decision event of its debt, and ``superseded`` when a re-decision, a
  collectability decision or a caseworker replaced it, so a rule change's effect stays visible
  after it was undone.
  Moves that follow from the final chance (a window expiring, a parent declining) record their
  outcome on the debt, not in the event's detail: they appear in the current view, with their
  reason.

Pence are the debts' loaded balances (``opening_pence``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import DECISION_DETAIL_KEYS
from csa_closure.domain.states import CLOSED_STATES
from csa_closure.store.events import decision_detail, is_decision_event
from csa_closure.store.schema import debts, events


@dataclass(frozen=True)
class RuleOutcome:
    ruleset_hash: str | None
    rule_id: str | None
    outcome: str | None
    reason: str | None
    debts: int
    pence: int
    closed_debts: int
    closed_pence: int


@dataclass(frozen=True)
class DecisionHistory:
    ruleset_hash: str | None
    rule_id: str | None
    outcome: str | None
    reason: str | None
    decisions: int
    current: int
    superseded: int
    pence: int


@dataclass
class RulesReport:
    current: list[RuleOutcome]
    history: list[DecisionHistory]

    def rulesets(self) -> list[str | None]:
        return sorted({r.ruleset_hash for r in self.current}, key=lambda h: (h is None, h or ""))

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "history": self.history,
            "superseded_decisions": sum(h.superseded for h in self.history),
        }


def _sort_key(*values: str | None) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, v or "") for v in values)


def _current(conn: Connection, ruleset_hash: str | None) -> list[RuleOutcome]:
    closed = debts.c.state.in_(sorted(s.value for s in CLOSED_STATES))
    keys = (debts.c.ruleset_hash, debts.c.rule_id, debts.c.outcome, debts.c.reason)
    statement = select(
        *keys,
        func.count(),
        func.coalesce(func.sum(debts.c.opening_pence), 0),
        func.sum(case((closed, 1), else_=0)),
        func.sum(case((closed, debts.c.opening_pence), else_=0)),
    ).group_by(*keys)
    if ruleset_hash:
        statement = statement.where(debts.c.ruleset_hash == ruleset_hash)
    rows = [
        RuleOutcome(r[0], r[1], r[2], r[3], *(int(v or 0) for v in r[4:]))
        for r in conn.execute(statement)
    ]
    return sorted(rows, key=lambda r: _sort_key(r.ruleset_hash, r.rule_id, r.outcome, r.reason))


def _history(conn: Connection, ruleset_hash: str | None) -> list[DecisionHistory]:
    latest = func.max(events.c.event_id).over(partition_by=events.c.debt_id)
    decisions = (
        select(
            events.c.debt_id,
            *(decision_detail(k).label(k) for k in DECISION_DETAIL_KEYS),
            case((events.c.event_id == latest, 1), else_=0).label("is_current"),
        )
        .where(is_decision_event())
        .subquery()
    )
    keys = [decisions.c[k] for k in DECISION_DETAIL_KEYS]
    statement = (
        select(
            *keys,
            func.count(),
            func.sum(decisions.c.is_current),
            func.coalesce(func.sum(debts.c.opening_pence), 0),
        )
        .select_from(decisions.join(debts, debts.c.debt_id == decisions.c.debt_id))
        .group_by(*keys)
    )
    if ruleset_hash:
        statement = statement.where(decisions.c.ruleset_hash == ruleset_hash)
    rows = []
    for r in conn.execute(statement):
        decisions_made, current = int(r[4]), int(r[5] or 0)
        rows.append(
            DecisionHistory(
                ruleset_hash=r[0],
                rule_id=r[1],
                outcome=r[2],
                reason=r[3],
                decisions=decisions_made,
                current=current,
                superseded=decisions_made - current,
                pence=int(r[6]),
            )
        )
    return sorted(rows, key=lambda h: _sort_key(h.ruleset_hash, h.rule_id, h.outcome, h.reason))


def rules_report(ctx: Context, *, ruleset_hash: str | None = None) -> RulesReport:
    """Outcomes by rule and reason (now, and every decision ever made), per rule-set hash."""
    with ctx.engine.connect() as conn:
        return RulesReport(
            current=_current(conn, ruleset_hash), history=_history(conn, ruleset_hash)
        )
