"""Claims with leases: one stage run at a time owns a piece of work.

A lease is a row in ``leases`` taken by compare-and-set: the UPDATE only succeeds when the
row is free or its lease has expired, so of two operators on PostgreSQL exactly one wins and
the other gets a clear refusal naming the holder. The holder renews the lease inside each
chunk's transaction, so if its lease was taken over (it stalled past expiry) the chunk rolls
back instead of doing the work twice. A stale lease from a dead operator is taken over after
it expires, and an event records who took it from whom. On the machine where the holder ran,
a holder whose process is gone (crashed, killed) is taken over at once: nobody has to wait
for the lease to run out after a crash.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psutil
from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from csa_closure.domain.events import EventType
from csa_closure.errors import LeaseHeld, LeaseLost
from csa_closure.store.dialect import insert_ignoring_conflicts
from csa_closure.store.schema import leases

if TYPE_CHECKING:
    from csa_closure.store.runs import Run


@dataclass
class Lease:
    name: str
    token: str
    expires_at: datetime


_ATTEMPTS = 5  # reads of a lease that keeps changing between our read and our update
_HOLDER = re.compile(r"@(?P<host>.+) pid (?P<pid>\d+)$")


def _holder_is_dead(holder: str | None, host: str) -> bool:
    """True when ``holder`` ran on this machine and its process no longer exists."""
    match = _HOLDER.search(holder or "")
    if match is None or match["host"] != host:
        return False
    pid = int(match["pid"])
    return pid != os.getpid() and not psutil.pid_exists(pid)


def _held(name: str, lease: Any) -> LeaseHeld:
    return LeaseHeld(
        f"{name} is being worked by {lease.holder} (run {lease.run_id}); its lease "
        f"runs until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC. Wait for that run to "
        "finish. If its process is dead, run again after the lease expires to take it over."
    )


def acquire(conn: Connection, run: Run, name: str) -> Lease:
    """Take the lease ``name`` for ``run`` or raise ``LeaseHeld``. Commit to make it visible.

    The compare-and-set is on the lease as read: free, or the very holder found expired (or
    dead on this machine). If the lease changed in between (its holder released it, renewed
    it, or someone else took it), it is read again, so a lease released at that moment is
    simply taken, and a takeover is only recorded for the holder actually replaced. A live
    holder is refused at once, even while its chunk transaction is open."""
    ctx = run.ctx
    if conn.execute(select(leases.c.name).where(leases.c.name == name)).first() is None:
        # (only then: on PostgreSQL an insert that meets the row waits for a holder's open
        # chunk transaction, where reading it does not)
        conn.execute(insert_ignoring_conflicts(conn, leases).values(name=name))
    for _ in range(_ATTEMPTS):
        before = conn.execute(select(leases).where(leases.c.name == name)).one()
        now = ctx.clock()
        dead = before.token is not None and _holder_is_dead(before.holder, ctx.host)
        free: ColumnElement[bool]
        if before.token is None:
            free = leases.c.token.is_(None)
        elif dead:
            # compare-and-set on the dead holder's token, so two rescuers cannot both win
            free = leases.c.token == before.token
        elif before.expires_at < now:
            free = and_(leases.c.token == before.token, leases.c.expires_at < now)
        else:
            raise _held(name, before)
        token = str(uuid.uuid4())
        expires = now + timedelta(seconds=ctx.settings.lease_seconds)
        taken = conn.execute(
            update(leases)
            .where(leases.c.name == name)
            .where(free)
            .values(
                token=token,
                holder=ctx.holder,
                run_id=run.run_id,
                acquired_at=now,
                heartbeat_at=now,
                expires_at=expires,
            )
        )
        if taken.rowcount == 1:
            break
    else:
        raise LeaseHeld(f"{name} keeps changing hands: run again in a moment")
    if before.token is not None:
        # The previous holder stopped renewing: it crashed or was killed.
        from csa_closure.store import events

        events.record(
            conn,
            run,
            EventType.LEASE_TAKEN_OVER,
            entity=f"lease:{name}",
            detail={
                "previous_holder": before.holder,
                "previous_run_id": before.run_id,
                "new_holder": ctx.holder,
                "why": "holder process is dead" if dead else "lease expired",
                "expired_at": before.expires_at.isoformat() if before.expires_at else None,
            },
        )
        if before.run_id is not None:
            # store/runs.py writes stage_runs; it imports this module, hence the late import
            from csa_closure.store.runs import abandon_run

            abandon_run(conn, before.run_id, finished_at=now, error="lease taken over")
    return Lease(name=name, token=token, expires_at=expires)


def renew(conn: Connection, run: Run, lease: Lease) -> None:
    """Extend ``lease`` inside the caller's transaction; raise ``LeaseLost`` if it was taken."""
    now = run.ctx.clock()
    expires = now + timedelta(seconds=run.ctx.settings.lease_seconds)
    renewed = conn.execute(
        update(leases)
        .where(leases.c.name == lease.name)
        .where(leases.c.token == lease.token)
        .values(heartbeat_at=now, expires_at=expires)
    )
    if renewed.rowcount != 1:
        raise LeaseLost(
            f"this run lost its lease on {lease.name} (another run took it over after it "
            "expired); nothing from this chunk was written. Check `csa-closure report runs`."
        )
    lease.expires_at = expires


def release(conn: Connection, lease: Lease) -> None:
    conn.execute(
        update(leases)
        .where(leases.c.name == lease.name)
        .where(leases.c.token == lease.token)
        .values(token=None, expires_at=None)
    )
