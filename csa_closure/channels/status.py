"""Notify's letter statuses, and what each means for the letter and its debt.

=====================  =========  ==========  =========================================
status                 final      dispatched  meaning
=====================  =========  ==========  =========================================
``pending``            no         no          Notify has it, not yet with the printer
``accepted``           no         no          sent to the printer
``received``           no         yes         printed and posted; a return may follow
``returned-letter``    yes        yes         came back undelivered: trace the address
``permanent-failure``  yes        no          the printer cannot print it: a caseworker
``technical-failure``  yes        no          Notify failed; it will not be printed:
                                              send again
``cancelled``          yes        no          cancelled in Notify; will not be printed
``validation-failed``  yes        no          (precompiled letters only)
``virus-scan-failed``  yes        no          (precompiled letters only)
=====================  =========  ==========  =========================================

``received`` is not final: returned letters can arrive weeks after posting. Notify keeps status
data for its retention period only (7 days by default), so poll within it; a return reported
after it comes from Notify's returned-letters report, not the status API.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

log = logging.getLogger(__name__)

RETENTION_DAYS = 7


class LetterStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    RECEIVED = "received"
    RETURNED_LETTER = "returned-letter"
    PERMANENT_FAILURE = "permanent-failure"
    TECHNICAL_FAILURE = "technical-failure"
    CANCELLED = "cancelled"
    VALIDATION_FAILED = "validation-failed"
    VIRUS_SCAN_FAILED = "virus-scan-failed"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def dispatched(self) -> bool:
        return self in (LetterStatus.RECEIVED, LetterStatus.RETURNED_LETTER)

    @property
    def voided(self) -> bool:
        """Notify will never print it."""
        return self in _VOIDED

    @property
    def needs_tracing(self) -> bool:
        """The address (or the letter) needs a person: flag the debt for tracing."""
        return self in (LetterStatus.RETURNED_LETTER, LetterStatus.PERMANENT_FAILURE)

    @property
    def can_resend(self) -> bool:
        """Notify's guidance for a technical failure is to send the letter again."""
        return self is LetterStatus.TECHNICAL_FAILURE


_VOIDED = frozenset(
    {
        LetterStatus.PERMANENT_FAILURE,
        LetterStatus.TECHNICAL_FAILURE,
        LetterStatus.CANCELLED,
        LetterStatus.VALIDATION_FAILED,
        LetterStatus.VIRUS_SCAN_FAILED,
    }
)
_FINAL = _VOIDED | {LetterStatus.RETURNED_LETTER}

_FROM_NOTIFY = {
    "created": LetterStatus.PENDING,
    "pending": LetterStatus.PENDING,
    "pending-virus-check": LetterStatus.PENDING,
    "sending": LetterStatus.ACCEPTED,
    "sent": LetterStatus.ACCEPTED,
    "accepted": LetterStatus.ACCEPTED,
    "delivered": LetterStatus.RECEIVED,
    "received": LetterStatus.RECEIVED,
    "returned-letter": LetterStatus.RETURNED_LETTER,
    "permanent-failure": LetterStatus.PERMANENT_FAILURE,
    "technical-failure": LetterStatus.TECHNICAL_FAILURE,
    "temporary-failure": LetterStatus.TECHNICAL_FAILURE,
    "cancelled": LetterStatus.CANCELLED,
    "validation-failed": LetterStatus.VALIDATION_FAILED,
    "virus-scan-failed": LetterStatus.VIRUS_SCAN_FAILED,
}


def status_from_notify(value: str | None) -> LetterStatus:
    """Our status for Notify's ``status`` string. An unknown one is treated as pending (and
    logged): a new Notify status must never stop the sync, nor be taken as final."""
    status = _FROM_NOTIFY.get((value or "").strip().lower())
    if status is None:
        log.warning("unknown Notify letter status %r: treated as pending", value)
        return LetterStatus.PENDING
    return status


@dataclass(frozen=True)
class NotificationInfo:
    """What we keep of a Notify notification: ids, status and times. Notify's reply also holds
    the address; it is never copied here."""

    notify_id: str
    reference: str | None
    status: LetterStatus
    notify_status: str
    created_at: datetime | None = None
    template_id: str | None = None


@dataclass(frozen=True)
class SendReceipt:
    reference: str
    notify_id: str
    template_version: int | None = None
