"""The closed list of things a letter may say, besides the recipient's own address.

A template's placeholders are mapped (in configuration) onto these fields and nothing else.
None of them is about the other parent: there is no field that could carry their name,
address or whereabouts, so no configuration can put them in a letter.
"""

from __future__ import annotations

from enum import StrEnum

from csa_closure.letters.kinds import LetterPurpose


class LetterField(StrEnum):
    RECIPIENT_NAME = "recipient_name"  # the recipient's own name
    CASE_REFERENCE = "case_reference"  # the legacy case reference, e.g. C123456789
    AMOUNT = "amount"  # the amount the decision is about, e.g. "£1,234.56"
    LETTER_DATE = "letter_date"  # the date of this letter, e.g. "31 March 2019"
    DECISION_DATE = "decision_date"  # the date of the decision the letter reports
    RESPONSE_DEADLINE = "response_deadline"  # the last day a response is in time
    FIRST_LETTER_DATE = "first_letter_date"  # the date of the final-chance letter (reminder)


_COMMON = frozenset(
    {
        LetterField.RECIPIENT_NAME,
        LetterField.CASE_REFERENCE,
        LetterField.AMOUNT,
        LetterField.LETTER_DATE,
        LetterField.DECISION_DATE,
    }
)

# Which fields each purpose may carry: the response deadline only where there is a response
# to make.
FIELDS_FOR_PURPOSE: dict[LetterPurpose, frozenset[LetterField]] = {
    LetterPurpose.REPRESENTATION: _COMMON | {LetterField.RESPONSE_DEADLINE},
    LetterPurpose.REMINDER: _COMMON
    | {LetterField.RESPONSE_DEADLINE, LetterField.FIRST_LETTER_DATE},
    LetterPurpose.COLLECTION_REQUESTED: _COMMON,
    LetterPurpose.WRITE_OFF_NOTICE: _COMMON,
    LetterPurpose.TRANSFER_NOTICE: _COMMON,
}

# Personalisation keys Notify reserves for the address; a placeholder may not use them.
ADDRESS_KEYS = tuple(f"address_line_{n}" for n in range(1, 8))
RESERVED_PLACEHOLDERS = frozenset({*ADDRESS_KEYS, "postcode"})
