"""Every event type the code writes to the event log, in one place.

:func:`csa_closure.store.events.record` and ``record_frame`` refuse any other name, so a new
kind of event is added here first (and is then findable by every report that reads events).
A ``StrEnum``: each member is its own string, so the drivers write the name itself
(psycopg dumps a plain ``Enum`` by member name).
"""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    # pull
    DEBT_PULLED = "debt.pulled"
    DEBT_REFRESHED = "debt.refreshed"  # an undecided debt's source balance changed
    DEBT_SOURCE_DRIFT = "debt.source_drift"  # a decided debt's source balance changed
    PARTY_UPDATED = "party.updated"
    CASE_QUARANTINED = "case.quarantined"
    CASE_RELEASED = "case.released"
    # decisions: assess, resolve (collectability), a caseworker's review
    DEBT_DECIDED = "debt.decided"
    DEBT_REDECIDED = "debt.redecided"
    DEBT_COLLECTABILITY_DECIDED = "debt.collectability_decided"
    DEBT_REVIEWED = "debt.reviewed"
    DEBT_REFERRED = "debt.referred"  # to a caseworker
    # letters
    LETTER_RETURN_UNMATCHED = "letter.return_unmatched"
    LETTERS_UPLOAD_REPORT = "letters.upload_report"
    # one event per move of many letters (their history rows hold each letter's change)
    LETTERS_BUILT = "letters.built"
    LETTERS_STATUS_CHANGED = "letters.status_changed"
    BATCH_BUILT = "batch.built"
    BATCH_APPROVED = "batch.approved"
    BATCH_SENDING = "batch.sending"
    BATCH_STOPPED = "batch.stopped"
    BATCH_SENT = "batch.sent"
    BATCH_PRINTING = "batch.printing"  # detail: the directory the batch's files are written in
    DEBT_FLAGGED = "debt.flagged"
    DEBT_FLAG_CLEARED = "debt.flag_cleared"
    DEBT_FINAL_CHANCE_SENT = "debt.final_chance_sent"
    # responses
    RESPONSES_IMPORTED = "responses.imported"
    DEBT_COLLECT_REQUESTED = "debt.collect_requested"
    DEBT_FINAL_CHANCE_DECLINED = "debt.final_chance_declined"
    DEBT_RESPONSE_AFTER_WRITE_OFF = "debt.response_after_write_off"
    DEBT_DISPUTED = "debt.disputed"
    # resolve and the ledger
    DEBT_EXPIRED = "debt.expired"  # the response window passed
    DEBT_WRITTEN_OFF = "debt.written_off"
    DEBT_WRITE_OFF_REVERSED = "debt.write_off_reversed"
    # transfer to the CMS
    TRANSFER_BATCH_CREATED = "transfer.batch_created"
    TRANSFER_BATCH_EXPORTED = "transfer.batch_exported"
    DEBT_TRANSFER_SENT = "debt.transfer_sent"
    TRANSFER_ACK_IMPORTED = "transfer.ack_imported"
    TRANSFER_BATCH_ACKNOWLEDGED = "transfer.batch_acknowledged"
    DEBT_TRANSFERRED = "debt.transferred"
    DEBT_TRANSFER_REJECTED = "debt.transfer_rejected"
    # runs
    LEASE_TAKEN_OVER = "lease.taken_over"


def as_event_type(name: EventType | str) -> EventType:
    """``name`` as an :class:`EventType`, or ``ValueError`` naming the vocabulary's module."""
    try:
        return EventType(name)
    except ValueError:
        raise ValueError(
            f"{name!r} is not an event type: add it to csa_closure.domain.events.EventType "
            "before writing it"
        ) from None


# The events that record a decision in their detail: assess (first decision and re-decision),
# resolve (collectability) and a caseworker's review; the detail keys each of them holds.
DECISION_EVENTS = (
    EventType.DEBT_DECIDED,
    EventType.DEBT_REDECIDED,
    EventType.DEBT_COLLECTABILITY_DECIDED,
    EventType.DEBT_REVIEWED,
)
DECISION_DETAIL_KEYS = ("ruleset_hash", "rule_id", "outcome", "reason")
