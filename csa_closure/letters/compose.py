"""Composing a letter: the personalisation Notify fills the template with.

:func:`compose` is given the recipient and nothing about the other parent, so it cannot put
the other parent in a letter: the personalisation holds the recipient's own name and address,
the case reference, the amount and dates of the decision, and the response deadline where
there is one — each placeholder filled from the closed list in
:mod:`csa_closure.letters.fields`.

Personal data is composed at send time and never stored outside ``parties``: the outbox keeps
the reference and the letter kind, not the text.

:func:`compose_frame` composes a whole frame of letters at once (polars expressions, no Python
per letter) for the print files: for every letter it says whether :func:`prepare_letter` would
compose it and, if so, gives exactly the values it would (proven against :func:`prepare_letter`
by ``tests/letters/test_letters_compose_frame.py``). Why a letter cannot be composed is
:func:`compose`'s to say.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import polars as pl

from csa_closure.errors import CsaClosureError
from csa_closure.letters.address import (
    PARTY_COLUMNS,
    AddressProblem,
    address_frame,
    address_lines,
    check_address,
)
from csa_closure.letters.config import LettersConfig
from csa_closure.letters.fields import ADDRESS_KEYS, LetterField
from csa_closure.letters.kinds import (
    ALLOWED_LETTERS,
    LetterKind,
    LetterPurpose,
    Recipient,
    letter_kind,
)
from csa_closure.letters.references import REFERENCE_HEX_CHARS, REFERENCE_PREFIX, is_reference

_CASE_REF = re.compile(r"^[A-Z0-9]{1,16}$")
_MONTH_NAMES = (
    "January February March April May June July August September October November December"
)
_MONTHS = _MONTH_NAMES.split()


class LetterNotAllowed(CsaClosureError):
    """This letter must not be composed (no such letter, recipient deceased, unusable address,
    a fact it needs is missing). The message names the letter kind and the reason only."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class AddressNotUsable(LetterNotAllowed):
    def __init__(self, kind: LetterKind, problem: AddressProblem) -> None:
        super().__init__(f"{kind.key}: address not usable ({problem.reason})", code=problem.reason)
        self.problem = problem


@dataclass(frozen=True)
class RecipientParty:
    """The one parent a letter goes to. Personal fields are left out of ``repr`` so they never
    reach a log line or a traceback by accident."""

    party_ref: str
    given_names: str | None = field(default=None, repr=False)
    family_name: str | None = field(default=None, repr=False)
    address_line_1: str | None = field(default=None, repr=False)
    address_line_2: str | None = field(default=None, repr=False)
    address_line_3: str | None = field(default=None, repr=False)
    address_line_4: str | None = field(default=None, repr=False)
    address_line_5: str | None = field(default=None, repr=False)
    postcode: str | None = field(default=None, repr=False)
    deceased_on: date | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RecipientParty:
        """From a ``parties`` row (or any mapping with its column names)."""
        return cls(
            party_ref=str(row["party_ref"]),
            given_names=row.get("given_names"),
            family_name=row.get("family_name"),
            address_line_1=row.get("address_line_1"),
            address_line_2=row.get("address_line_2"),
            address_line_3=row.get("address_line_3"),
            address_line_4=row.get("address_line_4"),
            address_line_5=row.get("address_line_5"),
            postcode=row.get("postcode"),
            deceased_on=row.get("deceased_on"),
        )

    def deceased_by(self, day: date) -> bool:
        return self.deceased_on is not None and self.deceased_on <= day


@dataclass(frozen=True)
class LetterFacts:
    """What the letter says about the case and the decision. Nothing personal."""

    case_ref: str
    amount_pence: int
    letter_date: date
    decision_date: date | None = None
    response_deadline: date | None = None  # representation: computed from the window if None
    first_letter_date: date | None = None  # reminder: the final-chance letter's date


@dataclass(frozen=True)
class ResponseWindow:
    letter_date: date
    reminder_due: date
    response_deadline: date  # a response on or before this day is in time


@dataclass(frozen=True)
class OutgoingLetter:
    """A composed letter, ready for a channel. ``personalisation`` holds personal data and is
    kept out of ``repr``."""

    reference: str
    kind: LetterKind
    template_id: str
    personalisation: Mapping[str, str] = field(repr=False)


def response_window(letter_date: date, config: LettersConfig) -> ResponseWindow:
    """The final-chance window opened by a letter dated ``letter_date``. The outbox stores
    the deadline and reminder date on the debt from this, and the letter prints the same."""
    return ResponseWindow(
        letter_date=letter_date,
        reminder_due=letter_date + timedelta(days=config.reminder_after_days),
        response_deadline=letter_date + timedelta(days=config.response_days),
    )


def format_pence(pence: int) -> str:
    """``£1,234.56`` from integer pence, exactly. Letters never state a negative amount."""
    if isinstance(pence, bool) or not isinstance(pence, int):
        raise TypeError("money is integer pence")
    if pence < 0:
        raise ValueError("a letter cannot state a negative amount")
    pounds, part = divmod(pence, 100)
    return f"£{pounds:,}.{part:02d}"


def format_date(day: date) -> str:
    """``31 March 2019``: the GOV.UK style for dates in letters."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def compose(
    purpose: LetterPurpose | str,
    recipient: Recipient | str,
    party: RecipientParty,
    facts: LetterFacts,
    config: LettersConfig,
) -> dict[str, str]:
    """The personalisation for a ``purpose`` letter to ``party`` (who is the ``recipient``):
    the address lines ``address_line_1`` .. ``address_line_N`` (the name first, the postcode
    last, 3 <= N <= 7), then the template's placeholders.

    Raises ``LetterNotAllowed`` (no such letter; recipient deceased by the letter date; a fact
    the template needs is missing) or ``AddressNotUsable``.
    """
    try:
        kind = letter_kind(purpose, recipient)
    except ValueError as exc:
        raise LetterNotAllowed(str(exc), code="NO_SUCH_LETTER") from None
    if party.deceased_by(facts.letter_date):
        raise LetterNotAllowed(
            f"{kind.key}: the recipient is recorded as deceased", code="DECEASED"
        )
    problem = check_address(party)
    if problem is not None:
        raise AddressNotUsable(kind, problem)
    values = _field_values(kind, party, facts, config)
    personalisation = dict(zip(ADDRESS_KEYS, address_lines(party), strict=False))
    for name, letter_field in config.template(kind).placeholders:
        value = values.get(letter_field)
        if value is None:
            raise LetterNotAllowed(
                f"{kind.key}: the template needs {letter_field.value}, which is not known",
                code=f"MISSING_{letter_field.value.upper()}",
            )
        personalisation[name] = value
    return personalisation


def prepare_letter(
    reference: str,
    purpose: LetterPurpose | str,
    recipient: Recipient | str,
    party: RecipientParty,
    facts: LetterFacts,
    config: LettersConfig,
) -> OutgoingLetter:
    """:func:`compose`, with the template id and the letter's reference, for a channel."""
    if not is_reference(reference):
        raise ValueError("a letter reference is made by new_reference()")
    kind = letter_kind(purpose, recipient)
    personalisation = compose(kind.purpose, kind.recipient, party, facts, config)
    return OutgoingLetter(reference, kind, config.template(kind).template_id, personalisation)


def _field_values(
    kind: LetterKind, party: RecipientParty, facts: LetterFacts, config: LettersConfig
) -> dict[LetterField, str | None]:
    if not _CASE_REF.fullmatch(facts.case_ref):
        raise ValueError("a case reference is up to 16 capital letters and digits")
    deadline = facts.response_deadline
    if deadline is None and kind.purpose is LetterPurpose.REPRESENTATION:
        deadline = response_window(facts.letter_date, config).response_deadline
    return {
        LetterField.RECIPIENT_NAME: address_lines(party)[0],
        LetterField.CASE_REFERENCE: facts.case_ref,
        LetterField.AMOUNT: format_pence(facts.amount_pence),
        LetterField.LETTER_DATE: format_date(facts.letter_date),
        LetterField.DECISION_DATE: _date_or_none(facts.decision_date),
        LetterField.RESPONSE_DEADLINE: _date_or_none(deadline),
        LetterField.FIRST_LETTER_DATE: _date_or_none(facts.first_letter_date),
    }


def _date_or_none(day: date | None) -> str | None:
    return None if day is None else format_date(day)


# --- a frame of letters at once -------------------------------------------------------------

# What compose_frame reads: the letter, its recipient (RecipientParty's fields) and its facts
# (LetterFacts' fields).
LETTER_FRAME_SCHEMA: dict[str, pl.DataType] = {
    "reference": pl.String(),
    "purpose": pl.String(),
    "recipient": pl.String(),
    **{name: pl.String() for name in PARTY_COLUMNS},
    "deceased_on": pl.Date(),
    "case_ref": pl.String(),
    "amount_pence": pl.Int64(),
    "letter_date": pl.Date(),
    "decision_date": pl.Date(),
    "response_deadline": pl.Date(),
    "first_letter_date": pl.Date(),
}
_REFERENCE_FRAME = rf"^{REFERENCE_PREFIX}[0-9a-f]{{{REFERENCE_HEX_CHARS}}}$"


def compose_frame(letters: pl.DataFrame, config: LettersConfig) -> pl.DataFrame:
    """:func:`prepare_letter` for every letter of ``letters`` (the columns of
    :data:`LETTER_FRAME_SCHEMA`) at once. One row per letter, in order:

    - ``composable``: whether :func:`prepare_letter` composes it (False: it raises; ask it why);
    - ``reference``, ``kind`` (``representation.PWC``) and ``template_id``;
    - ``address_line_1`` .. ``address_line_7``: the address as composed (null after the last);
    - one column per :class:`LetterField`, named by its value (``amount``: ``£1,234.56``), as
      the letter's placeholders are filled with it (null where the letter has no such value).

    The letter's personalisation is the address lines and, for each of its template's
    placeholders, the column of the field it is filled with. Nothing here is logged or kept.
    """
    frame = letters.select(pl.col(name).cast(dtype) for name, dtype in LETTER_FRAME_SCHEMA.items())
    address = address_frame(frame.select(PARTY_COLUMNS))
    kind = pl.concat_str("purpose", pl.lit("."), "recipient")
    templates = {k.key: config.template(k) for k in sorted(ALLOWED_LETTERS)}
    letter_date = pl.col("letter_date")
    representation = pl.col("purpose") == LetterPurpose.REPRESENTATION.value
    window = representation & pl.col("response_deadline").is_null()  # compose works it out
    window_end = date.max - timedelta(days=config.response_days)  # a later letter overflows
    deadline = pl.coalesce(
        "response_deadline",
        pl.when(window).then(letter_date + timedelta(days=config.response_days)),
    )
    values = frame.select(
        pl.col("reference"),
        kind.alias("kind"),
        kind.replace_strict(
            {key: t.template_id for key, t in templates.items()}, default=None
        ).alias("template_id"),
        (pl.col("deceased_on") <= letter_date).fill_null(False).alias("_deceased"),
        pl.col("reference").str.contains(_REFERENCE_FRAME).fill_null(False).alias("_reference"),
        pl.col("case_ref").str.contains(_CASE_REF.pattern).fill_null(False).alias("_case_ref"),
        (pl.col("amount_pence") >= 0).fill_null(False).alias("_amount"),
        (letter_date.is_not_null() & (~window | (letter_date <= window_end))).alias("_date"),
        pl.col("case_ref").alias(LetterField.CASE_REFERENCE.value),
        _pence_text(pl.col("amount_pence")).alias(LetterField.AMOUNT.value),
        _date_text(letter_date).alias(LetterField.LETTER_DATE.value),
        _date_text(pl.col("decision_date")).alias(LetterField.DECISION_DATE.value),
        _date_text(deadline).alias(LetterField.RESPONSE_DEADLINE.value),
        _date_text(pl.col("first_letter_date")).alias(LetterField.FIRST_LETTER_DATE.value),
    ).with_columns(
        address.get_column("address_line_1").alias(LetterField.RECIPIENT_NAME.value),
        address.get_column("problem").alias("_address"),
    )
    filled = _placeholders_filled(templates)
    composable = (
        pl.col("_reference")
        & pl.col("template_id").is_not_null()
        & ~pl.col("_deceased")
        & pl.col("_address").is_null()
        & pl.col("_date")
        & pl.col("_case_ref")
        & pl.col("_amount")
        & filled
    )
    return pl.concat(
        [
            values.select(composable.alias("composable"), "reference", "kind", "template_id"),
            address.select(pl.exclude("problem")),
            values.select(f.value for f in LetterField),
        ],
        how="horizontal",
    )


def _placeholders_filled(templates: Mapping[str, Any]) -> pl.Expr:
    """True where the letter's kind has a template and every field it fills is known."""
    chain: Any = pl
    for key, template in templates.items():
        needed = [pl.col(f.value).is_not_null() for f in sorted(template.fields)]
        chain = chain.when(pl.col("kind") == key).then(pl.all_horizontal(pl.lit(True), *needed))
    return chain.otherwise(pl.lit(False)).fill_null(False)


def _pence_text(pence: pl.Expr) -> pl.Expr:
    """:func:`format_pence` of an integer column (whole pounds grouped by commas)."""
    pounds = (pence // 100).cast(pl.String)
    grouped = pounds.str.reverse().str.replace_all(r"(\d{3})", "${1},").str.strip_chars_end(",")
    return pl.concat_str(
        pl.lit("£"), grouped.str.reverse(), pl.lit("."), (pence % 100).cast(pl.String).str.zfill(2)
    )


def _date_text(day: pl.Expr) -> pl.Expr:
    """:func:`format_date` of a date column: ``31 March 2019``."""
    month = day.dt.month().replace_strict(
        {n: name for n, name in enumerate(_MONTHS, start=1)}, return_dtype=pl.String
    )
    return pl.concat_str(
        day.dt.day().cast(pl.String), pl.lit(" "), month, pl.lit(" "), day.dt.year().cast(pl.String)
    )
