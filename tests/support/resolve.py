"""Helpers for the responses, resolve, review, ledger and transfer tests (no tests here).

- :func:`seal_pull` records a completed pull whose control totals are what was loaded, so the
  whole reconciliation (``reconcile(ctx).balanced``) can be asserted on a store built with
  ``BookBuilder``;
- :func:`final_chance_debt` builds a PWC debt whose final-chance letter has been sent;
- :func:`send_notices` plays the letters stage: it builds every letter ``letters_due`` says is
  due (its own rules) with the given status, so resolve is tested against the letters
  stage's notion of which parents must be told.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import func, insert, select

from csa_closure.context import Context
from csa_closure.letters import letters_due
from csa_closure.reconcile import reconcile
from csa_closure.store.dialect import insert_frame, read_frame
from csa_closure.store.schema import debts, ledger_entries, letters, stage_runs
from tests.support.builders import BookBuilder

WINDOW_DAYS = 60
REMINDER_DAYS = 21
_references = itertools.count(1)


def seal_pull(ctx: Context) -> None:
    """A completed pull whose control totals equal what is loaded (call after building)."""
    with ctx.engine.begin() as conn:
        rows = conn.execute(
            select(
                debts.c.source_system, debts.c.creditor, func.sum(debts.c.opening_pence)
            ).group_by(debts.c.source_system, debts.c.creditor)
        ).all()
        totals: dict[str, dict[str, Any]] = {}
        for system, creditor, pence in rows:
            totals.setdefault(system, {})[creditor] = {"source_pence": int(pence)}
        conn.execute(
            insert(stage_runs).values(
                stage="pull",
                actor="tests",
                host="tests",
                started_at=ctx.clock(),
                finished_at=ctx.clock(),
                as_of=ctx.as_of,
                status="completed",
                parameters={},
                counts={},
                control_totals=totals,
            )
        )


def assert_balanced(ctx: Context) -> None:
    recon = reconcile(ctx)
    assert recon.balanced, recon.to_json()


def final_chance_debt(
    book: BookBuilder,
    case_ref: str,
    pence: int,
    letter_date: date,
    *,
    state: str = "awaiting_response",
    **values: Any,
) -> int:
    """A PWC debt given the final chance: letter sent on ``letter_date``, 60-day window."""
    columns: dict[str, Any] = {
        "outcome": "representation",
        "reason": "FINAL_CHANCE",
        "rule_id": "PWC-10",
        "ruleset_hash": "r" * 64,
        "letter_date": letter_date,
        "response_deadline": letter_date + timedelta(days=WINDOW_DAYS),
        "reminder_due": letter_date + timedelta(days=REMINDER_DAYS),
    }
    return book.debt(case_ref, "PWC", pence, state=state, **{**columns, **values})


_DUE_SQL = """
SELECT d.debt_id, d.case_ref, d.creditor, d.state, d.outcome, d.response, d.reminder_due,
       d.response_deadline, c.pwc_party_ref, c.nrp_party_ref,
       pwc.deceased_on AS pwc_deceased_on, nrp.deceased_on AS nrp_deceased_on
FROM debts d JOIN cases c ON c.case_ref = d.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref
"""
_DUE_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "creditor": pl.String(),
    "state": pl.String(),
    "outcome": pl.String(),
    "response": pl.String(),
    "reminder_due": pl.Date(),
    "response_deadline": pl.Date(),
    "pwc_party_ref": pl.String(),
    "nrp_party_ref": pl.String(),
    "pwc_deceased_on": pl.Date(),
    "nrp_deceased_on": pl.Date(),
}


def send_notices(
    ctx: Context,
    *,
    status: str = "accepted",
    purposes: Sequence[str] = ("write_off_notice",),
    recipients: Sequence[str] = ("PWC", "NRP"),
    letter_date: date | None = None,
) -> int:
    """Build the letters due on ``ctx.as_of`` (``letters_due``) for ``purposes`` and
    ``recipients``, with ``status``, as the letters stage would. Returns how many."""
    with ctx.engine.begin() as conn:
        frame = read_frame(conn, (_DUE_SQL, ()), _DUE_SCHEMA)
        existing = read_frame(
            conn,
            ("SELECT debt_id, purpose, recipient FROM letters", ()),
            {"debt_id": pl.Int64(), "purpose": pl.String(), "recipient": pl.String()},
        )
        due = letters_due(frame, ctx.as_of, existing=existing).filter(
            pl.col("purpose").is_in(list(purposes)) & pl.col("recipient").is_in(list(recipients))
        )
        if due.height == 0:
            return 0
        rows = due.with_columns(
            pl.Series("reference", [f"TEST-{next(_references):08d}" for _ in range(due.height)]),
            pl.lit(status).alias("status"),
            pl.lit(letter_date or ctx.as_of, dtype=pl.Date).alias("letter_date"),
            pl.lit(1, dtype=pl.Int64).alias("attempts"),
            pl.lit(ctx.clock()).alias("created_at"),
        )
        return insert_frame(conn, letters, rows)


def ledger_rows(ctx: Context) -> list[tuple[Any, ...]]:
    """The ledger without what differs between runs (ids, run, instant): what must be equal
    between an interrupted and an uninterrupted resolve."""
    with ctx.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                select(
                    ledger_entries.c.debt_id,
                    ledger_entries.c.case_ref,
                    ledger_entries.c.source_system,
                    ledger_entries.c.creditor,
                    ledger_entries.c.entry_type,
                    ledger_entries.c.amount_pence,
                    ledger_entries.c.reason,
                    ledger_entries.c.rule_id,
                    ledger_entries.c.ruleset_hash,
                    ledger_entries.c.actor,
                    ledger_entries.c.as_of,
                ).order_by(ledger_entries.c.debt_id, ledger_entries.c.entry_id)
            )
        ]


def debt_row(ctx: Context, debt_id: int) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(select(debts).where(debts.c.debt_id == debt_id)).one()


def states(ctx: Context) -> dict[int, str]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(select(debts.c.debt_id, debts.c.state)).all())  # type: ignore[arg-type]


RESPONSE_HEADER = ("document_id", "case_ref", "party", "response", "received_on", "channel")


def write_csv(
    path: Path, rows: Iterable[Sequence[Any] | Mapping[str, Any]], header: Sequence[str]
) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            if isinstance(row, Mapping):
                writer.writerow([row.get(h, "") for h in header])
            else:
                writer.writerow(row)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
