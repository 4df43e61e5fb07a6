"""The channel protocols.

:class:`LetterChannel`: send one letter, look letters up. Implemented by
:class:`~csa_closure.channels.notify.NotifyChannel` (GOV.UK Notify) and
:class:`~csa_closure.simulation.fake_notify.FakeNotifyChannel` (the fake service, simulation).

:class:`PrintChannel`: a whole batch at a time, as files under ``out_dir``. Implemented by
:class:`~csa_closure.channels.printfile.PrintFileChannel` (Notify's bulk-upload CSV and a
manifest, for a print vendor).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import polars as pl

from csa_closure.channels.status import NotificationInfo, SendReceipt
from csa_closure.letters.compose import OutgoingLetter

if TYPE_CHECKING:
    from csa_closure.channels.printfile import PrintBatch


@runtime_checkable
class LetterChannel(Protocol):
    name: str

    def send(self, letter: OutgoingLetter) -> SendReceipt:
        """Send one letter; raises a ``ChannelError`` (see ``channels.errors``)."""
        ...

    def find_by_reference(self, reference: str) -> list[NotificationInfo]:
        """The letters the service holds with this reference, oldest first."""
        ...

    def get_status(self, notify_id: str) -> NotificationInfo | None:
        """One letter's status; ``None`` if the service has no such letter (any more)."""
        ...

    def get_statuses(self, notify_ids: Iterable[str]) -> dict[str, NotificationInfo | None]: ...


@runtime_checkable
class PrintChannel(Protocol):
    name: str
    out_dir: Path  # each batch's files go in a directory of their own under it

    def write_frames(self, batch_id: int | str, frames: Iterable[pl.DataFrame]) -> PrintBatch:
        """Write (or find already written, identical) the files of batch ``batch_id`` from its
        letters composed as frames (``compose_frame``'s columns), in print order; raises
        ``PrintBatchConflict`` if different files are there."""
        ...
