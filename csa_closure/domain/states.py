"""A debt's life: its states, the outcomes that place it, and every allowed transition.

This module is the single table of each state machine (debts, letters, letter batches,
transfer batches and items, runs, quarantine items). Stages never write ``debts.state``
directly: they call :func:`csa_closure.store.debts.move_debts`, which checks each move
against :data:`TRANSITIONS` and writes the event in the same transaction.

```
pulled --assess--> closed (nil) | write_off_pending | awaiting_letter | transfer_ready | review
awaiting_letter --letter sent--> awaiting_response
awaiting_response --COLLECT--> collect_requested
                  --DO_NOT_COLLECT / deadline passed--> write_off_pending (notice)
collect_requested --collectable--> transfer_ready
                  --not collectable--> write_off_pending (notice)
                  --NRP dispute--> review
write_off_pending --notices sent (where due), resolve--> written_off
transfer_ready --export--> transfer_sent --ack ACCEPTED--> transferred
                                         --ack REJECTED--> review
awaiting_letter / awaiting_response --letter undeliverable, caseworker--> review
review --caseworker decides--> any decided state
written_off --reverse (mirror ledger entry)--> review
```
"""

from __future__ import annotations

from enum import StrEnum


class DebtState(StrEnum):
    PULLED = "pulled"
    CLOSED = "closed"  # nil: nothing owed, no money moves
    WRITE_OFF_PENDING = "write_off_pending"  # decided to write off; notices may be due first
    AWAITING_LETTER = "awaiting_letter"  # representation decided; final-chance letter not sent
    AWAITING_RESPONSE = "awaiting_response"  # final-chance letter sent; window open
    COLLECT_REQUESTED = "collect_requested"  # PWC asked for collection
    TRANSFER_READY = "transfer_ready"
    TRANSFER_SENT = "transfer_sent"  # in a CMS package, not yet acknowledged
    TRANSFERRED = "transferred"  # acknowledged ACCEPTED by the CMS
    REVIEW = "review"  # a caseworker decides
    WRITTEN_OFF = "written_off"


class Outcome(StrEnum):
    WRITE_OFF_SILENT = "write_off_silent"
    WRITE_OFF_NOTICE = "write_off_notice"
    REPRESENTATION = "representation"
    TRANSFER = "transfer"
    MANUAL_REVIEW = "manual_review"
    NIL = "nil"


class Creditor(StrEnum):
    PWC = "PWC"
    SOS = "SOS"


# The creditor codes in order, for the modules that split money by creditor
CREDITORS: tuple[str, ...] = tuple(creditor.value for creditor in Creditor)


CLOSED_STATES = frozenset({DebtState.CLOSED, DebtState.WRITTEN_OFF, DebtState.TRANSFERRED})
OPEN_STATES = frozenset(set(DebtState) - CLOSED_STATES)

# Where a decision (by rules, collectability or a caseworker) places a debt.
STATE_FOR_OUTCOME: dict[Outcome, DebtState] = {
    Outcome.NIL: DebtState.CLOSED,
    Outcome.WRITE_OFF_SILENT: DebtState.WRITE_OFF_PENDING,
    Outcome.WRITE_OFF_NOTICE: DebtState.WRITE_OFF_PENDING,
    Outcome.REPRESENTATION: DebtState.AWAITING_LETTER,
    Outcome.TRANSFER: DebtState.TRANSFER_READY,
    Outcome.MANUAL_REVIEW: DebtState.REVIEW,
}

# Outcomes whose write-off must wait until both (living) parents have been sent a notice.
NOTICE_OUTCOMES = frozenset({Outcome.WRITE_OFF_NOTICE})

# Debts a decision may be (re)made for. A re-decision is only allowed while nothing has been
# done to the debt yet (no letter, no ledger entry, no transfer): the stage checks that too.
DECIDABLE_STATES = frozenset({DebtState.PULLED, DebtState.REVIEW})
REDECIDABLE_STATES = frozenset(
    {
        DebtState.CLOSED,
        DebtState.WRITE_OFF_PENDING,
        DebtState.AWAITING_LETTER,
        DebtState.TRANSFER_READY,
        DebtState.REVIEW,
    }
)

_decided = frozenset(STATE_FOR_OUTCOME.values())

# Every allowed move of a debt. The stage making a move names its event (``debt.decided``,
# ``debt.redecided``, ``debt.reviewed`` ...); the move itself must be in this table. A
# re-decision may keep the state (same outcome, another rule or rule-set version).
TRANSITIONS: frozenset[tuple[DebtState, DebtState]] = frozenset(
    {(DebtState.PULLED, to) for to in _decided}
    | {(frm, to) for frm in REDECIDABLE_STATES for to in _decided}
    | {
        (DebtState.AWAITING_LETTER, DebtState.AWAITING_RESPONSE),
        (DebtState.AWAITING_RESPONSE, DebtState.COLLECT_REQUESTED),
        (DebtState.AWAITING_RESPONSE, DebtState.WRITE_OFF_PENDING),
        (DebtState.COLLECT_REQUESTED, DebtState.TRANSFER_READY),
        (DebtState.COLLECT_REQUESTED, DebtState.WRITE_OFF_PENDING),
        (DebtState.COLLECT_REQUESTED, DebtState.REVIEW),
        (DebtState.TRANSFER_READY, DebtState.REVIEW),
        (DebtState.WRITE_OFF_PENDING, DebtState.WRITTEN_OFF),
        (DebtState.TRANSFER_READY, DebtState.TRANSFER_SENT),
        (DebtState.TRANSFER_SENT, DebtState.TRANSFERRED),
        (DebtState.TRANSFER_SENT, DebtState.REVIEW),
        (DebtState.WRITTEN_OFF, DebtState.REVIEW),
        # a caseworker takes over a debt whose letter could not reach the parent
        (DebtState.AWAITING_LETTER, DebtState.REVIEW),
        (DebtState.AWAITING_RESPONSE, DebtState.REVIEW),
    }
)


def transition_refusal(frm: DebtState | str, to: DebtState | str) -> str | None:
    """Why a debt may not move from ``frm`` to ``to``, or None when the move is allowed."""
    try:
        allowed = (DebtState(frm), DebtState(to)) in TRANSITIONS
    except ValueError:
        allowed = False
    return None if allowed else f"a debt cannot move from {frm!r} to {to!r}"


class LetterStatus(StrEnum):
    """A letter's status in the outbox. Notify's own letter statuses keep Notify's names."""

    PENDING = "pending"  # built into a batch, not sent
    HELD = "held"  # cannot be sent (held_reason: unusable address, recipient deceased, ...)
    SENDING = "sending"  # send intent committed; the call may or may not have reached Notify
    UNKNOWN = "unknown"  # ambiguous failure: reconcile by reference before any resend
    FAILED = "failed"  # refused by the channel (e.g. Notify 400), reason recorded
    ACCEPTED = "accepted"  # Notify accepted it
    SENT = "sent"  # handed to the print vendor in a print file
    RECEIVED = "received"  # Notify: printed and handed to the postal service
    CANCELLED = "cancelled"
    TECHNICAL_FAILURE = "technical-failure"
    PERMANENT_FAILURE = "permanent-failure"
    RETURNED = "returned-letter"


# Nothing more will happen to these without someone acting (a returned letter can still
# arrive for a received one within Notify's retention; sync keeps looking for it).
FINAL_LETTER_STATUSES = frozenset(
    {
        LetterStatus.HELD,
        LetterStatus.FAILED,
        LetterStatus.SENT,
        LetterStatus.RECEIVED,
        LetterStatus.CANCELLED,
        LetterStatus.TECHNICAL_FAILURE,
        LetterStatus.PERMANENT_FAILURE,
        LetterStatus.RETURNED,
    }
)
# The letter left us: it counts as sent (a response window starts; a notice was given).
DISPATCHED_LETTER_STATUSES = frozenset(
    {LetterStatus.ACCEPTED, LetterStatus.SENT, LetterStatus.RECEIVED, LetterStatus.RETURNED}
)
# No send is in flight or undecided: a write-off waiting for its notices may go ahead
# (a held or failed notice means the parent could not be told, and their debt is flagged).
SETTLED_LETTER_STATUSES = FINAL_LETTER_STATUSES | {LetterStatus.ACCEPTED}


class BatchStatus(StrEnum):
    """A letter batch's status (``letter_batches.status``)."""

    BUILT = "built"  # made by `notify build`; waits for a second person
    APPROVED = "approved"  # approved by someone other than its builder; may be sent
    SENDING = "sending"  # a send has started; letters remain to send or to reconcile
    STOPPED = "stopped"  # the last send stopped early (stop_reason); `notify send` resumes
    SENT = "sent"  # every letter sent, held, failed or cancelled: nothing in flight


BATCH_TRANSITIONS: frozenset[tuple[BatchStatus, BatchStatus]] = frozenset(
    {
        (BatchStatus.BUILT, BatchStatus.APPROVED),
        (BatchStatus.APPROVED, BatchStatus.SENDING),
        (BatchStatus.SENDING, BatchStatus.STOPPED),
        (BatchStatus.SENDING, BatchStatus.SENT),
        (BatchStatus.STOPPED, BatchStatus.SENDING),
        # `notify sync --resend`: a sent batch with letters to send again after a technical
        # failure is sending until they are
        (BatchStatus.SENT, BatchStatus.SENDING),
    }
)


class TransferBatchStatus(StrEnum):
    """A CMS transfer package (``transfer_batches.status``)."""

    EXPORTING = "exporting"  # recorded, its debts moved; the package file not yet complete
    EXPORTED = "exported"  # the package and its manifest are written
    ACKNOWLEDGED = "acknowledged"  # the CMS acknowledgement was imported


TRANSFER_BATCH_TRANSITIONS: frozenset[tuple[TransferBatchStatus, TransferBatchStatus]] = frozenset(
    {
        (TransferBatchStatus.EXPORTING, TransferBatchStatus.EXPORTED),
        (TransferBatchStatus.EXPORTED, TransferBatchStatus.ACKNOWLEDGED),
    }
)


class TransferItemStatus(StrEnum):
    """One debt in a transfer package (``transfer_items.status``)."""

    EXPORTED = "exported"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


TRANSFER_ITEM_TRANSITIONS: frozenset[tuple[TransferItemStatus, TransferItemStatus]] = frozenset(
    {
        (TransferItemStatus.EXPORTED, TransferItemStatus.ACCEPTED),
        (TransferItemStatus.EXPORTED, TransferItemStatus.REJECTED),
    }
)


class RunStatus(StrEnum):
    """A stage run's status (``stage_runs.status``)."""

    RUNNING = "running"
    COMPLETED = "completed"
    REFUSED = "refused"  # refused before it did anything (a lease held by another run)
    UNBALANCED = "unbalanced"  # money did not reconcile; the run is not completed
    INTERRUPTED = "interrupted"  # Ctrl-C or SIGTERM: the open chunk rolled back
    FAILED = "failed"
    ABANDONED = "abandoned"  # its lease was taken over (the process died mid-run)


# A run ends exactly once, from running.
RUN_TRANSITIONS: frozenset[tuple[RunStatus, RunStatus]] = frozenset(
    (RunStatus.RUNNING, end) for end in RunStatus if end is not RunStatus.RUNNING
)


class QuarantineStatus(StrEnum):
    """A quarantined source item (``quarantine.status``)."""

    HELD = "held"
    RELEASED = "released"  # fixed at source; its case loads in the same pull
