"""Reconciling a letter whose send was ambiguous, by its reference, before any resend.

Notify has no idempotency key: a send that timed out may have been accepted. The outbox marks
such a letter ``unknown`` and, before it may ever be sent again, asks :func:`reconcile`:

==============  ==========================================================================
decision        what the outbox does
==============  ==========================================================================
``sent``        Notify has it: record the notify id and status; never resend
``duplicated``  Notify has it more than once (sent twice): record the oldest, flag it for a
                person; never resend
``technical``   Notify's only letters for the reference failed technically: record the
                failure (a caseworker queue); never resend automatically, since Notify's
                guidance is not to send it again (``notify settle`` decides)
``resend``      Notify has no letter with the reference and would still show one: it is
                safe to send it again
``wait``        too soon after the attempt (Notify may still be processing it): ask later
``cannot_tell`` the attempt is older than Notify's retention, so "not found" proves nothing:
                hold the letter for a person
==============  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from csa_closure.channels.base import LetterChannel
from csa_closure.channels.status import RETENTION_DAYS, NotificationInfo, NotifyStatus

SETTLE = timedelta(minutes=5)
RETENTION_MARGIN = timedelta(days=1)


class ReconcileDecision(StrEnum):
    SENT = "sent"
    DUPLICATED = "duplicated"
    RESEND = "resend"
    TECHNICAL_FAILURE = "technical"
    WAIT = "wait"
    CANNOT_TELL = "cannot_tell"


@dataclass(frozen=True)
class Reconciliation:
    reference: str
    decision: ReconcileDecision
    adopted: NotificationInfo | None = None  # the letter to record as this one
    found: tuple[NotificationInfo, ...] = ()


def reconcile(
    channel: LetterChannel,
    reference: str,
    *,
    attempted_at: datetime,
    now: datetime,
    retention_days: float = RETENTION_DAYS,
    settle: timedelta = SETTLE,
) -> Reconciliation:
    """Decide what an ``unknown`` letter is, from what Notify holds for its reference.
    ``attempted_at`` is when its last send was tried (recorded with the intent)."""
    age = now - attempted_at
    if age < settle:
        return Reconciliation(reference, ReconcileDecision.WAIT)
    found = tuple(channel.find_by_reference(reference))
    live = [n for n in found if n.status is not NotifyStatus.TECHNICAL_FAILURE]
    if len(live) == 1:
        return Reconciliation(reference, ReconcileDecision.SENT, live[0], found)
    if live:
        return Reconciliation(reference, ReconcileDecision.DUPLICATED, live[0], found)
    if found:
        return Reconciliation(reference, ReconcileDecision.TECHNICAL_FAILURE, found[0], found)
    if age >= timedelta(days=retention_days) - RETENTION_MARGIN:
        return Reconciliation(reference, ReconcileDecision.CANNOT_TELL, None, found)
    return Reconciliation(reference, ReconcileDecision.RESEND, None, found)
