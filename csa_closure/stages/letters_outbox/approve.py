"""``notify approve``: a second person approves a built batch (maker-checker).

The approval is one compare-and-set update (``WHERE status = 'built' AND built_by <> actor``)
with a ``batch.approved`` event, so a batch is approved once, never by its builder, and never
after it started going out. Nothing is sent until a batch is approved. Approving a batch
already approved is a no-op that names who approved it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.states import BatchStatus
from csa_closure.errors import UsageError
from csa_closure.stages.letters_outbox.common import APPROVE_STAGE, batch_row
from csa_closure.store import events
from csa_closure.store.letters import mark_batch_approved
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import letters


class MakerCheckerRefused(UsageError):
    """The builder of a batch tried to approve it."""


@dataclass
class ApproveResult:
    run_id: int | None  # None when the batch was already approved (nothing was done)
    batch_id: int
    built_by: str
    approved_by: str
    letter_count: int
    by_kind: dict[str, int] = field(default_factory=dict)  # pending letters per kind
    already_approved: bool = False
    status: str = BatchStatus.APPROVED.value


def approve_batch(ctx: Context, batch_id: int) -> ApproveResult:
    """Approve ``batch_id`` as ``ctx.actor``: refused for its builder, or unless it is built.

    A batch already approved (whatever happened to it since) is left as it is: the result
    says who approved it and nothing is recorded, so approving twice is safe."""
    with ctx.engine.connect() as conn:
        batch = batch_row(conn, batch_id)
    if batch.approved_by is not None:
        return ApproveResult(
            run_id=None,
            batch_id=batch_id,
            built_by=batch.built_by,
            approved_by=batch.approved_by,
            letter_count=int(batch.letter_count),
            already_approved=True,
            status=batch.status,
        )
    with stage_run(ctx, APPROVE_STAGE, {"batch_id": batch_id}) as run, run.chunk() as conn:
        batch = batch_row(conn, batch_id)
        if batch.built_by == ctx.actor:
            raise MakerCheckerRefused(
                f"batch {batch_id} was built by {ctx.actor}: the person who builds a batch may"
                " not approve it (maker-checker). Another operator approves it, under their"
                " own name"
            )
        if batch.status != BatchStatus.BUILT.value:
            by = f" by {batch.approved_by}" if batch.approved_by else ""
            raise UsageError(f"batch {batch_id} is already {batch.status}{by}: nothing to approve")
        mark_batch_approved(conn, batch_id, approved_by=ctx.actor, approved_at=ctx.clock())
        by_kind = {
            f"{purpose}.{recipient}": int(n)
            for purpose, recipient, n in conn.execute(
                select(letters.c.purpose, letters.c.recipient, func.count())
                .where(letters.c.batch_id == batch_id, letters.c.status == "pending")
                .group_by(letters.c.purpose, letters.c.recipient)
                .order_by(letters.c.purpose, letters.c.recipient)
            )
        }
        events.record(
            conn,
            run,
            EventType.BATCH_APPROVED,
            entity=f"batch:{batch_id}",
            from_state=BatchStatus.BUILT.value,
            to_state=BatchStatus.APPROVED.value,
            detail={"built_by": batch.built_by, "letters": sum(by_kind.values())},
        )
        run.counts.update({"batch_id": batch_id, "letters": sum(by_kind.values())})
        return ApproveResult(
            run_id=run.run_id,
            batch_id=batch_id,
            built_by=batch.built_by,
            approved_by=ctx.actor,
            letter_count=int(batch.letter_count),
            by_kind=by_kind,
        )
