"""What a send is told and what it says: its options, its stops and its result (shared by the
Notify path, the print-file path and ``notify settle``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from csa_closure.channels.reconcile import SETTLE
from csa_closure.domain.events import EventType
from csa_closure.domain.states import BatchStatus, LetterStatus
from csa_closure.errors import CsaClosureError, ExitCode, UsageError
from csa_closure.stages.letters_outbox import quota

OPEN_STATUSES = (LetterStatus.PENDING.value, LetterStatus.SENDING.value, LetterStatus.UNKNOWN.value)
IN_FLIGHT = (LetterStatus.SENDING.value, LetterStatus.UNKNOWN.value)
SENDABLE_BATCH_STATUSES = (
    BatchStatus.APPROVED.value,
    BatchStatus.SENDING.value,
    BatchStatus.STOPPED.value,
    BatchStatus.SENT.value,
)
RECORD_TRIES = 3
PRINTING_EVENT = EventType.BATCH_PRINTING  # detail: the directory the files are written in


class StopCode:
    QUOTA_USED = "QUOTA_USED"  # our persisted daily quota for the channel is used
    DAILY_LIMIT = "DAILY_LIMIT"  # the channel said its daily limit is reached
    FORBIDDEN = "FORBIDDEN"
    MISCONFIGURED = "MISCONFIGURED"
    UNAVAILABLE = "UNAVAILABLE"
    OUTAGE = "OUTAGE"  # several ambiguous sends in a row
    BATCH_REJECTED = "BATCH_REJECTED"  # a 400 every letter would get
    TEMPLATE_MISMATCH = "TEMPLATE_MISMATCH"  # Notify's templates and the configuration differ
    RECONCILE_WAIT = "RECONCILE_WAIT"  # not a stop: letters wait to be reconciled


RESUME_TOMORROW = (StopCode.QUOTA_USED, StopCode.DAILY_LIMIT)


@dataclass(frozen=True)
class Stop:
    code: str
    message: str  # never personal data

    @property
    def needs_person(self) -> bool:
        return self.code not in RESUME_TOMORROW


@dataclass
class SendOptions:
    daily_limit: int | None = quota.DEFAULT_DAILY_LIMIT  # None: no daily limit (print files)
    intent_group: int = 100  # letters whose intent is committed together before their calls
    max_ambiguous_in_a_row: int = 3  # then the batch stops: an outage
    settle: timedelta = SETTLE  # how long Notify may take to show a letter it accepted
    read_size: int = 2_000  # letters read (and composed) at a time
    # print files: letters screened, marked and composed at a time (each marking one
    # transaction); the files take every chunk in turn, streamed
    print_chunk: int = 20_000

    def __post_init__(self) -> None:
        if self.intent_group < 1 or self.read_size < 1 or self.print_chunk < 1:
            raise UsageError("the intent group, read size and print chunk must be at least 1")
        if self.daily_limit is not None and self.daily_limit < 0:
            raise UsageError("the daily limit cannot be negative")


@dataclass
class PrintFiles:
    directory: str
    manifest_sha256: str
    written: bool  # False: the files were there already (a re-run)
    files: list[dict[str, Any]]


@dataclass
class SendResult:
    """What a send did. JSON keys are these names (runbooks/03-letters.md)."""

    run_id: int | None
    batch_id: int
    channel: str
    as_of: str
    batch_status: str = ""
    stop_code: str | None = None
    stop_message: str | None = None
    accepted: int = 0  # Notify accepted (this run)
    sent: int = 0  # written to print files (this run)
    unknown: int = 0  # ambiguous: reconciled by reference before any resend
    failed: int = 0  # refused by the channel (400)
    held: int = 0  # not sendable now (address, recipient changed, fact missing)
    cancelled: int = 0  # no longer due
    reconciled: dict[str, int] = field(default_factory=dict)  # decision -> letters
    debts_moved: int = 0  # final-chance letters that started a response window
    debts_flagged: int = 0
    remaining: int = 0  # letters of the batch still pending, sending or unknown
    by_status: dict[str, int] = field(default_factory=dict)  # the batch's letters now
    quota: dict[str, Any] = field(default_factory=dict)
    print_files: PrintFiles | None = None


class BatchStopped(CsaClosureError):
    """The send stopped and needs a person (the message says why and what to do); everything
    done before the stop is recorded. ``result`` has the figures."""

    exit_code = ExitCode.VERIFY_FAILED

    def __init__(self, message: str, result: SendResult) -> None:
        super().__init__(message)
        self.result = result


def counts(result: SendResult) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "sent": result.sent,
        "unknown": result.unknown,
        "failed": result.failed,
        "held": result.held,
        "cancelled": result.cancelled,
        "reconciled": dict(result.reconciled),
        "debts_moved": result.debts_moved,
        "remaining": result.remaining,
        "stop_code": result.stop_code,
    }
