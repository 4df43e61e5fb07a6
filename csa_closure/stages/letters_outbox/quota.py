"""The persisted daily quota per channel: how many letters each channel was asked to take on
each (as-of) day, and whether the channel said its limit was reached.

A sender *reserves* letters before it calls the channel, in the same transaction as their send
intent: a compare-and-set ``UPDATE`` that only succeeds while the day's count plus the
reservation stays within the limit, so two operators sending different batches on one channel
never exceed it together. Letters reserved but never handed to the channel (the batch stopped
first) are given back. A letter the channel refused, or whose send was ambiguous, stays counted:
the count never undercounts what the channel may have taken.

The day is the run's as-of date (explicit time): a send resumed with the next day's
``--as-of`` has a fresh quota. ``limit_reached`` is set when the channel itself says its daily
limit is reached (Notify's 429 ``TooManyRequestsError``): nothing more is tried that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, false, select, true, update
from sqlalchemy.engine import Connection

from csa_closure.store.dialect import insert_ignoring_conflicts
from csa_closure.store.schema import send_quota

DEFAULT_DAILY_LIMIT = 20_000  # Notify's daily letter limit for a live service


@dataclass(frozen=True)
class QuotaState:
    channel: str
    day: date
    sent_count: int
    limit: int | None  # None: this channel has no daily limit
    limit_reached: bool

    @property
    def remaining(self) -> int | None:
        if self.limit_reached:
            return 0
        return None if self.limit is None else max(0, self.limit - self.sent_count)


def _ensure(conn: Connection, channel: str, day: date) -> None:
    conn.execute(
        insert_ignoring_conflicts(conn, send_quota).values(
            channel=channel, day=day, sent_count=0, limit_reached=False
        )
    )


def _row(conn: Connection, channel: str, day: date) -> tuple[int, bool]:
    row = conn.execute(
        select(send_quota.c.sent_count, send_quota.c.limit_reached).where(
            send_quota.c.channel == channel, send_quota.c.day == day
        )
    ).one()
    return int(row.sent_count), bool(row.limit_reached)


def quota_state(conn: Connection, channel: str, day: date, limit: int | None) -> QuotaState:
    row = conn.execute(
        select(send_quota.c.sent_count, send_quota.c.limit_reached).where(
            send_quota.c.channel == channel, send_quota.c.day == day
        )
    ).first()
    sent, reached = (0, False) if row is None else (int(row.sent_count), bool(row.limit_reached))
    return QuotaState(channel, day, sent, limit, reached)


def reserve(conn: Connection, channel: str, day: date, wanted: int, limit: int | None) -> int:
    """Reserve up to ``wanted`` letters of ``channel``'s quota for ``day``; returns how many
    (0: the day's quota is used, or the channel said its limit is reached)."""
    if wanted <= 0:
        return 0
    _ensure(conn, channel, day)
    key = and_(send_quota.c.channel == channel, send_quota.c.day == day)
    open_day = send_quota.c.limit_reached == false()
    n = wanted
    for _ in range(5):  # another sender may take some between our read and our update
        room = send_quota.c.sent_count + n <= limit if limit is not None else true()
        taken = conn.execute(
            update(send_quota)
            .where(key, open_day, room)
            .values(sent_count=send_quota.c.sent_count + n)
        ).rowcount
        if taken == 1:
            return n
        sent, reached = _row(conn, channel, day)
        if reached or limit is None or sent >= limit:
            return 0
        n = min(wanted, limit - sent)
    return 0


def release(conn: Connection, channel: str, day: date, n: int) -> None:
    """Give back ``n`` reserved letters that were never handed to the channel."""
    if n > 0:
        conn.execute(
            update(send_quota)
            .where(send_quota.c.channel == channel, send_quota.c.day == day)
            .values(sent_count=send_quota.c.sent_count - n)
        )


def mark_limit_reached(conn: Connection, channel: str, day: date) -> None:
    """The channel said its daily limit is reached: nothing more is sent on ``day``."""
    _ensure(conn, channel, day)
    conn.execute(
        update(send_quota)
        .where(send_quota.c.channel == channel, send_quota.c.day == day)
        .values(limit_reached=True)
    )
