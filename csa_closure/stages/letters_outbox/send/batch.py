"""A send's start and finish on its batch: checking the batch may be sent through this channel
and configuration, marking it ``sending``, and at the end giving it the status its letters
say (``sent``, ``sending`` or ``stopped``) with the result's figures."""

from __future__ import annotations

import logging

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from csa_closure.domain.events import EventType
from csa_closure.domain.states import BatchStatus
from csa_closure.errors import UsageError
from csa_closure.letters import LettersConfig
from csa_closure.stages.letters_outbox import quota
from csa_closure.stages.letters_outbox.common import GOVUK_NOTIFY, batch_row
from csa_closure.stages.letters_outbox.send.options import (
    OPEN_STATUSES,
    SENDABLE_BATCH_STATUSES,
    SendOptions,
    SendResult,
    Stop,
)
from csa_closure.store import events
from csa_closure.store.letters import move_batch
from csa_closure.store.runs import Run
from csa_closure.store.schema import letters

log = logging.getLogger(__name__)


def refuse_example_config(channel: str, config: LettersConfig) -> None:
    """A live Notify send with the bundled example templates would send letters nobody wrote."""
    if channel == GOVUK_NOTIFY and config.example:
        raise UsageError(
            f"refusing a live Notify send with the example letters configuration ({config.source}):"
            " its template ids are not your service's. Point CSA_CLOSURE_LETTERS_CONFIG (or"
            " --letters-config) at the live configuration (example = false)"
        )


def start_batch(
    conn: Connection, run: Run, batch_id: int, channel: str, config: LettersConfig
) -> bool:
    """Check the batch may be sent through ``channel``; mark it ``sending``. False when
    nothing is left to do (a sent batch sent again)."""
    batch = batch_row(conn, batch_id)
    if batch.status == BatchStatus.BUILT.value:
        raise UsageError(
            f"batch {batch_id} is not approved: someone other than {batch.built_by} (who built it)"
            f" runs `csa-closure notify approve {batch_id}` first"
        )
    if batch.status not in SENDABLE_BATCH_STATUSES:
        raise UsageError(f"batch {batch_id} is {batch.status}: it cannot be sent")
    tried = conn.execute(
        select(func.count())
        .select_from(letters)
        .where(letters.c.batch_id == batch_id, letters.c.attempts > 0)
    ).scalar_one()
    if tried and batch.channel and batch.channel != channel:
        raise UsageError(
            f"batch {batch_id} is being sent through {batch.channel}: finish it with"
            f" --channel {batch.channel} (a batch never goes through two channels, so no letter"
            " can reach a parent twice)"
        )
    if tried and batch.letters_config_sha256 and batch.letters_config_sha256 != config.sha256:
        raise UsageError(
            f"batch {batch_id} was started with the letters configuration"
            f" {batch.letters_config_sha256[:12]}; this one ({config.source}) is"
            f" {config.sha256[:12]}. Send it with the configuration it was started with"
        )
    open_letters = conn.execute(
        select(func.count())
        .select_from(letters)
        .where(letters.c.batch_id == batch_id, letters.c.status.in_(OPEN_STATUSES))
    ).scalar_one()
    if not open_letters:
        return False
    move_batch(
        conn,
        batch_id,
        batch.status,
        BatchStatus.SENDING,
        channel=channel,
        letters_config_sha256=config.sha256,
        stop_reason=None,
    )
    events.record(
        conn,
        run,
        EventType.BATCH_SENDING,
        entity=f"batch:{batch_id}",
        from_state=batch.status,
        to_state=BatchStatus.SENDING.value,
        detail={"channel": channel, "open_letters": int(open_letters)},
    )
    return True


def finish_batch(
    conn: Connection,
    run: Run,
    batch_id: int,
    stop: Stop | None,
    result: SendResult,
    options: SendOptions,
) -> None:
    batch = batch_row(conn, batch_id)
    by_status = {
        status: int(n)
        for status, n in conn.execute(
            select(letters.c.status, func.count())
            .where(letters.c.batch_id == batch_id)
            .group_by(letters.c.status)
            .order_by(letters.c.status)
        )
    }
    remaining = sum(by_status.get(s, 0) for s in OPEN_STATUSES)
    if stop is not None:
        status = BatchStatus.STOPPED.value
    elif remaining == 0:
        status = BatchStatus.SENT.value
    else:
        status = BatchStatus.SENDING.value
    now = run.ctx.clock()
    if batch.status != status or stop is not None:
        move_batch(
            conn,
            batch_id,
            batch.status,
            status,
            stop_reason=stop.message[:200] if stop else None,
            sent_at=batch.sent_at or (now if status == BatchStatus.SENT.value else None),
        )
        events.record(
            conn,
            run,
            EventType(f"batch.{status}"),
            entity=f"batch:{batch_id}",
            from_state=batch.status,
            to_state=status,
            detail={"stop_code": stop.code if stop else None, "remaining": remaining},
        )
    log.info(
        "batch %s is %s: %d letters still to send or reconcile%s",
        batch_id,
        status,
        remaining,
        f" (stopped: {stop.code})" if stop else "",
    )
    result.batch_status = status
    result.remaining = remaining
    result.by_status = by_status
    if stop is not None:
        result.stop_code, result.stop_message = stop.code, stop.message
    channel = batch.channel or result.channel
    limit = options.daily_limit
    state = quota.quota_state(conn, channel, run.ctx.as_of, limit)
    result.quota = {
        "channel": channel,
        "day": state.day.isoformat(),
        "sent_count": state.sent_count,
        "limit": state.limit,
        "limit_reached": state.limit_reached,
        "remaining": state.remaining,
    }
