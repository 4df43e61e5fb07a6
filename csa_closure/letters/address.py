"""Postal address checks, to GOV.UK Notify's rules, before a letter is batched.

Notify's rules for a letter address (``address_line_1`` ... ``address_line_7``):

- after empty lines are dropped, at least 3 lines and at most 7;
- the last line is a real UK postcode (we send only within the UK, so a country name as the
  last line is refused here too);
- no line starts with any of ``@ ( ) = [ ] " \\ / , < > ~``;
- no "no fixed abode" address (a line that is just ``NFA``, or the words "no fixed abode" or
  "no fixed address" anywhere): Notify rejects them as undeliverable.

Notify normalises each line first: runs of whitespace become one space, the ends are trimmed
and trailing commas dropped; a postcode is upper-cased with one space before its last three
characters. :func:`address_lines` does the same, so what we check is what Notify will see.

Two local rules go further: a letter must name its recipient (line 1), and a line is at most
:data:`MAX_LINE_LENGTH` characters (so it prints inside the envelope window) and holds no
control characters (which would split it into lines Notify counts differently).

A problem is reported by code and line number only: never the text of the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

MIN_LINES = 3
MAX_LINES = 7
MAX_LINE_LENGTH = 80  # local guard: the address block must fit the envelope window
INVALID_START_CHARACTERS = '@()=[]"\\/,<>~'

# Every postcode area in the UK, the Crown dependencies (GY, JE, IM) and BFPO (BF, BX).
_AREAS = """
AB AL B BA BB BD BF BH BL BN BR BS BT BX CA CB CF CH CM CO CR CT CV CW DA DD DE DG DH DL DN DT
DY E EC EH EN EX FK FY G GL GU GY HA HD HG HP HR HS HU HX IG IM IP IV JE KA KT KW KY L LA LD LE
LL LN LS LU M ME MK ML N NE NG NN NP NR NW OL OX PA PE PH PL PO PR RG RH RM S SA SE SG SK SL SM
SN SO SP SR SS ST SW SY TA TD TF TN TQ TR TS TW UB W WA WC WD WF WN WR WS WV YO ZE
"""
POSTCODE_AREAS = frozenset(_AREAS.split())
# outward code: area, district digit, optional digit or letter; inward: digit and two letters
# (the inward letters never include C, I, K, M, O or V).
_POSTCODE = re.compile(r"([A-Z]{1,2})([0-9][0-9A-Z]?)([0-9][ABD-HJLNP-UW-Z]{2})")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_WHITESPACE = re.compile(r"\s+")
_NO_FIXED_ABODE = re.compile(r"no fixed (abode|address)", re.IGNORECASE)


class AddressProblemCode(StrEnum):
    MISSING_NAME = "MISSING_NAME"  # nobody to address the letter to
    MISSING_POSTCODE = "MISSING_POSTCODE"
    BAD_POSTCODE = "BAD_POSTCODE"  # not a real-format UK postcode
    TOO_FEW_LINES = "TOO_FEW_LINES"  # fewer than 3 lines with the name and postcode
    TOO_MANY_LINES = "TOO_MANY_LINES"  # more than 7
    INVALID_START_CHARACTER = "INVALID_START_CHARACTER"
    CONTROL_CHARACTER = "CONTROL_CHARACTER"
    LINE_TOO_LONG = "LINE_TOO_LONG"
    NO_FIXED_ABODE = "NO_FIXED_ABODE"


@dataclass(frozen=True)
class AddressProblem:
    """Why a letter cannot be sent to this address. ``line`` is the 1-based line of the
    address as it would be printed (line 1 is the name, the last the postcode), if the problem
    is on one line. Holds no text of the address."""

    code: AddressProblemCode
    line: int | None = None

    @property
    def reason(self) -> str:
        """For ``letters.held_reason``: ``ADDRESS:BAD_POSTCODE`` or ``ADDRESS:LINE_TOO_LONG:3``."""
        suffix = f":{self.line}" if self.line is not None else ""
        return f"ADDRESS:{self.code.value}{suffix}"

    def __str__(self) -> str:
        return self.reason


class AddressParty(Protocol):
    """What an address check reads from a party (``parties`` row or ``RecipientParty``)."""

    @property
    def given_names(self) -> str | None: ...
    @property
    def family_name(self) -> str | None: ...
    @property
    def address_line_1(self) -> str | None: ...
    @property
    def address_line_2(self) -> str | None: ...
    @property
    def address_line_3(self) -> str | None: ...
    @property
    def address_line_4(self) -> str | None: ...
    @property
    def address_line_5(self) -> str | None: ...
    @property
    def postcode(self) -> str | None: ...


def normalise_line(value: str | None) -> str:
    """A line as Notify prints it: whitespace collapsed, ends trimmed, trailing commas dropped."""
    if value is None:
        return ""
    return _WHITESPACE.sub(" ", value).strip().rstrip(" ,").strip()


def format_postcode(value: str | None) -> str | None:
    """``SW1A 1AA`` for a real-format UK postcode in any spacing or case; ``None`` otherwise."""
    if value is None:
        return None
    compact = _WHITESPACE.sub("", value).upper()
    match = _POSTCODE.fullmatch(compact)
    if match is None or match.group(1) not in POSTCODE_AREAS:
        return None
    return f"{match.group(1)}{match.group(2)} {match.group(3)}"


def recipient_name(party: AddressParty) -> str:
    """The recipient's name as printed: given names then family name, normalised."""
    return normalise_line(" ".join(p for p in (party.given_names, party.family_name) if p))


def _raw_fields(party: AddressParty) -> tuple[str | None, ...]:
    return (
        party.given_names,
        party.family_name,
        party.address_line_1,
        party.address_line_2,
        party.address_line_3,
        party.address_line_4,
        party.address_line_5,
        party.postcode,
    )


def address_lines(party: AddressParty) -> list[str]:
    """The printed address: the name, the non-empty address lines, the postcode (formatted
    when it is a real postcode). Check it with :func:`check_address` before use."""
    street = (
        party.address_line_1,
        party.address_line_2,
        party.address_line_3,
        party.address_line_4,
        party.address_line_5,
    )
    lines = [recipient_name(party)] + [normalise_line(s) for s in street]
    postcode = normalise_line(party.postcode)
    lines.append(format_postcode(postcode) or postcode)
    return [line for line in lines if line]


def check_address(
    party: AddressParty, *, max_line_length: int = MAX_LINE_LENGTH
) -> AddressProblem | None:
    """The first reason a letter to ``party`` would be refused, or ``None`` if it can go."""
    if any(v is not None and _CONTROL.search(v) for v in _raw_fields(party)):
        return AddressProblem(AddressProblemCode.CONTROL_CHARACTER)
    if not recipient_name(party):
        return AddressProblem(AddressProblemCode.MISSING_NAME)
    if not normalise_line(party.postcode):
        return AddressProblem(AddressProblemCode.MISSING_POSTCODE)
    return check_lines(address_lines(party), max_line_length=max_line_length)


def check_lines(
    lines: list[str], *, max_line_length: int = MAX_LINE_LENGTH
) -> AddressProblem | None:
    """Notify's rules over already assembled address lines (the last one the postcode)."""
    lines = [normalise_line(line) for line in lines]
    lines = [line for line in lines if line]
    if len(lines) < MIN_LINES:
        return AddressProblem(AddressProblemCode.TOO_FEW_LINES)
    if len(lines) > MAX_LINES:
        return AddressProblem(AddressProblemCode.TOO_MANY_LINES)
    if format_postcode(lines[-1]) is None:
        return AddressProblem(AddressProblemCode.BAD_POSTCODE, len(lines))
    for number, line in enumerate(lines, start=1):
        if _CONTROL.search(line):
            return AddressProblem(AddressProblemCode.CONTROL_CHARACTER, number)
        if line[0] in INVALID_START_CHARACTERS:
            return AddressProblem(AddressProblemCode.INVALID_START_CHARACTER, number)
        if len(line) > max_line_length:
            return AddressProblem(AddressProblemCode.LINE_TOO_LONG, number)
    if any(line.lower() == "nfa" for line in lines) or _NO_FIXED_ABODE.search("\n".join(lines)):
        return AddressProblem(AddressProblemCode.NO_FIXED_ABODE)
    return None
