"""What the pull holds in quarantine and why, without personal data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from csa_closure.context import Context
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


def list_quarantine(
    ctx: Context,
    *,
    reason: str | None = None,
    status: str | None = "held",
    system: str | None = None,
) -> list[QuarantineItem]:
    """Quarantine items, newest pull first; filtered by reason code, status and system."""
    statement = select(quarantine).order_by(quarantine.c.source_system, quarantine.c.case_ref)
    if status:
        statement = statement.where(quarantine.c.status == status)
    if system:
        statement = statement.where(quarantine.c.source_system == system)
    with ctx.engine.connect() as conn:
        rows = conn.execute(statement).all()
    items = []
    for row in rows:
        codes = sorted({r["code"] for r in row.reasons})
        if reason and reason not in codes:
            continue
        items.append(
            QuarantineItem(
                source_system=row.source_system,
                case_ref=row.case_ref,
                item_kind=row.item_kind,
                status=row.status,
                pwc_pence=row.pwc_pence,
                sos_pence=row.sos_pence,
                unreadable_pence=row.unreadable_pence,
                row_count=row.row_count,
                reason_codes=codes,
                reasons=list(row.reasons),
                first_run_id=row.first_run_id,
                last_run_id=row.last_run_id,
                released_run_id=row.released_run_id,
            )
        )
    return items
