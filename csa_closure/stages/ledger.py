"""The write-off ledger: append-only, one entry per write-off, undone only by a mirror entry.

Each write-off entry records the debt, the amount (its opening balance, positive pence), the
reason, the rule and rule-set hash that decided it, the run, the actor and the as-of date. It
is written by ``resolve`` in the same transaction that moves the debt to ``written_off``.

A wrong write-off is reversed by :func:`reverse_entry`: a ``reversal`` entry with the negative
amount, ``reverses_entry_id`` pointing at the entry it undoes, and the reason; the debt goes
back to ``review`` for a caseworker, in the same transaction. Nothing is ever updated or
deleted (the table's triggers refuse it). A reversal is refused when the entry is itself a
reversal, when it was already reversed, or when the debt has since moved on from
``written_off``.

So at any moment, per system and creditor, the ledger's net total equals the pence of debts in
state ``written_off``: ``csa_closure.reconcile`` checks exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.codes import LedgerEntryType, ReviewReasonPrefix, coded
from csa_closure.domain.events import EventType
from csa_closure.domain.states import DebtState
from csa_closure.errors import UsageError
from csa_closure.serialise import JsonFields
from csa_closure.stages.checks import BookCheck, check_book
from csa_closure.store.debts import move_debts
from csa_closure.store.dialect import insert_frame
from csa_closure.store.rows import from_row
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import debts, ledger_entries

WRITE_OFF = LedgerEntryType.WRITE_OFF.value
REVERSAL = LedgerEntryType.REVERSAL.value
# A reason given by an operator: a code, so no free text (and no personal data) gets in.
REASON_CODE = re.compile(r"[A-Z][A-Z0-9_]{1,63}")

LEDGER_COLUMNS = (
    "entry_id",
    "debt_id",
    "case_ref",
    "source_system",
    "creditor",
    "entry_type",
    "amount_pence",
    "reason",
    "rule_id",
    "ruleset_hash",
    "run_id",
    "actor",
    "as_of",
    "recorded_at",
    "reverses_entry_id",
)


def check_reason_code(reason: str, what: str = "--reason") -> str:
    reason = reason.strip()
    if not REASON_CODE.fullmatch(reason):
        raise UsageError(
            f"{what} must be a code in capitals, digits and underscores, 2-64 characters "
            f"(e.g. LATE_COMPLAINT_UPHELD), not free text: it is kept in the ledger and events"
        )
    return reason


def write_off_entries(run: Run, written: pl.DataFrame) -> pl.DataFrame:
    """Ledger rows for debts being written off now. ``written`` has ``debt_id``,
    ``case_ref``, ``source_system``, ``creditor``, ``opening_pence``, ``reason``, ``rule_id``
    and ``ruleset_hash``."""
    return written.select(
        "debt_id",
        "case_ref",
        "source_system",
        "creditor",
        pl.lit(WRITE_OFF).alias("entry_type"),
        pl.col("opening_pence").alias("amount_pence"),
        "reason",
        "rule_id",
        "ruleset_hash",
        pl.lit(run.run_id, dtype=pl.Int64).alias("run_id"),
        pl.lit(run.ctx.actor).alias("actor"),
        pl.lit(run.ctx.as_of, dtype=pl.Date).alias("as_of"),
        pl.lit(run.ctx.clock()).alias("recorded_at"),
    )


def record_write_offs(conn: Connection, run: Run, written: pl.DataFrame) -> int:
    """Append the write-off entries for ``written`` inside the caller's transaction."""
    return insert_frame(conn, ledger_entries, write_off_entries(run, written))


# --- reversal -----------------------------------------------------------------------------


@dataclass
class ReversalResult(JsonFields):
    """JSON keys are the field names (see runbooks/05)."""

    run_id: int
    entry_id: int  # the write-off reversed
    reversal_entry_id: int
    debt_id: int
    case_ref: str
    creditor: str
    amount_pence: int  # negative: the mirror of the write-off
    reason: str
    debt_state: str
    book: BookCheck | None = None


def _refusal(conn: Connection, entry_id: int) -> tuple[Any, str | None]:
    """The entry and its debt, and why it cannot be reversed (None if it can)."""
    entry = conn.execute(
        select(ledger_entries).where(ledger_entries.c.entry_id == entry_id)
    ).first()
    if entry is None:
        return None, f"there is no ledger entry {entry_id}"
    if entry.entry_type != WRITE_OFF:
        return entry, (
            f"entry {entry_id} is a {entry.entry_type} (of entry {entry.reverses_entry_id}); "
            "only a write-off can be reversed"
        )
    reversal = conn.execute(
        select(ledger_entries.c.entry_id).where(ledger_entries.c.reverses_entry_id == entry_id)
    ).scalar()
    if reversal is not None:
        return entry, f"entry {entry_id} was already reversed by entry {reversal}"
    state = conn.execute(select(debts.c.state).where(debts.c.debt_id == entry.debt_id)).scalar()
    if state != DebtState.WRITTEN_OFF.value:
        return entry, (
            f"the debt of entry {entry_id} ({entry.case_ref} {entry.creditor}) has moved on "
            f"since it was written off: it is now {state}. Only a debt still written off can "
            "have its write-off reversed"
        )
    return entry, None


def reverse_entry(ctx: Context, entry_id: int, reason: str) -> ReversalResult:
    """Undo write-off ``entry_id`` by a mirror entry; the debt goes back to ``review``."""
    reason = check_reason_code(reason)
    with ctx.engine.connect() as conn:
        _, refusal = _refusal(conn, entry_id)
    if refusal:
        raise UsageError(f"reversal refused: {refusal}")
    parameters = {"entry_id": entry_id, "reason": reason}
    with stage_run(ctx, "ledger-reverse", parameters) as run, run.chunk() as conn:
        # checked again inside the transaction: another operator may have just reversed it
        entry, refusal = _refusal(conn, entry_id)
        if refusal:
            raise UsageError(f"reversal refused: {refusal}")
        reversal_id = int(
            conn.execute(
                insert(ledger_entries)
                .values(
                    debt_id=entry.debt_id,
                    case_ref=entry.case_ref,
                    source_system=entry.source_system,
                    creditor=entry.creditor,
                    entry_type=REVERSAL,
                    amount_pence=-int(entry.amount_pence),
                    reason=reason,
                    rule_id=entry.rule_id,
                    ruleset_hash=entry.ruleset_hash,
                    run_id=run.run_id,
                    actor=ctx.actor,
                    as_of=ctx.as_of,
                    recorded_at=ctx.clock(),
                    reverses_entry_id=entry_id,
                )
                .returning(ledger_entries.c.entry_id)
            ).scalar_one()
        )
        move = pl.DataFrame(
            {
                "debt_id": [int(entry.debt_id)],
                "case_ref": [entry.case_ref],
                "from_state": [DebtState.WRITTEN_OFF.value],
                "to_state": [DebtState.REVIEW.value],
                "review_reason": [coded(ReviewReasonPrefix.REVERSED, reason)],
                "detail": [
                    {
                        "entry_id": entry_id,
                        "reversal_entry_id": reversal_id,
                        "amount_pence": -int(entry.amount_pence),
                        "reason": reason,
                    }
                ],
            }
        )
        move_debts(
            conn,
            run,
            move,
            event_type=EventType.DEBT_WRITE_OFF_REVERSED,
            set_columns=["review_reason"],
        )
        book = check_book(conn)
        run.counts.update({"reversed": 1, "reversed_pence": int(entry.amount_pence)})
        return ReversalResult(
            run_id=run.run_id,
            entry_id=entry_id,
            reversal_entry_id=reversal_id,
            debt_id=int(entry.debt_id),
            case_ref=entry.case_ref,
            creditor=entry.creditor,
            amount_pence=-int(entry.amount_pence),
            reason=reason,
            debt_state=DebtState.REVIEW.value,
            book=book,
        )


# --- listing --------------------------------------------------------------------------------


@dataclass
class LedgerEntry:
    entry_id: int
    debt_id: int
    case_ref: str
    source_system: str
    creditor: str
    entry_type: str
    amount_pence: int
    reason: str
    rule_id: str | None
    ruleset_hash: str | None
    run_id: int | None
    actor: str
    as_of: date
    recorded_at: datetime
    reverses_entry_id: int | None
    reversed_by_entry_id: int | None


@dataclass
class LedgerTotals:
    """Per creditor and overall: what the ledger says now. JSON keys are the field names."""

    entries: int
    write_offs: int
    reversals: int
    written_off_pence: int  # gross: every write-off entry
    reversed_pence: int  # every reversal, as a positive amount
    net_pence: int
    by_creditor: dict[str, dict[str, int]]


def _filtered(case_ref: str | None, entry_type: str | None, as_of: date | None) -> list[Any]:
    clauses: list[Any] = []
    if case_ref:
        clauses.append(ledger_entries.c.case_ref == case_ref)
    if entry_type:
        clauses.append(ledger_entries.c.entry_type == entry_type)
    if as_of:
        clauses.append(ledger_entries.c.as_of == as_of)
    return clauses


def iter_entries(
    ctx: Context,
    *,
    case_ref: str | None = None,
    entry_type: str | None = None,
    as_of: date | None = None,
    limit: int | None = None,
    batch_size: int = 10_000,
) -> Iterator[LedgerEntry]:
    """Ledger entries in entry order, streamed (the full ledger can be large)."""
    reverser = ledger_entries.alias("reverser")
    statement = (
        select(ledger_entries, reverser.c.entry_id.label("reversed_by_entry_id"))
        .select_from(
            ledger_entries.outerjoin(
                reverser, reverser.c.reverses_entry_id == ledger_entries.c.entry_id
            )
        )
        .where(and_(True, *_filtered(case_ref, entry_type, as_of)))
        .order_by(ledger_entries.c.entry_id)
    )
    if limit is not None:
        statement = statement.limit(limit)
    with ctx.engine.connect() as conn:
        result = conn.execution_options(yield_per=batch_size).execute(statement)
        for row in result:
            yield from_row(LedgerEntry, row)


def ledger_totals(
    ctx: Context,
    *,
    case_ref: str | None = None,
    entry_type: str | None = None,
    as_of: date | None = None,
) -> LedgerTotals:
    amount = ledger_entries.c.amount_pence
    statement = (
        select(
            ledger_entries.c.creditor,
            ledger_entries.c.entry_type,
            func.count(),
            func.coalesce(func.sum(amount), 0),
        )
        .where(and_(True, *_filtered(case_ref, entry_type, as_of)))
        .group_by(ledger_entries.c.creditor, ledger_entries.c.entry_type)
    )
    by_creditor: dict[str, dict[str, int]] = {}
    with ctx.engine.connect() as conn:
        for creditor, kind, count, pence in conn.execute(statement):
            c = by_creditor.setdefault(
                creditor,
                {"write_offs": 0, "reversals": 0, "written_off_pence": 0, "reversed_pence": 0},
            )
            if kind == REVERSAL:
                c["reversals"] += int(count)
                c["reversed_pence"] += -int(pence)
            else:
                c["write_offs"] += int(count)
                c["written_off_pence"] += int(pence)
    for c in by_creditor.values():
        c["net_pence"] = c["written_off_pence"] - c["reversed_pence"]
    write_offs = sum(c["write_offs"] for c in by_creditor.values())
    reversals = sum(c["reversals"] for c in by_creditor.values())
    gross = sum(c["written_off_pence"] for c in by_creditor.values())
    reversed_ = sum(c["reversed_pence"] for c in by_creditor.values())
    return LedgerTotals(
        entries=write_offs + reversals,
        write_offs=write_offs,
        reversals=reversals,
        written_off_pence=gross,
        reversed_pence=reversed_,
        net_pence=gross - reversed_,
        by_creditor=dict(sorted(by_creditor.items())),
    )
