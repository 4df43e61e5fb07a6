"""Explain a case: its facts, why each debt got its outcome, and everything that happened.

Each debt is re-evaluated with the rule set that decided it (rebuilt from ``rule_sets``) for
the as-of date it was decided on, and the rule rows are traced in order to the one that
matched. If the re-evaluation no longer gives the recorded decision (the facts changed at
source since, or a caseworker decided), that is said plainly.

Personal data (names, dates of birth, NINOs, addresses) is included only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.policy import DebtExplanation, RuleSet, compute_features, explain_debt
from csa_closure.policy import load_rule_set as load_approved_rules
from csa_closure.policy.stored import rule_set_from_canonical
from csa_closure.stages.facts import debt_facts
from csa_closure.store.schema import (
    PERSONAL_DATA_COLUMNS,
    cases,
    debts,
    events,
    ledger_entries,
    letters,
    parties,
    quarantine,
    responses,
    rule_sets,
)


@dataclass
class DebtStory:
    debt_id: int
    creditor: str
    opening_pence: int
    source_pence: int
    state: str
    outcome: str | None
    reason: str | None
    rule_id: str | None
    ruleset_hash: str | None
    decided_as_of: date | None
    decided_by: str | None
    response_deadline: date | None
    response: str | None
    needs_tracing: bool
    needs_caseworker: bool
    review_reason: str | None
    evaluated_with: str
    evaluated_as_of: date
    reproduces_decision: bool | None
    explanation: DebtExplanation


@dataclass
class CaseStory:
    case_ref: str
    source_system: str | None
    quarantined: bool
    quarantine_reasons: list[dict[str, Any]]
    facts: dict[str, Any] | None
    debts: list[DebtStory]
    events: list[dict[str, Any]]
    letters: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    responses: list[dict[str, Any]]
    personal_data: dict[str, dict[str, Any]] | None = field(default=None)


def _rows(conn: Connection, statement: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(statement)]


def _stored_rule_set(
    conn: Connection, ruleset_hash: str, cache: dict[str, RuleSet | None]
) -> RuleSet | None:
    """The stored rule set with this hash, or None if none was stored under it."""
    if ruleset_hash not in cache:
        canonical = conn.execute(
            select(rule_sets.c.canonical).where(rule_sets.c.ruleset_hash == ruleset_hash)
        ).scalar_one_or_none()
        cache[ruleset_hash] = None if canonical is None else rule_set_from_canonical(canonical)
    return cache[ruleset_hash]


def _debt_story(
    conn: Connection, ctx: Context, debt: dict[str, Any], cache: dict[str, RuleSet | None]
) -> DebtStory:
    stored = _stored_rule_set(conn, debt["ruleset_hash"], cache) if debt["ruleset_hash"] else None
    if stored is not None:
        rule_set = stored
        evaluated_with = f"the rule set that decided it ({rule_set.name} {rule_set.hash[:12]})"
    else:
        approved = cache.get("approved") or load_approved_rules()
        cache["approved"] = rule_set = approved
        why = "not decided by rules" if debt["rule_id"] else "not decided yet"
        evaluated_with = f"the approved rules ({rule_set.name} {rule_set.hash[:12]}); {why}"
    as_of = debt["decided_as_of"] or ctx.as_of
    facts = debt_facts(conn, as_of, case_refs=[debt["case_ref"]])
    row = compute_features(facts.filter(facts["debt_id"] == debt["debt_id"]), as_of, rule_set)
    explanation = explain_debt(rule_set, row)
    reproduces = None
    if debt["rule_id"]:
        traced = {explanation.eligibility.rule_id, explanation.collectability.rule_id}
        reproduces = debt["rule_id"] in traced if stored is not None else None
    return DebtStory(
        debt_id=debt["debt_id"],
        creditor=debt["creditor"],
        opening_pence=debt["opening_pence"],
        source_pence=debt["source_pence"],
        state=debt["state"],
        outcome=debt["outcome"],
        reason=debt["reason"],
        rule_id=debt["rule_id"],
        ruleset_hash=debt["ruleset_hash"],
        decided_as_of=debt["decided_as_of"],
        decided_by=debt["decided_by"],
        response_deadline=debt["response_deadline"],
        response=debt["response"],
        needs_tracing=debt["needs_tracing"],
        needs_caseworker=debt["needs_caseworker"],
        review_reason=debt["review_reason"],
        evaluated_with=evaluated_with,
        evaluated_as_of=as_of,
        reproduces_decision=reproduces,
        explanation=explanation,
    )


def _case_facts(case: dict[str, Any], pwc: dict[str, Any], nrp: dict[str, Any]) -> dict[str, Any]:
    def parent(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "party_ref": p["party_ref"],
            "deceased_on": p["deceased_on"],
            "employment": p["employment"],
            "has_nino": bool(p["nino"]),
            "address_verified_on": p["address_verified_on"],
        }

    return {
        "scheme": case["scheme"],
        "effective_date": case["effective_date"],
        "liability_end_date": case["liability_end_date"],
        "dv_marker": case["dv_marker"],
        "stop_acting": case["stop_acting"],
        "enforcement_code": case["enforcement_code"],
        "pwc": parent(pwc),
        "nrp": parent(nrp),
    }


def explain_case(ctx: Context, case_ref: str, *, personal_data: bool = False) -> CaseStory:
    """Everything the store knows about ``case_ref``; refuses an unknown reference."""
    with ctx.engine.connect() as conn:
        case = conn.execute(select(cases).where(cases.c.case_ref == case_ref)).first()
        held = _rows(conn, select(quarantine).where(quarantine.c.case_ref == case_ref))
        if case is None and not held:
            raise UsageError(f"no case {case_ref} in the working store or its quarantine")
        history = _rows(
            conn,
            select(
                events.c.event_id,
                events.c.occurred_at,
                events.c.as_of,
                events.c.actor,
                events.c.run_id,
                events.c.event_type,
                events.c.debt_id,
                events.c.entity,
                events.c.from_state,
                events.c.to_state,
                events.c.detail,
            )
            .where(events.c.case_ref == case_ref)
            .order_by(events.c.event_id),
        )
        current_holds = [h for h in held if h["status"] == "held"]
        reasons = [r for h in current_holds for r in h["reasons"]]
        if case is None:
            return CaseStory(
                case_ref=case_ref,
                source_system=held[0]["source_system"],
                quarantined=bool(current_holds),
                quarantine_reasons=reasons,
                facts=None,
                debts=[],
                events=history,
                letters=[],
                ledger=[],
                responses=[],
            )
        case_row = dict(case._mapping)
        people = {
            p["party_ref"]: p
            for p in _rows(
                conn,
                select(parties).where(
                    parties.c.party_ref.in_([case_row["pwc_party_ref"], case_row["nrp_party_ref"]])
                ),
            )
        }
        pwc, nrp = people[case_row["pwc_party_ref"]], people[case_row["nrp_party_ref"]]
        cache: dict[str, RuleSet | None] = {}
        debt_rows = _rows(
            conn, select(debts).where(debts.c.case_ref == case_ref).order_by(debts.c.creditor)
        )
        stories = [_debt_story(conn, ctx, d, cache) for d in debt_rows]
        letter_rows = _rows(
            conn,
            select(
                letters.c.letter_id,
                letters.c.reference,
                letters.c.debt_id,
                letters.c.purpose,
                letters.c.recipient,
                letters.c.status,
                letters.c.held_reason,
                letters.c.failure_reason,
                letters.c.batch_id,
                letters.c.letter_date,
            )
            .where(letters.c.case_ref == case_ref)
            .order_by(letters.c.letter_id),
        )
        ledger_rows = _rows(
            conn,
            select(ledger_entries)
            .where(ledger_entries.c.case_ref == case_ref)
            .order_by(ledger_entries.c.entry_id),
        )
        response_rows = _rows(
            conn,
            select(
                responses.c.document_id,
                responses.c.party,
                responses.c.response,
                responses.c.received_on,
                responses.c.channel,
                responses.c.recorded_by,
            )
            .where(responses.c.case_ref == case_ref)
            .order_by(responses.c.response_id),
        )
    return CaseStory(
        case_ref=case_ref,
        source_system=case_row["source_system"],
        quarantined=bool(current_holds),
        quarantine_reasons=reasons,
        facts=_case_facts(case_row, pwc, nrp),
        debts=stories,
        events=history,
        letters=letter_rows,
        ledger=ledger_rows,
        responses=response_rows,
        personal_data=(
            {
                "pwc": {k: pwc[k] for k in PERSONAL_DATA_COLUMNS},
                "nrp": {k: nrp[k] for k in PERSONAL_DATA_COLUMNS},
            }
            if personal_data
            else None
        ),
    )
