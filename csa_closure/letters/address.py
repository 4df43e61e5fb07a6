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

:func:`check_address` checks one party and is the reference; :func:`address_frame` applies
the same rules to a whole frame of parties at once (polars expressions, no Python per row) and
gives the same code and line number for every party (proven against :func:`check_address` by
``tests/test_letters_address_frame.py``), with the printed lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import polars as pl

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


# --- the same rules over a frame of parties -----------------------------------------------------
#
# Python's str methods and re module work on Unicode in ways polars' (Rust's) do not quite
# match, so nothing here leans on either's defaults: the character sets are spelt out, and
# tests/test_letters_address_frame.py checks each one against Python over every code point.

PARTY_COLUMNS = (
    "given_names",
    "family_name",
    "address_line_1",
    "address_line_2",
    "address_line_3",
    "address_line_4",
    "address_line_5",
    "postcode",
)
# What Python's re calls \s and str.strip() strips (str.isspace()).
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# The characters outside ASCII that str.upper() turns into ASCII letters: a postcode written
# with one of them is a real postcode to format_postcode. Every other character outside ASCII
# upper-cases to something outside ASCII, which no postcode matches.
UPPER_TO_ASCII = {
    "\xdf": "SS",
    "\u0131": "I",
    "\u017f": "S",
    "\ufb00": "FF",
    "\ufb01": "FI",
    "\ufb02": "FL",
    "\ufb03": "FFI",
    "\ufb04": "FFL",
    "\ufb05": "ST",
    "\ufb06": "ST",
}
# What re.IGNORECASE matches for a letter beyond its two ASCII cases.
IGNORECASE_EXTRA = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def _char_class(chars: str) -> str:
    """A regex class for polars matching exactly ``chars``, each as a code point escape."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


def _caseless(text: str) -> str:
    """``text`` as a polars regex matching what Python's ``re.IGNORECASE`` matches."""
    out = []
    for c in text:
        if c.isascii() and c.isalpha():
            out.append(_char_class(c.upper() + c.lower() + IGNORECASE_EXTRA.get(c.lower(), "")))
        else:
            out.append(_char_class(c))
    return "".join(out)


_WS_RUN = _char_class(PYTHON_WHITESPACE) + "+"
_CONTROL_FRAME = _char_class(
    "".join(chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), *range(0x7F, 0xA0)))
    + "\u2028\u2029"
)
_NFA_FRAME = "^" + _caseless("nfa") + "$"  # str.lower() == "nfa" (no other character lowers so)
_NO_FIXED_ABODE_FRAME = (
    _caseless("no fixed ") + "(?:" + _caseless("abode") + "|" + _caseless("address") + ")"
)
_POSTCODE_FRAME = r"^([A-Z]{1,2})([0-9][0-9A-Z]?)([0-9][ABD-HJLNP-UW-Z]{2})$"
_NON_ASCII = r"[^\x00-\x7F]"
_LINE_KEYS = tuple(f"address_line_{n}" for n in range(1, MAX_LINES + 1))  # fields.ADDRESS_KEYS
_T = "__address_"  # prefix of the working columns


def _normalised(column: str) -> pl.Expr:
    """:func:`normalise_line` of a string column (null -> "")."""
    return (
        pl.col(column)
        .fill_null("")
        .str.replace_all(_WS_RUN, " ")
        .str.strip_chars(" ")
        .str.strip_chars_end(" ,")
    )


def _formatted_postcode(normalised: pl.Expr) -> pl.Expr:
    """:func:`format_postcode` of a normalised postcode column (null: not a real postcode)."""
    compact = normalised.str.replace_all(_WS_RUN, "").str.replace_many(
        list(UPPER_TO_ASCII), list(UPPER_TO_ASCII.values())
    )
    upper = pl.when(~compact.str.contains(_NON_ASCII)).then(compact.str.to_uppercase())
    parts = upper.str.extract_groups(_POSTCODE_FRAME)
    area = parts.struct.field("1")
    return pl.when(area.is_in(sorted(POSTCODE_AREAS))).then(
        pl.concat_str(area, parts.struct.field("2"), pl.lit(" "), parts.struct.field("3"))
    )


def address_frame(parties: pl.DataFrame, *, max_line_length: int = MAX_LINE_LENGTH) -> pl.DataFrame:
    """For each party (a frame with :data:`PARTY_COLUMNS`, strings): ``problem``, the reason
    :func:`check_address` gives (``ADDRESS:BAD_POSTCODE:4``; null when the address is usable),
    and ``address_line_1`` .. ``address_line_7``, the lines :func:`address_lines` prints (null
    after the last). One row per party, in order; no other columns."""
    raw = [pl.col(c).cast(pl.String) for c in PARTY_COLUMNS]
    name_parts = [pl.when(c != "").then(c) for c in raw[:2]]
    work = parties.lazy().select(
        pl.any_horizontal(c.str.contains(_CONTROL_FRAME).fill_null(False) for c in raw).alias(
            f"{_T}control"
        ),
        pl.concat_str(name_parts, separator=" ", ignore_nulls=True).alias(f"{_T}name"),
        *(c.alias(f"{_T}{n}") for n, c in enumerate(raw[2:7], start=1)),
        raw[7].alias(f"{_T}postcode"),
    )
    work = work.with_columns(
        _normalised(f"{_T}name"),
        *(_normalised(f"{_T}{n}") for n in range(1, 6)),
        _normalised(f"{_T}postcode"),
    )
    formatted = f"{_T}formatted"
    work = work.with_columns(_formatted_postcode(pl.col(f"{_T}postcode")).alias(formatted))
    printed = [f"{_T}name", *(f"{_T}{n}" for n in range(1, 6)), f"{_T}printed_postcode"]
    work = work.with_columns(pl.coalesce(formatted, f"{_T}postcode").alias(printed[-1]))
    # the number each line is printed as: empty lines are dropped
    present = [pl.col(c) != "" for c in printed]
    at = [f"{_T}at{i}" for i in range(len(printed))]
    work = work.with_columns(
        pl.sum_horizontal(present[: i + 1]).cast(pl.Int32).alias(at[i]) for i in range(len(printed))
    )
    count = pl.col(at[-1])
    problem = (
        pl.when(pl.col(f"{_T}control"))
        .then(pl.lit(AddressProblem(AddressProblemCode.CONTROL_CHARACTER).reason))
        .when(pl.col(f"{_T}name") == "")
        .then(pl.lit(AddressProblem(AddressProblemCode.MISSING_NAME).reason))
        .when(pl.col(f"{_T}postcode") == "")
        .then(pl.lit(AddressProblem(AddressProblemCode.MISSING_POSTCODE).reason))
        .when(count < MIN_LINES)
        .then(pl.lit(AddressProblem(AddressProblemCode.TOO_FEW_LINES).reason))
        .when(count > MAX_LINES)
        .then(pl.lit(AddressProblem(AddressProblemCode.TOO_MANY_LINES).reason))
        .when(pl.col(formatted).is_null())
        .then(_numbered(AddressProblemCode.BAD_POSTCODE, count))
    )
    for column, number in zip(printed, at, strict=True):
        line = pl.col(column)  # an empty line breaks neither rule
        problem = (
            problem.when(line.str.slice(0, 1).is_in(list(INVALID_START_CHARACTERS)))
            .then(_numbered(AddressProblemCode.INVALID_START_CHARACTER, pl.col(number)))
            .when(line.str.len_chars() > max_line_length)
            .then(_numbered(AddressProblemCode.LINE_TOO_LONG, pl.col(number)))
        )
    no_fixed_abode = pl.any_horizontal(
        pl.col(c).str.contains(_NFA_FRAME) | pl.col(c).str.contains(_NO_FIXED_ABODE_FRAME)
        for c in printed
    )
    reason = (
        problem.when(no_fixed_abode)
        .then(pl.lit(AddressProblem(AddressProblemCode.NO_FIXED_ABODE).reason))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    lines = [
        # line n is the first non-empty line that is printed as line n
        pl.coalesce(
            pl.when(present[i] & (pl.col(at[i]) == n)).then(pl.col(printed[i]))
            for i in range(n - 1, len(printed))
        ).alias(key)
        for n, key in enumerate(_LINE_KEYS, start=1)
    ]
    return work.select(reason.alias("problem"), *lines).collect()


def _numbered(code: AddressProblemCode, line: pl.Expr) -> pl.Expr:
    """``AddressProblem(code, line).reason`` for a column of line numbers."""
    return pl.concat_str(pl.lit(f"ADDRESS:{code.value}:"), line.cast(pl.String))


def address_problems(parties: pl.DataFrame, *, max_line_length: int = MAX_LINE_LENGTH) -> pl.Series:
    """:func:`check_address`'s reason for each party of the frame (null: usable), as
    :func:`address_frame` gives it."""
    return address_frame(parties, max_line_length=max_line_length)["problem"]
