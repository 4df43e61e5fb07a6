"""Which letters are due, for a whole population of debts at once (polars, no per-row Python).

:func:`letters_due` takes one row per debt with its state and the facts about both parents that
decide whether a letter goes (their party reference and date of death: nothing else about
them), and returns one row per letter due. The rules, as of the run's date D:

==========================  =========  ===========================================================
letter                      to         when
==========================  =========  ===========================================================
representation              PWC        PWC debt ``awaiting_letter`` with outcome ``representation``
reminder                    PWC        PWC debt ``awaiting_response``, no response, reminder date
                                       reached (``reminder_due <= D``) and the deadline not
                                       (``D < response_deadline``)
collection_requested        NRP        ``collect_requested`` with response ``COLLECT``
write_off_notice            PWC, NRP   ``write_off_pending`` unless the outcome is
                                       ``write_off_silent``; the PWC only for a PWC debt
transfer_notice             PWC, NRP   ``transferred`` (acknowledged by the CMS, so the notice is
                                       true when it is read); the PWC only for a PWC debt
==========================  =========  ===========================================================

Never to a parent deceased on or before D, never without the parent's party reference, and
never for ``write_off_silent`` or ``nil``. The Secretary of State's debts are not the person
with care's money, so the PWC gets no letter about them.

Pass the letters that already exist as ``existing`` (debt_id, purpose, recipient) and they are
left out, so building twice never makes a second letter for the same debt and purpose.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

import polars as pl

from csa_closure.domain.notice import alive_on, owed_write_off_notice
from csa_closure.domain.states import Creditor, DebtState, Outcome
from csa_closure.letters.kinds import LetterKind, LetterPurpose, Recipient

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

DUE_INPUT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "debt_id": pl.Int64,
    "case_ref": pl.String,
    "creditor": pl.String,  # PWC | SOS
    "state": pl.String,
    "outcome": pl.String,
    "response": pl.String,  # COLLECT | DO_NOT_COLLECT | null
    "reminder_due": pl.Date,
    "response_deadline": pl.Date,
    "pwc_party_ref": pl.String,
    "nrp_party_ref": pl.String,
    "pwc_deceased_on": pl.Date,
    "nrp_deceased_on": pl.Date,
}
DUE_OUTPUT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "debt_id": pl.Int64,
    "case_ref": pl.String,
    "purpose": pl.String,
    "recipient": pl.String,
    "party_ref": pl.String,
}

TRANSFER_NOTICE_STATES = (DebtState.TRANSFERRED.value,)

# The debt states each kind of letter can be due in: the rules below ask for exactly these
# (and more), so a debt in none of them, or holding its kind's letter already, is never due one.
# ``notify build`` narrows what it reads from the store with this (stages/letters_outbox/build.py).
DUE_STATES: dict[LetterKind, tuple[str, ...]] = {
    LetterKind(LetterPurpose.REPRESENTATION, Recipient.PWC): (DebtState.AWAITING_LETTER.value,),
    LetterKind(LetterPurpose.REMINDER, Recipient.PWC): (DebtState.AWAITING_RESPONSE.value,),
    LetterKind(LetterPurpose.COLLECTION_REQUESTED, Recipient.NRP): (
        DebtState.COLLECT_REQUESTED.value,
    ),
    LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.PWC): (DebtState.WRITE_OFF_PENDING.value,),
    LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.NRP): (DebtState.WRITE_OFF_PENDING.value,),
    LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.PWC): TRANSFER_NOTICE_STATES,
    LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.NRP): TRANSFER_NOTICE_STATES,
}

# A kind's letter is never due before the date in this debt column (the rules below apply it;
# ``notify build`` asks the store for it too).
DUE_NOT_BEFORE: dict[LetterKind, str] = {
    LetterKind(LetterPurpose.REMINDER, Recipient.PWC): "reminder_due",
}

# A kind's letter is only ever about a debt owed to this creditor: the Secretary of State's
# debts are not the person with care's money, so no letter to the PWC is about one (applied by
# the rules below, asked of the store by ``notify build``).
DUE_CREDITOR: dict[LetterKind, str] = {
    kind: Creditor.PWC.value for kind in DUE_STATES if kind.recipient is Recipient.PWC
}


def _rules(as_of: date) -> list[tuple[LetterKind, pl.Expr]]:
    """Each kind's condition, in the order letters of one debt are listed; each begins with
    the kind's :data:`DUE_STATES`, its :data:`DUE_NOT_BEFORE` date and its
    :data:`DUE_CREDITOR`, where it has them."""
    conditions: dict[LetterKind, pl.Expr] = {
        LetterKind(LetterPurpose.REPRESENTATION, Recipient.PWC): pl.col("outcome")
        == Outcome.REPRESENTATION.value,
        LetterKind(LetterPurpose.REMINDER, Recipient.PWC): pl.col("response").is_null()
        & (pl.lit(as_of) < pl.col("response_deadline")),
        LetterKind(LetterPurpose.COLLECTION_REQUESTED, Recipient.NRP): pl.col("response")
        == "COLLECT",
        # the rule resolve waits on: a notice to each parent owed one (domain/notice.py)
        LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.PWC): owed_write_off_notice(
            Recipient.PWC.value, as_of
        ),
        LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.NRP): owed_write_off_notice(
            Recipient.NRP.value, as_of
        ),
        LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.PWC): pl.lit(True),
        LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.NRP): pl.lit(True),
    }
    rules = []
    for kind, states in DUE_STATES.items():
        condition = pl.col("state").is_in(states)
        if kind in DUE_NOT_BEFORE:
            condition = condition & (pl.col(DUE_NOT_BEFORE[kind]) <= pl.lit(as_of))
        if kind in DUE_CREDITOR:
            condition = condition & (pl.col("creditor") == DUE_CREDITOR[kind])
        rules.append((kind, condition & conditions[kind]))
    return rules


def _alive(prefix: str, as_of: date) -> pl.Expr:
    return pl.col(f"{prefix}_party_ref").is_not_null() & alive_on(prefix, as_of)


def letters_due(debts: Frame, as_of: date, *, existing: Frame | None = None) -> Frame:
    """One row per letter due on ``as_of``: debt_id, case_ref, purpose, recipient, party_ref.

    ``debts`` has the columns of :data:`DUE_INPUT_SCHEMA`; a DataFrame gives a DataFrame and a
    LazyFrame a LazyFrame. Rows are ordered by debt_id, then letter kind.
    """
    lazy = debts.lazy() if isinstance(debts, pl.DataFrame) else debts
    missing = [c for c in DUE_INPUT_SCHEMA if c not in lazy.collect_schema().names()]
    if missing:
        raise ValueError(f"letters_due needs the columns {', '.join(missing)}")
    lazy = lazy.select([pl.col(name).cast(dtype) for name, dtype in DUE_INPUT_SCHEMA.items()])
    parts = []
    for order, (kind, condition) in enumerate(_rules(as_of)):
        prefix = "pwc" if kind.recipient is Recipient.PWC else "nrp"
        parts.append(
            lazy.filter(condition.fill_null(False) & _alive(prefix, as_of)).select(
                pl.col("debt_id"),
                pl.col("case_ref"),
                pl.lit(kind.purpose.value).alias("purpose"),
                pl.lit(kind.recipient.value).alias("recipient"),
                pl.col(f"{prefix}_party_ref").alias("party_ref"),
                pl.lit(order, dtype=pl.Int32).alias("_order"),
            )
        )
    due = pl.concat(parts).sort("debt_id", "_order").drop("_order")
    if existing is not None:
        done = (existing.lazy() if isinstance(existing, pl.DataFrame) else existing).select(
            pl.col("debt_id").cast(pl.Int64),
            pl.col("purpose").cast(pl.String),
            pl.col("recipient").cast(pl.String),
        )
        due = due.join(
            done, on=["debt_id", "purpose", "recipient"], how="anti", maintain_order="left"
        )
    return due.collect() if isinstance(debts, pl.DataFrame) else due
