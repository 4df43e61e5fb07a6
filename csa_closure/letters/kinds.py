"""What letters exist: a purpose, and the parent it goes to.

Only the pairs in :data:`ALLOWED_LETTERS` are letters at all. Nothing is written for a
``write_off_silent`` or ``nil`` outcome, and no purpose has a letter that goes to one parent
about the other: every letter carries only its own recipient's details.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LetterPurpose(StrEnum):
    REPRESENTATION = "representation"  # the final chance, to the person with care
    REMINDER = "reminder"  # day 21 of the window, if no response yet
    COLLECTION_REQUESTED = "collection_requested"  # to the paying parent, after COLLECT
    WRITE_OFF_NOTICE = "write_off_notice"  # to both (living) parents
    TRANSFER_NOTICE = "transfer_notice"  # to both (living) parents of a PWC debt


class Recipient(StrEnum):
    PWC = "PWC"  # person with care
    NRP = "NRP"  # non-resident (paying) parent


@dataclass(frozen=True, order=True)
class LetterKind:
    """One kind of letter: a purpose sent to one parent. Each kind has its own template."""

    purpose: LetterPurpose
    recipient: Recipient

    @property
    def key(self) -> str:
        """``representation.PWC``: how the configuration and the print files name it."""
        return f"{self.purpose.value}.{self.recipient.value}"

    @classmethod
    def parse(cls, key: str) -> LetterKind:
        purpose, _, recipient = key.partition(".")
        kind = cls(LetterPurpose(purpose), Recipient(recipient))
        if kind not in ALLOWED_LETTERS:
            raise ValueError(f"{key!r} is not a letter this toolkit sends")
        return kind

    def __str__(self) -> str:
        return self.key


ALLOWED_LETTERS: frozenset[LetterKind] = frozenset(
    {
        LetterKind(LetterPurpose.REPRESENTATION, Recipient.PWC),
        LetterKind(LetterPurpose.REMINDER, Recipient.PWC),
        LetterKind(LetterPurpose.COLLECTION_REQUESTED, Recipient.NRP),
        LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.PWC),
        LetterKind(LetterPurpose.WRITE_OFF_NOTICE, Recipient.NRP),
        LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.PWC),
        LetterKind(LetterPurpose.TRANSFER_NOTICE, Recipient.NRP),
    }
)


def letter_kind(purpose: LetterPurpose | str, recipient: Recipient | str) -> LetterKind:
    """The kind for ``purpose`` to ``recipient``; ``ValueError`` if no such letter exists."""
    kind = LetterKind(LetterPurpose(purpose), Recipient(recipient))
    if kind not in ALLOWED_LETTERS:
        raise ValueError(f"there is no {kind.purpose.value} letter to the {kind.recipient.value}")
    return kind
