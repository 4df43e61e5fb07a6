"""Letter channels: GOV.UK Notify and print-vendor files.

- :class:`NotifyChannel`: the official client, rate limited, retried where safe, errors mapped
  to what the outbox does (:mod:`~csa_closure.channels.errors`);
- the same channel against a local, seeded, persistent fake of the service is simulation, not
  production: :mod:`csa_closure.simulation.fake_notify`;
- :func:`reconcile`: what an ``unknown`` letter is, by its reference, before any resend;
- :class:`PrintFileChannel` / :func:`write_print_batch` / :func:`write_print_frames`: Notify's
  bulk-upload CSV + manifest.
"""

from csa_closure.channels.base import LetterChannel, PrintChannel
from csa_closure.channels.errors import (
    AmbiguousSend,
    ChannelError,
    ChannelForbidden,
    ChannelMisconfigured,
    ChannelUnavailable,
    DailyLimitReached,
    LetterRejected,
)
from csa_closure.channels.notify import API_KEY_ENV, BASE_URL_ENV, NotifyChannel, RetryPolicy
from csa_closure.channels.printfile import (
    PrintBatch,
    PrintBatchConflict,
    PrintFile,
    PrintFileChannel,
    write_print_batch,
    write_print_frames,
)
from csa_closure.channels.ratelimit import TokenBucket
from csa_closure.channels.reconcile import ReconcileDecision, Reconciliation, reconcile
from csa_closure.channels.status import (
    RETENTION_DAYS,
    NotificationInfo,
    NotifyStatus,
    SendReceipt,
    status_from_notify,
)

__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "RETENTION_DAYS",
    "AmbiguousSend",
    "ChannelError",
    "ChannelForbidden",
    "ChannelMisconfigured",
    "ChannelUnavailable",
    "DailyLimitReached",
    "LetterChannel",
    "LetterRejected",
    "NotificationInfo",
    "NotifyChannel",
    "NotifyStatus",
    "PrintBatch",
    "PrintBatchConflict",
    "PrintChannel",
    "PrintFile",
    "PrintFileChannel",
    "ReconcileDecision",
    "Reconciliation",
    "RetryPolicy",
    "SendReceipt",
    "TokenBucket",
    "reconcile",
    "status_from_notify",
    "write_print_batch",
    "write_print_frames",
]
