"""Caseworkers: the debts waiting for a person, and the decisions they record.

``list_review`` lists debts in ``review`` and debts flagged for a person (``needs_caseworker``
or ``needs_tracing``) that are still open, plus written-off debts flagged ``needs_caseworker``
(a response that was in time arrived after the write-off). It shows references, states,
reasons and amounts: no personal data.

``decide`` records a caseworker's decision exactly like a rule's: outcome, reason, rule id
``caseworker``, no rule-set hash (no rule set decided it), the run, the actor and the as-of
date; the debt moves to the outcome's state and its flags are cleared. It works on a debt in
``review``, or on a flagged debt that is still open and not in a CMS package: such a debt is
referred to review and decided in one transaction (two moves, two events). ``refer`` takes an
unflagged open debt into review (a complaint, a change of mind).

Guards, because a decision moves money:

- ``nil`` only for a debt whose balance is zero (otherwise money would leave the book with no
  ledger entry);
- ``representation`` only for a PWC debt that has never had a final-chance letter;
- ``manual_review`` is not a decision;
- a debt in a CMS package waits for the acknowledgement; a written-off debt has its ledger
  entry reversed first (``ledger reverse``), which brings it to review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

import polars as pl
from sqlalchemy import and_, func, or_, select, true
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.codes import (
    CASEWORKER_RULE,
    REVIEW_REASON_LENGTH,
    LedgerEntryType,
    ReviewReason,
)
from csa_closure.domain.events import EventType
from csa_closure.domain.states import (
    CLOSED_STATES,
    STATE_FOR_OUTCOME,
    TRANSITIONS,
    DebtState,
    Outcome,
)
from csa_closure.errors import UsageError
from csa_closure.serialise import JsonFields
from csa_closure.stages.checks import BookCheck, check_book
from csa_closure.stages.ledger import check_reason_code
from csa_closure.store.debts import move_debts
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import debts, ledger_entries, letters

# Open states a caseworker may take a debt from into review. A debt in a CMS package is the
# CMS's until it answers, and review itself needs no referral.
REFERABLE_STATES = frozenset(
    s
    for s in DebtState
    if (s, DebtState.REVIEW) in TRANSITIONS
    and s not in CLOSED_STATES
    and s not in (DebtState.TRANSFER_SENT, DebtState.REVIEW)
)
DECIDABLE_OUTCOMES = tuple(o for o in Outcome if o is not Outcome.MANUAL_REVIEW)


@dataclass
class ReviewItem:
    debt_id: int
    case_ref: str
    source_system: str
    creditor: str
    state: str
    outcome: str | None
    reason: str | None
    review_reason: str | None
    needs_caseworker: bool
    needs_tracing: bool
    opening_pence: int
    decided_as_of: date | None
    next_step: str = ""  # what a caseworker can do with it now (see ``_next_step``)


def _next_step(state: str) -> str:
    if state == DebtState.REVIEW.value:
        return "decide"
    if state == DebtState.TRANSFER_SENT.value:
        return "wait for the CMS acknowledgement"
    if state == DebtState.WRITTEN_OFF.value:
        return "reverse the write-off, then decide"
    return "decide (it is referred to review first)"


def _queue_clauses(state: str | None, review_reason: str | None, case_ref: str | None) -> list[Any]:
    flagged_open = and_(
        or_(debts.c.needs_caseworker == true(), debts.c.needs_tracing == true()),
        debts.c.state.notin_([s.value for s in CLOSED_STATES]),
    )
    flagged_written_off = and_(
        debts.c.needs_caseworker == true(), debts.c.state == DebtState.WRITTEN_OFF.value
    )
    clauses: list[Any] = [
        or_(debts.c.state == DebtState.REVIEW.value, flagged_open, flagged_written_off)
    ]
    if state:
        clauses.append(debts.c.state == state)
    if review_reason:
        clauses.append(debts.c.review_reason.like(f"{review_reason}%"))
    if case_ref:
        clauses.append(debts.c.case_ref == case_ref)
    return clauses


def list_review(
    ctx: Context,
    *,
    state: str | None = None,
    review_reason: str | None = None,
    case_ref: str | None = None,
    limit: int | None = None,
) -> list[ReviewItem]:
    """Debts waiting for a caseworker (see the module doc), in case order; the first
    ``limit`` of them when given."""
    columns = [debts.c[name] for name in ReviewItem.__dataclass_fields__ if name != "next_step"]
    statement = (
        select(*columns)
        .where(and_(*_queue_clauses(state, review_reason, case_ref)))
        .order_by(debts.c.case_ref, debts.c.creditor)
    )
    if limit is not None:
        statement = statement.limit(limit)
    with ctx.engine.connect() as conn:
        return [
            ReviewItem(**row._asdict(), next_step=_next_step(row.state))
            for row in conn.execute(statement)
        ]


@dataclass(frozen=True)
class QueueReason:
    """The debts in the queue for one review reason, in one state."""

    review_reason: str
    state: str
    debts: int
    pence: int


def summarise_review(
    ctx: Context,
    *,
    state: str | None = None,
    review_reason: str | None = None,
    case_ref: str | None = None,
) -> list[QueueReason]:
    """The queue (the same debts as :func:`list_review`) counted by review reason and state
    in one grouped query, most debts first."""
    reason = func.coalesce(debts.c.review_reason, "")
    statement = (
        select(
            reason, debts.c.state, func.count(), func.coalesce(func.sum(debts.c.opening_pence), 0)
        )
        .where(and_(*_queue_clauses(state, review_reason, case_ref)))
        .group_by(reason, debts.c.state)
    )
    with ctx.engine.connect() as conn:
        rows = [
            QueueReason(r[0] or "-", r[1], int(r[2]), int(r[3])) for r in conn.execute(statement)
        ]
    return sorted(rows, key=lambda r: (-r.debts, r.review_reason, r.state))


@dataclass
class DecisionResult(JsonFields):
    """A caseworker's act on one debt. JSON keys are the field names (see runbooks/05)."""

    run_id: int
    debt_id: int
    case_ref: str
    creditor: str
    from_state: str
    state: str
    referred: bool  # taken into review first, in the same transaction
    outcome: str | None
    reason: str
    rule_id: str | None
    book: BookCheck | None = None


def _debt(conn: Connection, case_ref: str, creditor: str) -> Any:
    row = conn.execute(
        select(debts).where(debts.c.case_ref == case_ref, debts.c.creditor == creditor)
    ).first()
    if row is None:
        raise _no_such_debt(case_ref, creditor)
    return row


def _no_such_debt(case_ref: str, creditor: str) -> UsageError:
    return UsageError(f"there is no {creditor} debt on case {case_ref}")


def _open_write_off(conn: Connection, debt_id: int) -> int | None:
    """The write-off entry of a written-off debt that has not been reversed."""
    reversed_ids = select(ledger_entries.c.reverses_entry_id).where(
        ledger_entries.c.reverses_entry_id.is_not(None)
    )
    return conn.execute(
        select(ledger_entries.c.entry_id)
        .where(
            ledger_entries.c.debt_id == debt_id,
            ledger_entries.c.entry_type == LedgerEntryType.WRITE_OFF.value,
            ledger_entries.c.entry_id.notin_(reversed_ids),
        )
        .order_by(ledger_entries.c.entry_id.desc())
    ).scalar()


def _why_not_decidable(conn: Connection, debt: Any) -> str | None:
    state = DebtState(debt.state)
    where = f"{debt.case_ref} {debt.creditor} is {state.value}"
    if state is DebtState.REVIEW:
        return None
    if state is DebtState.TRANSFER_SENT:
        return (
            f"{where}: it is in a CMS transfer package awaiting acknowledgement. Import the "
            "CMS acknowledgement first (`csa-closure transfer ack FILE`); a rejected debt "
            "comes back to review"
        )
    if state is DebtState.WRITTEN_OFF:
        entry = _open_write_off(conn, debt.debt_id)
        return (
            f"{where}: reverse its write-off first (`csa-closure ledger reverse {entry} "
            "--reason CODE`), which brings it to review"
        )
    if state in CLOSED_STATES:
        return f"{where}: it is closed and cannot be decided again"
    if not (debt.needs_caseworker or debt.needs_tracing):
        return (
            f"{where} and not flagged for a caseworker. Take it into review first: "
            f"`csa-closure review refer {debt.case_ref} --creditor {debt.creditor} --reason CODE`"
        )
    if state not in REFERABLE_STATES:
        return f"{where}: a caseworker cannot take it from there"
    return None


def _check_outcome(debt: Any, outcome: Outcome, had_final_chance: bool) -> None:
    if outcome is Outcome.MANUAL_REVIEW:
        raise UsageError("manual_review is not a decision: choose the outcome for the debt")
    if outcome is Outcome.NIL and int(debt.opening_pence) != 0:
        raise UsageError(
            f"nil is only for a debt with nothing owed; {debt.case_ref} {debt.creditor} has a "
            "balance. Write it off (write_off_silent / write_off_notice) or transfer it"
        )
    if outcome is Outcome.REPRESENTATION:
        if debt.creditor != "PWC":
            raise UsageError("representation (the final chance) is only for a PWC debt")
        if had_final_chance:
            raise UsageError(
                f"{debt.case_ref} PWC already had its final-chance letter; a debt gets one "
                "final chance. Decide its outcome instead"
            )


def _had_final_chance(conn: Connection, debt_ids: list[int]) -> set[int]:
    """Which of these debts already have a final-chance (representation) letter."""
    if not debt_ids:
        return set()
    return set(
        conn.execute(
            select(letters.c.debt_id).where(
                letters.c.debt_id.in_(debt_ids), letters.c.purpose == "representation"
            )
        ).scalars()
    )


@dataclass(frozen=True)
class _Move:
    """One debt's move, with the columns it sets and its event's detail."""

    debt_id: int
    case_ref: str
    from_state: str
    to_state: str
    event: EventType
    values: dict[str, Any]
    detail: dict[str, Any]


# the types of the columns a move may set that can be null in every row of a frame
_VALUE_TYPES = {
    "decided_as_of": pl.Date,
    "ruleset_hash": pl.String,
    "review_reason": pl.String,
    "decided_run_id": pl.Int64,
}


def _write_moves(conn: Connection, run: Run, moves: list[_Move]) -> None:
    """Write ``moves`` in bulk: in waves (every debt's first move, then every debt's second:
    a referral before the decision that follows it), one ``move_debts`` per event type."""
    waves: list[list[_Move]] = []
    seen: dict[int, int] = {}
    for move in moves:
        wave = seen.get(move.debt_id, 0)
        seen[move.debt_id] = wave + 1
        if wave == len(waves):
            waves.append([])
        waves[wave].append(move)
    for wave_moves in waves:
        for event in dict.fromkeys(m.event for m in wave_moves):
            _move_batch(conn, run, event, [m for m in wave_moves if m.event == event])


def _move_batch(conn: Connection, run: Run, event: EventType, batch: list[_Move]) -> None:
    frame = pl.DataFrame(
        [
            {
                "debt_id": m.debt_id,
                "case_ref": m.case_ref,
                "from_state": m.from_state,
                "to_state": m.to_state,
                **m.values,
                "detail": m.detail,
            }
            for m in batch
        ],
        schema_overrides={
            "debt_id": pl.Int64,
            **{k: v for k, v in _VALUE_TYPES.items() if k in batch[0].values},
        },
        infer_schema_length=None,
    )
    move_debts(conn, run, frame, event_type=event, set_columns=list(batch[0].values))


def _outcome(outcome: str) -> Outcome:
    try:
        return Outcome(outcome)
    except ValueError:
        raise UsageError(
            f"unknown outcome {outcome!r}; choose one of {', '.join(DECIDABLE_OUTCOMES)}"
        ) from None


def _plan_decision(
    conn: Connection, run: Run, debt: Any, chosen: Outcome, reason: str, had_final_chance: bool
) -> list[_Move]:
    """Check one caseworker decision and return its moves (a referral to review first, for
    a flagged debt not yet there; then the decision). Nothing is written."""
    ctx = run.ctx
    refusal = _why_not_decidable(conn, debt)
    if refusal:
        raise UsageError(f"decision refused: {refusal}")
    _check_outcome(debt, chosen, had_final_chance)
    moves = []
    if debt.state != DebtState.REVIEW.value:
        moves.append(
            _Move(
                int(debt.debt_id),
                debt.case_ref,
                debt.state,
                DebtState.REVIEW.value,
                EventType.DEBT_REFERRED,
                {"review_reason": debt.review_reason or ReviewReason.CASEWORKER_REFERRAL},
                {"reason": debt.review_reason or ReviewReason.CASEWORKER_REFERRAL, "flagged": True},
            )
        )
    moves.append(
        _Move(
            int(debt.debt_id),
            debt.case_ref,
            DebtState.REVIEW.value,
            STATE_FOR_OUTCOME[chosen].value,
            EventType.DEBT_REVIEWED,
            {
                "outcome": chosen.value,
                "reason": reason,
                "rule_id": CASEWORKER_RULE,
                "ruleset_hash": None,
                "decided_run_id": run.run_id,
                "decided_by": ctx.actor,
                "decided_as_of": ctx.as_of,
                "needs_caseworker": False,
                "needs_tracing": False,
                "review_reason": None,
            },
            {
                "outcome": chosen.value,
                "reason": reason,
                "rule_id": CASEWORKER_RULE,
                "previous_outcome": debt.outcome,
                "previous_reason": debt.reason,
                "review_reason": debt.review_reason,
            },
        )
    )
    return moves


def _decided(debt: Any, moves: list[_Move]) -> SimpleNamespace:
    """The debt as it stands after ``moves`` (for a later row on the same debt)."""
    after = SimpleNamespace(**debt._asdict()) if hasattr(debt, "_asdict") else debt
    after.state = moves[-1].to_state
    for name, value in moves[-1].values.items():
        setattr(after, name, value)
    return after


def decide(ctx: Context, case_ref: str, creditor: str, outcome: str, reason: str) -> DecisionResult:
    """Record a caseworker's decision on the ``creditor`` debt of ``case_ref``."""
    chosen = _outcome(outcome)
    reason = check_reason_code(reason)[:32]
    parameters = {"case_ref": case_ref, "creditor": creditor, "outcome": outcome, "reason": reason}
    with stage_run(ctx, "review", parameters) as run, run.chunk() as conn:
        debt = _debt(conn, case_ref, creditor)
        had_final_chance = bool(_had_final_chance(conn, [int(debt.debt_id)]))
        moves = _plan_decision(conn, run, debt, chosen, reason, had_final_chance)
        return _act_on_one(
            conn,
            run,
            debt,
            moves,
            count="decided",
            referred=len(moves) == 2,
            outcome=chosen.value,
            reason=reason,
            rule_id=CASEWORKER_RULE,
        )


def _act_on_one(
    conn: Connection,
    run: Run,
    debt: Any,
    moves: list[_Move],
    *,
    count: str,
    referred: bool,
    outcome: str | None,
    reason: str,
    rule_id: str | None,
) -> DecisionResult:
    """Write a caseworker's moves of one ``debt``, check the book, and say what was done."""
    _write_moves(conn, run, moves)
    book = check_book(conn)
    run.counts.update({count: 1})
    return DecisionResult(
        run_id=run.run_id,
        debt_id=int(debt.debt_id),
        case_ref=debt.case_ref,
        creditor=debt.creditor,
        from_state=debt.state,
        state=moves[-1].to_state,
        referred=referred,
        outcome=outcome,
        reason=reason,
        rule_id=rule_id,
        book=book,
    )


# the header of a decisions file (``review decide-file``)
DECISIONS_FILE_COLUMNS: tuple[str, ...] = ("case_ref", "creditor", "outcome", "reason")


@dataclass(frozen=True)
class CaseworkerDecision:
    """One row of a decisions file (``DECISIONS_FILE_COLUMNS``)."""

    case_ref: str
    creditor: str
    outcome: str
    reason: str


@dataclass
class DecisionsResult:
    """A list of caseworker decisions recorded in one run. Every row is either decided or
    refused with the reason; the two counts add up to the rows given."""

    run_id: int
    rows: int
    decided: int = 0
    refused: list[dict[str, Any]] | None = None
    by_outcome: dict[str, int] | None = None
    book: BookCheck | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "rows": self.rows,
            "decided": self.decided,
            "refused": self.refused or [],
            "by_outcome": self.by_outcome or {},
            "book": self.book.to_json() if self.book else None,
        }


def _debts_of(conn: Connection, decisions: list[CaseworkerDecision]) -> dict[tuple[str, str], Any]:
    """The debts these decisions name, by (case reference, creditor), in one read."""
    refs = sorted({d.case_ref for d in decisions})
    rows = conn.execute(select(debts).where(debts.c.case_ref.in_(refs))).all() if refs else []
    return {(row.case_ref, row.creditor): row for row in rows}


def decide_many(
    ctx: Context, decisions: list[CaseworkerDecision], *, chunk_size: int = 2_000
) -> DecisionsResult:
    """Record many caseworker decisions (a day's queue, or a file from case management) in
    one run: the same checks as ``decide`` for each, a refusal for one row never stops the
    others, and the books are checked once at the end (not after every decision).

    Each chunk of rows is one transaction: its debts are read at once, every row is checked
    in order against the debts as the rows before it left them (a second row for a debt
    already decided here is refused, as it would be one at a time), and the moves are
    written in bulk."""
    with stage_run(ctx, "review", {"decisions": len(decisions)}) as run:
        result = DecisionsResult(run_id=run.run_id, rows=len(decisions), refused=[], by_outcome={})
        for start in range(0, len(decisions), chunk_size):
            chunk = decisions[start : start + chunk_size]
            with run.chunk() as conn:
                known = _debts_of(conn, chunk)
                had_final_chance = _had_final_chance(
                    conn, sorted({int(d.debt_id) for d in known.values()})
                )
                moves: list[_Move] = []
                for row, decision in enumerate(chunk, start + 1):
                    key = (decision.case_ref, decision.creditor)
                    try:
                        chosen = _outcome(decision.outcome)
                        reason = check_reason_code(decision.reason)[:32]
                        if key not in known:
                            raise _no_such_debt(*key)
                        debt = known[key]
                        planned = _plan_decision(
                            conn, run, debt, chosen, reason, int(debt.debt_id) in had_final_chance
                        )
                    except UsageError as refusal:
                        assert result.refused is not None
                        result.refused.append(
                            {
                                "row": row,
                                "case_ref": decision.case_ref,
                                "creditor": decision.creditor,
                                "reason": str(refusal),
                            }
                        )
                        continue
                    moves.extend(planned)
                    known[key] = _decided(debt, planned)
                    result.decided += 1
                    assert result.by_outcome is not None
                    result.by_outcome[chosen.value] = result.by_outcome.get(chosen.value, 0) + 1
                _write_moves(conn, run, moves)
        with run.chunk() as conn:
            result.book = check_book(conn)
        run.counts.update({"decided": result.decided, "refused": len(result.refused or [])})
    return result


def refer(ctx: Context, case_ref: str, creditor: str, reason: str) -> DecisionResult:
    """Take an open debt into review for a caseworker, with a reason code."""
    reason = check_reason_code(reason)
    parameters = {"case_ref": case_ref, "creditor": creditor, "reason": reason}
    with stage_run(ctx, "review", parameters) as run, run.chunk() as conn:
        debt = _debt(conn, case_ref, creditor)
        state = DebtState(debt.state)
        if state not in REFERABLE_STATES:
            why = _why_not_decidable(conn, debt) if state is not DebtState.REVIEW else None
            raise UsageError(
                "referral refused: "
                + (why or f"{case_ref} {creditor} is {state.value}: it is already in review")
            )
        move = _Move(
            int(debt.debt_id),
            debt.case_ref,
            state.value,
            DebtState.REVIEW.value,
            EventType.DEBT_REFERRED,
            {"review_reason": reason[:REVIEW_REASON_LENGTH]},
            {"reason": reason},
        )
        return _act_on_one(
            conn,
            run,
            debt,
            [move],
            count="referred",
            referred=True,
            outcome=debt.outcome,
            reason=reason,
            rule_id=debt.rule_id,
        )


__all__ = [
    "CASEWORKER_RULE",
    "DECIDABLE_OUTCOMES",
    "CaseworkerDecision",
    "DecisionResult",
    "DecisionsResult",
    "ReviewItem",
    "decide",
    "decide_many",
    "list_review",
    "refer",
]
