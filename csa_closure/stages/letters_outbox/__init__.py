"""The letters outbox: build batches of the letters due, approve them (a second person), send
them through GOV.UK Notify or as print-vendor files exactly once, and keep their statuses.

One module per step:

- :mod:`.build`: ``build_batch`` (``notify build``);
- :mod:`.approve`: ``approve_batch`` (``notify approve``, maker-checker);
- :mod:`.send`: ``send_batch`` (``notify send``: the send protocol, print files);
- :mod:`.sync`: ``sync_letters``, ``record_returned`` and ``settle_letter`` (``notify sync``,
  ``notify returned``, ``notify settle``);
- :mod:`.status`: ``outbox_status`` (``notify status``);
- :mod:`.quota`: the persisted daily quota per channel;
- :mod:`.outgoing`, :mod:`.outcomes`, :mod:`.common`: reading, composing and recording.

Runbook: ``runbooks/03-letters.md``.
"""

from csa_closure.stages.letters_outbox.approve import (
    ApproveResult,
    MakerCheckerRefused,
    approve_batch,
)
from csa_closure.stages.letters_outbox.build import BuildResult, build_batch
from csa_closure.stages.letters_outbox.common import (
    CHANNELS,
    FAKE_NOTIFY,
    GOVUK_NOTIFY,
    NOTIFY_CHANNELS,
    PRINT_FILE,
    batch_lease,
)
from csa_closure.stages.letters_outbox.quota import DEFAULT_DAILY_LIMIT
from csa_closure.stages.letters_outbox.send import (
    BatchStopped,
    SendOptions,
    SendResult,
    send_batch,
)
from csa_closure.stages.letters_outbox.status import OutboxStatus, outbox_status
from csa_closure.stages.letters_outbox.sync import (
    SettleAction,
    SettleResult,
    SyncResult,
    UploadResult,
    record_returned,
    record_upload_report,
    settle_letter,
    sync_letters,
)

__all__ = [
    "CHANNELS",
    "DEFAULT_DAILY_LIMIT",
    "FAKE_NOTIFY",
    "GOVUK_NOTIFY",
    "NOTIFY_CHANNELS",
    "PRINT_FILE",
    "ApproveResult",
    "BatchStatus",
    "BatchStopped",
    "BuildResult",
    "MakerCheckerRefused",
    "OutboxStatus",
    "SendOptions",
    "SendResult",
    "SettleAction",
    "SettleResult",
    "SyncResult",
    "UploadResult",
    "approve_batch",
    "batch_lease",
    "build_batch",
    "outbox_status",
    "record_returned",
    "record_upload_report",
    "send_batch",
    "settle_letter",
    "sync_letters",
]
