"""``notify status``: batches and letters by status, for people and for packs.

Counts only: batch ids, kinds, statuses, reasons, actors and dates. No reference lists, no case
references, no personal data. Every figure is one grouped query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, select, true

from csa_closure.context import Context
from csa_closure.domain.states import LetterStatus
from csa_closure.stages.letters_outbox.common import batch_row
from csa_closure.store.schema import debts, letter_batches, letters, send_quota

# statuses that need an operator or a person, with what to do
ATTENTION = {
    LetterStatus.SENDING.value: "in flight: `notify send BATCH` reconciles them by reference",
    LetterStatus.UNKNOWN.value: "ambiguous send: `notify send BATCH` reconciles them",
    LetterStatus.HELD.value: "not sendable (held_reason): the debt is flagged; `review list`",
    LetterStatus.FAILED.value: "refused by the channel: the debt is flagged; `review list`",
    LetterStatus.RETURNED.value: "came back: the debt is flagged for tracing; `review list`",
    LetterStatus.PERMANENT_FAILURE.value: "not printable: the debt is flagged; `review list`",
    LetterStatus.TECHNICAL_FAILURE.value: (
        "Notify failed; never resent automatically: `notify settle REF --resend` (after"
        " checking with Notify) or `--undeliverable`"
    ),
}


@dataclass
class BatchSummary:
    batch_id: int
    letter_type: str | None
    status: str
    as_of: str
    built_by: str
    built_at: str
    approved_by: str | None
    approved_at: str | None
    channel: str | None
    sent_at: str | None
    stop_reason: str | None
    letter_count: int
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class OutboxStatus:
    """JSON keys are these names (runbooks/03-letters.md)."""

    batch_id: int | None  # the batch asked about, or None for every batch
    batches: list[BatchSummary]
    by_kind: list[dict[str, Any]]  # purpose, recipient, status, letters
    by_status: dict[str, int]
    held_by_reason: dict[str, int]
    failed_by_reason: dict[str, int]
    attention: dict[str, dict[str, Any]]  # status -> {letters, what_to_do}
    debts_flagged_by_letters: dict[str, int]  # review_reason -> debts still open
    quota: list[dict[str, Any]]


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def outbox_status(ctx: Context, *, batch_id: int | None = None) -> OutboxStatus:
    where = letters.c.batch_id == batch_id if batch_id is not None else true()
    with ctx.engine.connect() as conn:
        if batch_id is not None:
            batch_row(conn, batch_id)
        batch_where = letter_batches.c.batch_id == batch_id if batch_id is not None else true()
        per_batch: dict[int, dict[str, int]] = {}
        for bid, status, n in conn.execute(
            select(letters.c.batch_id, letters.c.status, func.count())
            .where(letters.c.batch_id.is_not(None), where)
            .group_by(letters.c.batch_id, letters.c.status)
        ):
            per_batch.setdefault(int(bid), {})[status] = int(n)
        batches = [
            BatchSummary(
                batch_id=int(b.batch_id),
                letter_type=b.letter_type,
                status=b.status,
                as_of=b.as_of.isoformat(),
                built_by=b.built_by,
                built_at=b.built_at.isoformat(),
                approved_by=b.approved_by,
                approved_at=_iso(b.approved_at),
                channel=b.channel,
                sent_at=_iso(b.sent_at),
                stop_reason=b.stop_reason,
                letter_count=int(b.letter_count),
                by_status=dict(sorted(per_batch.get(int(b.batch_id), {}).items())),
            )
            for b in conn.execute(
                select(letter_batches).where(batch_where).order_by(letter_batches.c.batch_id)
            )
        ]
        by_kind = [
            {"purpose": p, "recipient": r, "status": s, "letters": int(n)}
            for p, r, s, n in conn.execute(
                select(letters.c.purpose, letters.c.recipient, letters.c.status, func.count())
                .where(where)
                .group_by(letters.c.purpose, letters.c.recipient, letters.c.status)
                .order_by(letters.c.purpose, letters.c.recipient, letters.c.status)
            )
        ]
        by_status: dict[str, int] = {}
        for row in by_kind:
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["letters"]
        held = _reasons(conn, letters.c.held_reason, LetterStatus.HELD.value, where)
        failed = _reasons(conn, letters.c.failure_reason, LetterStatus.FAILED.value, where)
        flagged = {
            reason: int(n)
            for reason, n in conn.execute(
                select(debts.c.review_reason, func.count())
                .where(
                    debts.c.review_reason.like("LETTER%"),
                    debts.c.state.not_in(["closed", "written_off", "transferred"]),
                )
                .group_by(debts.c.review_reason)
                .order_by(debts.c.review_reason)
            )
        }
        quota = [
            {
                "channel": q.channel,
                "day": q.day.isoformat(),
                "sent_count": int(q.sent_count),
                "limit_reached": bool(q.limit_reached),
            }
            for q in conn.execute(
                select(send_quota)
                .where(and_(send_quota.c.day <= ctx.as_of))
                .order_by(send_quota.c.day.desc(), send_quota.c.channel)
                .limit(14)
            )
        ]
    attention = {
        status: {"letters": by_status[status], "what_to_do": todo}
        for status, todo in ATTENTION.items()
        if by_status.get(status)
    }
    return OutboxStatus(
        batch_id=batch_id,
        batches=batches,
        by_kind=by_kind,
        by_status=dict(sorted(by_status.items())),
        held_by_reason=held,
        failed_by_reason=failed,
        attention=attention,
        debts_flagged_by_letters=flagged,
        quota=quota,
    )


def _reasons(conn: Any, column: Any, status: str, where: Any) -> dict[str, int]:
    # the reason's code only (before any ": detail"), so a count never spreads over messages
    rows = conn.execute(
        select(column, func.count()).where(letters.c.status == status, where).group_by(column)
    )
    counts: dict[str, int] = {}
    for reason, n in rows:
        code = (reason or "?").split(":  ")[0].split(": ")[0]
        counts[code] = counts.get(code, 0) + int(n)
    return dict(sorted(counts.items()))
