"""Quarantine reason codes: why a legacy row was held back from the pull.

Defined once, here. Each code has a one-line description written for operators (shown by
reports and the runbook). A quarantine item carries a list of reasons, each a mapping
``{"code", "table", "field", "detail"}``: ``table``/``field`` name the legacy column, and
``detail`` never carries personal data (no value from a party column is ever quoted).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    BAD_DATE = "BAD_DATE"
    FUTURE_EFFECTIVE_DATE = "FUTURE_EFFECTIVE_DATE"
    MISSING_VALUE = "MISSING_VALUE"
    BAD_REFERENCE = "BAD_REFERENCE"
    UNKNOWN_PARTY = "UNKNOWN_PARTY"
    SAME_PARTY = "SAME_PARTY"
    ORPHAN_DEBT = "ORPHAN_DEBT"
    ORPHAN_PAYMENT = "ORPHAN_PAYMENT"
    DUPLICATE_DEBT = "DUPLICATE_DEBT"
    BAD_AMOUNT = "BAD_AMOUNT"
    CREDIT_BALANCE = "CREDIT_BALANCE"
    UNKNOWN_CODE = "UNKNOWN_CODE"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS: dict[Reason, str] = {
    Reason.BAD_DATE: "A date that does not parse in the system's format, or does not exist "
    "(31/02/2009); fix the date at source.",
    Reason.FUTURE_EFFECTIVE_DATE: "The case's effective date is after the replica's as-at date "
    "(extract_control.as_at).",
    Reason.MISSING_VALUE: "A value the closure needs is empty: effective date, a parent "
    "reference, a flag, a creditor, an amount or a date.",
    Reason.BAD_REFERENCE: "The case reference is not in the system's format (CSCS C + 9 digits, "
    "CS2 S + 9 digits).",
    Reason.UNKNOWN_PARTY: "The case points at a client/party that is not in the party table.",
    Reason.SAME_PARTY: "The case names the same client/party as both parents.",
    Reason.ORPHAN_DEBT: "A debt row whose case is not in the case table; held under the case "
    "reference it carries.",
    Reason.ORPHAN_PAYMENT: "A payment row whose case is not in the case table; held under the "
    "case reference it carries.",
    Reason.DUPLICATE_DEBT: "More than one debt row for the same case and creditor.",
    Reason.BAD_AMOUNT: "A balance or payment amount that is not a number in the system's money "
    "format (counted as zero pence).",
    Reason.CREDIT_BALANCE: "A negative (credit) debt balance.",
    Reason.UNKNOWN_CODE: "A flag, scheme, enforcement, employment or creditor code the system "
    "does not define.",
}

ITEM_CASE = "case"
ITEM_ORPHAN_DEBT = "orphan_debt"
ITEM_ORPHAN_PAYMENT = "orphan_payment"
ITEM_KINDS = (ITEM_CASE, ITEM_ORPHAN_DEBT, ITEM_ORPHAN_PAYMENT)
