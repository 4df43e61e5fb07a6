"""Review and decision codes: what the code writes in ``debts.review_reason``, ``debts.reason``
and ``debts.rule_id`` when a stage (not a rule set) decides, and the ledger's entry types.

Gathered here so a reader finds every code in one place. Codes are upper case, so they can
be filtered on and never carry free text (or personal data); the rule sets' own reasons
(rules/*.toml) and the quarantine reasons (legacy/reasons.py) are listed where they are
defined. A ``*Prefix`` code is followed by another code (``REVERSED:NRP_TRACED``);
``coded`` joins them, cut to the column's 64 characters.
"""

from __future__ import annotations

from enum import StrEnum

REVIEW_REASON_LENGTH = 64  # debts.review_reason


class ReviewReason(StrEnum):
    """Why a debt waits for a caseworker (``debts.review_reason``)."""

    CASEWORKER_REFERRAL = "CASEWORKER_REFERRAL"  # referred by a caseworker (review refer)
    NRP_DISPUTE = "NRP_DISPUTE"  # the NRP disputes the amount
    NRP_DISPUTE_IN_TRANSFER = "NRP_DISPUTE_IN_TRANSFER"  # ... while the CMS considers it
    IN_TIME_RESPONSE_AFTER_EXPIRY = "IN_TIME_RESPONSE_AFTER_EXPIRY"
    IN_TIME_RESPONSE_AFTER_WRITE_OFF = "IN_TIME_RESPONSE_AFTER_WRITE_OFF"
    CMS_REJECTED = "CMS_REJECTED"  # the CMS acknowledged the transfer REJECTED
    # the final-chance letter could not be shown to have reached the parent
    LETTER_RETURNED = "LETTER_RETURNED"
    LETTER_PERMANENT_FAILURE = "LETTER_PERMANENT_FAILURE"
    LETTER_TECHNICAL_FAILURE = "LETTER_TECHNICAL_FAILURE"  # an operator settles it
    LETTER_UNDELIVERABLE = "LETTER_UNDELIVERABLE"  # settled as undeliverable by an operator
    LETTER_DUPLICATED = "LETTER_DUPLICATED"
    LETTER_UNCONFIRMED = "LETTER_UNCONFIRMED"
    LETTER_SENT_DEBT_MOVED = "LETTER_SENT_DEBT_MOVED"


class ReviewReasonPrefix(StrEnum):
    """Review reasons that carry a second code after the colon."""

    REVERSED = "REVERSED:"  # a write-off reversed (the operator's reason code)
    CMS_REJECTED = "CMS_REJECTED:"  # the CMS's own rejection code
    LETTER_HELD = "LETTER_HELD:"  # the letter's held reason
    LETTER_FAILED = "LETTER_FAILED:"  # the channel's refusal


def coded(prefix: ReviewReasonPrefix, code: str) -> str:
    """``prefix`` and ``code`` as one review reason, cut to the column's length."""
    return f"{prefix.value}{code}"[:REVIEW_REASON_LENGTH]


class DecisionReason(StrEnum):
    """Reasons a stage writes in ``debts.reason`` when it decides (not a rule set)."""

    FINAL_CHANCE_DECLINED = "FINAL_CHANCE_DECLINED"  # the PWC answered DO_NOT_COLLECT
    NO_RESPONSE = "NO_RESPONSE"  # the response window passed (resolve's expiry)


# ``debts.rule_id`` when a decision was not a rule set's
CASEWORKER_RULE = "caseworker"
RULE_DECLINED = "final_chance.declined"


class Response(StrEnum):
    """A parent's answer to the final chance (``debts.response``)."""

    COLLECT = "COLLECT"
    DO_NOT_COLLECT = "DO_NOT_COLLECT"
    DISPUTE_AMOUNT = "DISPUTE_AMOUNT"  # the NRP's


class LedgerEntryType(StrEnum):
    WRITE_OFF = "write_off"
    REVERSAL = "reversal"  # the mirror of a write-off, undoing it
