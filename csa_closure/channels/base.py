"""The letter channel protocol: send one letter, look letters up.

Implemented by :class:`~csa_closure.channels.notify.NotifyChannel` (GOV.UK Notify) and
:class:`~csa_closure.simulation.fake_notify.FakeNotifyChannel` (the fake service, simulation).
The print-file channel
works a batch at a time instead (:class:`~csa_closure.channels.printfile.PrintFileChannel`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from csa_closure.channels.status import NotificationInfo, SendReceipt
from csa_closure.letters.compose import OutgoingLetter


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
