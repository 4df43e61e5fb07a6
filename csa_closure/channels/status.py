"""Notify's letter statuses, and what each means for the letter and its debt.

=====================  ==========  ==========  ========================================
Notify status          may change  dispatched  meaning
=====================  ==========  ==========  ========================================
``accepted``           yes         no          Notify has it; not yet printed (Notify's
                                               ``created``/``sending``/``pending`` too)
``received``           yes         yes         printed and posted; a return may follow
``returned-letter``    no          yes         came back undelivered: trace the address
``permanent-failure``  no          no          the printer cannot print it: a caseworker
``technical-failure``  no          no          Notify failed: do not send it again
                                               automatically (Notify's guidance); a
                                               caseworker, and ``notify settle``
``cancelled``          no          no          cancelled in Notify; will not be printed
=====================  ==========  ==========  ========================================

``received`` is not final: it can still become ``returned-letter``, and returns arrive weeks
after posting. Notify keeps status data for its retention period only (7 days by default), so
poll within it; a return reported after it comes from Notify's returned-letters report.

The values are the ones ``csa_closure.domain.states.LetterStatus`` (the outbox's statuses) uses for
Notify's statuses, so a ``NotifyStatus`` can be stored in ``letters.status`` as it is. (The
outbox's own ``pending`` means "built, not sent": Notify's queued statuses are ``accepted``.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)

RETENTION_DAYS = 7


class NotifyStatus(StrEnum):
    ACCEPTED = "accepted"
    RECEIVED = "received"
    RETURNED_LETTER = "returned-letter"
    PERMANENT_FAILURE = "permanent-failure"
    TECHNICAL_FAILURE = "technical-failure"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """Notify will not change it any more (``received`` may still become a return)."""
        return self not in (NotifyStatus.ACCEPTED, NotifyStatus.RECEIVED)

    @property
    def dispatched(self) -> bool:
        """It was printed and posted."""
        return self in (NotifyStatus.RECEIVED, NotifyStatus.RETURNED_LETTER)

    @property
    def voided(self) -> bool:
        """Notify will never print it."""
        return self in (
            NotifyStatus.PERMANENT_FAILURE,
            NotifyStatus.TECHNICAL_FAILURE,
            NotifyStatus.CANCELLED,
        )

    @property
    def needs_tracing(self) -> bool:
        """The address (or the letter) needs a person: flag the debt for tracing."""
        return self in (NotifyStatus.RETURNED_LETTER, NotifyStatus.PERMANENT_FAILURE)


_FROM_NOTIFY = {
    "created": NotifyStatus.ACCEPTED,
    "pending": NotifyStatus.ACCEPTED,
    "pending-virus-check": NotifyStatus.ACCEPTED,
    "sending": NotifyStatus.ACCEPTED,
    "sent": NotifyStatus.ACCEPTED,
    "accepted": NotifyStatus.ACCEPTED,
    "delivered": NotifyStatus.RECEIVED,
    "received": NotifyStatus.RECEIVED,
    "returned-letter": NotifyStatus.RETURNED_LETTER,
    "permanent-failure": NotifyStatus.PERMANENT_FAILURE,
    "validation-failed": NotifyStatus.PERMANENT_FAILURE,  # precompiled letters only
    "virus-scan-failed": NotifyStatus.PERMANENT_FAILURE,  # precompiled letters only
    "technical-failure": NotifyStatus.TECHNICAL_FAILURE,
    "temporary-failure": NotifyStatus.TECHNICAL_FAILURE,
    "cancelled": NotifyStatus.CANCELLED,
}


def status_from_notify(value: str | None) -> NotifyStatus:
    """Our reading of Notify's ``status`` string. An unknown one is taken as ``accepted`` (and
    logged): a new Notify status must never stop the sync, nor be taken as final."""
    status = _FROM_NOTIFY.get((value or "").strip().lower())
    if status is None:
        log.warning("unknown Notify letter status %r: taken as accepted", value)
        return NotifyStatus.ACCEPTED
    return status


@dataclass(frozen=True)
class NotificationInfo:
    """What we keep of a Notify notification: ids, status and times. Notify's reply also holds
    the address; it is never copied here."""

    notify_id: str
    reference: str | None
    status: NotifyStatus
    notify_status: str
    created_at: datetime | None = None
    template_id: str | None = None


@dataclass(frozen=True)
class SendReceipt:
    reference: str
    notify_id: str
    template_version: int | None = None
