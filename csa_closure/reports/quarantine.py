"""What the pull holds in quarantine and why, without personal data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from csa_closure.context import Context
from csa_closure.store.rows import from_row
from csa_closure.store.schema import quarantine


@dataclass(frozen=True)
class QuarantineItem:
    source_system: str
    case_ref: str
    item_kind: str
    status: str
    pwc_pence: int
    sos_pence: int
    unreadable_pence: int  # held rows whose creditor cannot be read
    row_count: int
    reason_codes: list[str]
    reasons: list[dict[str, Any]]
    first_run_id: int
    last_run_id: int
    released_run_id: int | None


@dataclass(frozen=True)
class ReasonSummary:
    """Items holding one reason code (an item with two codes counts under each)."""

    reason: str
    items: int
    pwc_pence: int
    sos_pence: int


def _filtered(statement: Any, status: str | None, system: str | None) -> Any:
    if status:
        statement = statement.where(quarantine.c.status == status)
    if system:
        statement = statement.where(quarantine.c.source_system == system)
    return statement


def summarise_quarantine(
    ctx: Context,
    *,
    reason: str | None = None,
    status: str | None = "held",
    system: str | None = None,
) -> tuple[int, list[ReasonSummary]]:
    """How many items match, and per reason code their count and pence, most items first.
    Reads only each item's codes and pence (a single pass, fast at hundreds of thousands)."""
    statement = _filtered(
        select(quarantine.c.reasons, quarantine.c.pwc_pence, quarantine.c.sos_pence),
        status,
        system,
    )
    totals: dict[str, list[int]] = {}
    matched = 0
    with ctx.engine.connect() as conn:
        for reasons, pwc, sos in conn.execute(statement):
            codes = {r["code"] for r in reasons}
            if reason and reason not in codes:
                continue
            matched += 1
            for code in codes:
                t = totals.setdefault(code, [0, 0, 0])
                t[0] += 1
                t[1] += int(pwc)
                t[2] += int(sos)
    summary = [ReasonSummary(code, n, p, s) for code, (n, p, s) in totals.items()]
    return matched, sorted(summary, key=lambda r: (-r.items, r.reason))


def list_quarantine(
    ctx: Context,
    *,
    reason: str | None = None,
    status: str | None = "held",
    system: str | None = None,
    limit: int | None = None,
) -> list[QuarantineItem]:
    """Quarantine items in system and case order; filtered by reason code, status and
    system; at most ``limit`` of them."""
    statement = _filtered(
        select(quarantine).order_by(quarantine.c.source_system, quarantine.c.case_ref),
        status,
        system,
    )
    if limit is not None and not reason:
        statement = statement.limit(limit)
    items: list[QuarantineItem] = []
    with ctx.engine.connect() as conn:
        rows = conn.execute(statement)
        for row in rows:
            if limit is not None and len(items) >= limit:
                break
            codes = sorted({r["code"] for r in row.reasons})
            if reason and reason not in codes:
                continue
            items.append(
                from_row(QuarantineItem, row, reason_codes=codes, reasons=list(row.reasons))
            )
    return items
