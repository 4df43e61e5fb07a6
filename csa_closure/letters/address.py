"""Postal address checks, to GOV.UK Notify's rules, before a letter is batched.

Notify's rules for a letter address (``address_line_1`` ... ``address_line_7``), as its
``PostalAddress`` applies them:

- each line is normalised first: zero-width and invisible characters (U+200B, U+200C, U+200D,
  U+2060, U+FEFF, U+180E) are removed, runs of whitespace become one space, the ends are
  trimmed and trailing commas dropped; empty lines are dropped;
- a BFPO line (``BFPO 123``, ``BFPO c/o 123``) makes a BFPO address: every BFPO line is taken
  out and one ``BFPO <number>`` line printed last (after the ``BF1`` postcode when there is
  one); a BFPO address goes at UK postage and needs no postcode;
- UK country names after the postcode (``United Kingdom``, ``UK``, ``England``, ``Scotland``,
  ``Wales``, ``Cymru``, ``Northern Ireland``) are dropped;
- at least 3 lines and at most 7;
- the last line is a real UK postcode (upper-cased with one space before its last three
  characters when printed), unless the address is a BFPO address;
- lines 1 and 2 each contain at least one ASCII letter or digit ("The first 2 lines of the
  address must both include at least one alphanumeric character");
- no line starts with any of ``@ ( ) = [ ] " \\ / , < > ~``;
- no "no fixed abode" address (a line that is just ``NFA``, or the words "no fixed abode" or
  "no fixed address" anywhere): Notify rejects them as undeliverable.

:func:`address_lines` gives the lines exactly as Notify will print them, so what we check is
what Notify will see. Bidirectional controls (U+202A-U+202E, U+2066-U+2069) are removed with
the invisible characters: they would reorder what the printer shows, so they never reach a
letter.

The project is deliberately stricter than Notify in these rules (each one refuses only letters
Notify might print wrongly or that we do not want to send; none accepts one Notify refuses):

- a letter must name its recipient (line 1) and have its postcode in the postcode field
  (``MISSING_NAME``, ``MISSING_POSTCODE``; a BFPO address needs no postcode);
- a line is at most :data:`MAX_LINE_LENGTH` characters, so it prints inside the envelope window
  (``LINE_TOO_LONG``);
- no control characters, line and paragraph separators included (``CONTROL_CHARACTER``): they
  would split a line into lines Notify counts differently;
- UK only: a country other than the UK as the last line is refused (``BAD_POSTCODE``), and a
  BFPO address without a postcode must end, before its BFPO line, in a line with a digit (a
  unit or service number: ``BFPO_NO_UNIT``), since Notify refuses a BFPO address naming a
  country and we keep no list of countries;
- the UK names, BFPO and ``NFA`` are recognised in ASCII letters only, and the recipient's
  name (the first line) is never taken for a country.

A problem is reported by code and line number only: never the text of the address.

:func:`check_address` checks one party and is the reference; :func:`address_frame` applies
the same rules to a whole frame of parties at once (polars expressions, no Python per row) and
gives the same code and line number for every party (proven against :func:`check_address` by
``tests/letters/test_letters_address_frame.py``), with the printed lines. The fake Notify
validates with :func:`check_lines`, the same rules over the lines a request carries.
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
# Removed before every check: what Notify's whitespace normaliser removes (zero-width and
# invisible characters), and the bidirectional controls, which never reach a letter.
INVISIBLE_CHARACTERS = "\u200b\u200c\u200d\u2060\ufeff\u180e"
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_REMOVED = re.compile("[" + INVISIBLE_CHARACTERS + BIDI_CONTROLS + "]")
# Notify's BFPO line (it matches the lower-cased line; ASCII letters and digits only here).
_BFPO = re.compile(r"[Bb][Ff][Pp][Oo] ?(?:[Cc]/[Oo])?(?: ?([0-9]+))?")
# UK country names Notify drops after the postcode (compared in ASCII, case-insensitively).
UK_COUNTRY_NAMES = frozenset(
    ("united kingdom", "uk", "england", "scotland", "wales", "cymru", "northern ireland")
)
_ALPHANUMERIC = re.compile(r"[A-Za-z0-9]")
_DIGIT = re.compile(r"[0-9]")
ALPHANUMERIC_LINES = 2  # Notify: the first 2 lines must each have a letter or digit


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
    NO_ALPHANUMERIC = "NO_ALPHANUMERIC"  # line 1 or 2 has no ASCII letter or digit
    BFPO_NO_UNIT = "BFPO_NO_UNIT"  # local: a BFPO address without a postcode names no unit


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
    """A line as Notify prints it: invisible characters and bidirectional controls removed,
    whitespace collapsed, ends trimmed, trailing commas dropped."""
    if value is None:
        return ""
    return _WHITESPACE.sub(" ", _REMOVED.sub("", value)).strip().rstrip(" ,").strip()


def format_postcode(value: str | None) -> str | None:
    """``SW1A 1AA`` for a real-format UK postcode in any spacing or case; ``None`` otherwise."""
    if value is None:
        return None
    compact = _WHITESPACE.sub("", _REMOVED.sub("", value)).upper()
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


@dataclass(frozen=True)
class _Shape:
    """An address as Notify reads it: the lines it prints, whether the last line before any
    BFPO line is a real postcode, and whether it is a BFPO address."""

    lines: list[str]
    postcode: bool
    bfpo: bool


def _is_uk_name(line: str) -> bool:
    return line.isascii() and line.lower() in UK_COUNTRY_NAMES


def _shape(lines: list[str]) -> _Shape:
    """Notify's reading of normalised, non-empty lines: BFPO lines taken out (when one carries
    a number) and one ``BFPO n`` printed last; UK country names after the postcode dropped
    (never the first line); the postcode formatted."""
    number = next(
        (m.group(1) for line in lines if (m := _BFPO.fullmatch(line)) and m.group(1)), None
    )
    if number is not None:
        lines = [line for line in lines if _BFPO.fullmatch(line) is None]
    end = len(lines)
    while end > 1 and _is_uk_name(lines[end - 1]):
        end -= 1
    kept = lines[:end]
    formatted = format_postcode(kept[-1]) if kept else None
    if kept:
        kept[-1] = formatted or kept[-1]
    if number is not None:
        kept.append(f"BFPO {number.lstrip('0') or '0'}")
    return _Shape(kept, formatted is not None, number is not None)


def _party_lines(party: AddressParty) -> list[str]:
    street = (
        party.address_line_1,
        party.address_line_2,
        party.address_line_3,
        party.address_line_4,
        party.address_line_5,
    )
    lines = [recipient_name(party)] + [normalise_line(s) for s in street]
    lines.append(normalise_line(party.postcode))
    return [line for line in lines if line]


def address_lines(party: AddressParty) -> list[str]:
    """The printed address, as Notify prints it: the name, the non-empty address lines, the
    postcode (formatted when it is a real postcode), a BFPO address's ``BFPO n`` line last.
    Check it with :func:`check_address` before use."""
    return _shape(_party_lines(party)).lines


def check_address(
    party: AddressParty, *, max_line_length: int = MAX_LINE_LENGTH
) -> AddressProblem | None:
    """The first reason a letter to ``party`` would be refused, or ``None`` if it can go."""
    if any(v is not None and _CONTROL.search(v) for v in _raw_fields(party)):
        return AddressProblem(AddressProblemCode.CONTROL_CHARACTER)
    if not recipient_name(party):
        return AddressProblem(AddressProblemCode.MISSING_NAME)
    shape = _shape(_party_lines(party))
    if not normalise_line(party.postcode) and not shape.bfpo:
        return AddressProblem(AddressProblemCode.MISSING_POSTCODE)
    return _check_shape(shape, max_line_length=max_line_length)


def check_lines(
    lines: list[str], *, max_line_length: int = MAX_LINE_LENGTH, control: bool = True
) -> AddressProblem | None:
    """Notify's rules over already assembled address lines (as a request's
    ``address_line_1`` .. ``address_line_7`` carry them, the postcode last). ``control=False``
    leaves out the local control-character rule (the fake Notify, which splits lines as Notify
    does first)."""
    if control and any(_CONTROL.search(line) for line in lines):
        return AddressProblem(AddressProblemCode.CONTROL_CHARACTER)
    normalised = [normalise_line(line) for line in lines]
    return _check_shape(
        _shape([line for line in normalised if line]), max_line_length=max_line_length
    )


def _check_shape(shape: _Shape, *, max_line_length: int) -> AddressProblem | None:
    lines = shape.lines
    if len(lines) < MIN_LINES:
        return AddressProblem(AddressProblemCode.TOO_FEW_LINES)
    if len(lines) > MAX_LINES:
        return AddressProblem(AddressProblemCode.TOO_MANY_LINES)
    last = len(lines) - 1 if shape.bfpo else len(lines)  # the line the postcode is on
    if not shape.postcode:
        if not shape.bfpo:
            return AddressProblem(AddressProblemCode.BAD_POSTCODE, last)
        if not _DIGIT.search(lines[last - 1]):
            return AddressProblem(AddressProblemCode.BFPO_NO_UNIT, last)
    for number, line in enumerate(lines, start=1):
        if line[0] in INVALID_START_CHARACTERS:
            return AddressProblem(AddressProblemCode.INVALID_START_CHARACTER, number)
        if len(line) > max_line_length:
            return AddressProblem(AddressProblemCode.LINE_TOO_LONG, number)
        if number <= ALPHANUMERIC_LINES and not _ALPHANUMERIC.search(line):
            return AddressProblem(AddressProblemCode.NO_ALPHANUMERIC, number)
    if any(line.lower() == "nfa" for line in lines) or _NO_FIXED_ABODE.search("\n".join(lines)):
        return AddressProblem(AddressProblemCode.NO_FIXED_ABODE)
    return None


# --- the same rules over a frame of parties -----------------------------------------------------
#
# Python's str methods and re module work on Unicode in ways polars' (Rust's) do not quite
# match, so nothing here leans on either's defaults: the character sets are spelt out, and
# tests/letters/test_letters_address_frame.py checks each one against Python over every code point.

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
_REMOVED_FRAME = _char_class(INVISIBLE_CHARACTERS + BIDI_CONTROLS)
_BFPO_FRAME = "^" + _BFPO.pattern + "$"
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
        .str.replace_all(_REMOVED_FRAME, "")
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
    fields = [f"{_T}{n}" for n in range(7)]  # the name, the 5 street lines, the postcode
    work = parties.lazy().select(
        pl.any_horizontal(c.str.contains(_CONTROL_FRAME).fill_null(False) for c in raw).alias(
            f"{_T}control"
        ),
        pl.concat_str(name_parts, separator=" ", ignore_nulls=True).alias(fields[0]),
        *(c.alias(fields[n]) for n, c in enumerate(raw[2:], start=1)),
    )
    work = work.with_columns(_normalised(f) for f in fields)
    col = [pl.col(f) for f in fields]
    # BFPO: the first BFPO line with a number makes a BFPO address; then every BFPO line goes
    number = f"{_T}bfpo"
    is_bfpo_line = [f"{_T}bfpo_at{i}" for i in range(7)]
    work = work.with_columns(
        c.str.contains(_BFPO_FRAME).alias(is_bfpo_line[i]) for i, c in enumerate(col)
    )
    work = work.with_columns(
        pl.coalesce(
            pl.when(pl.col(is_bfpo_line[i])).then(c.str.extract(_BFPO_FRAME, 1))
            for i, c in enumerate(col)
        ).alias(number)
    )
    bfpo = pl.col(number).is_not_null()
    present = [f"{_T}present{i}" for i in range(7)]
    uk = [f"{_T}uk{i}" for i in range(7)]
    work = work.with_columns(
        *(
            ((c != "") & ~(bfpo & pl.col(is_bfpo_line[i]))).alias(present[i])
            for i, c in enumerate(col)
        ),
        *(
            (
                ~c.str.contains(_NON_ASCII) & c.str.to_lowercase().is_in(sorted(UK_COUNTRY_NAMES))
            ).alias(uk[i])
            for i, c in enumerate(col)
        ),
    )
    # UK country names at the end are dropped, never the first line left: right to left, a
    # line is dropped when it is a UK name, a line is left before it, and every present line
    # after it was dropped too
    dropped = [f"{_T}dropped{i}" for i in range(7)]
    tail = f"{_T}tail"
    work = work.with_columns(pl.lit(True).alias(tail))
    for i in reversed(range(7)):
        before = pl.any_horizontal(pl.col(present[j]) for j in range(i)) if i else pl.lit(False)
        here = pl.col(present[i]) & pl.col(uk[i]) & before & pl.col(tail)
        work = work.with_columns(here.alias(dropped[i])).with_columns(
            (pl.col(tail) & (~pl.col(present[i]) | pl.col(dropped[i]))).alias(tail)
        )
    kept = [pl.col(present[i]) & ~pl.col(dropped[i]) for i in range(7)]
    keep = [f"{_T}kept{i}" for i in range(7)]
    work = work.with_columns(k.alias(keep[i]) for i, k in enumerate(kept))
    # the number each kept line is printed as
    at = [f"{_T}at{i}" for i in range(7)]
    work = work.with_columns(
        pl.sum_horizontal(pl.col(k) for k in keep[: i + 1]).cast(pl.Int32).alias(at[i])
        for i in range(7)
    )
    kept_count = pl.col(at[-1])
    last_at = [f"{_T}last_at{i}" for i in range(7)]
    work = work.with_columns(
        (pl.col(keep[i]) & (pl.col(at[i]) == kept_count)).alias(last_at[i]) for i in range(7)
    )
    is_last = [pl.col(c) for c in last_at]
    last, formatted = f"{_T}last", f"{_T}formatted"
    work = work.with_columns(
        pl.coalesce(pl.when(is_last[i]).then(c) for i, c in enumerate(col)).alias(last)
    )
    work = work.with_columns(_formatted_postcode(pl.col(last)).alias(formatted))
    printed = [f"{_T}printed{i}" for i in range(7)]
    digits = pl.col(number).str.strip_chars_start("0")
    bfpo_line = f"{_T}bfpo_line"
    work = work.with_columns(
        *(
            pl.when(is_last[i]).then(pl.coalesce(formatted, c)).otherwise(c).alias(printed[i])
            for i, c in enumerate(col)
        ),
        pl.concat_str(
            pl.lit("BFPO "), pl.when(digits != "").then(digits).otherwise(pl.lit("0"))
        ).alias(bfpo_line),
    )
    count = kept_count + bfpo.cast(pl.Int32)
    problem = (
        pl.when(pl.col(f"{_T}control"))
        .then(pl.lit(AddressProblem(AddressProblemCode.CONTROL_CHARACTER).reason))
        .when(col[0] == "")
        .then(pl.lit(AddressProblem(AddressProblemCode.MISSING_NAME).reason))
        .when((col[6] == "") & ~bfpo)
        .then(pl.lit(AddressProblem(AddressProblemCode.MISSING_POSTCODE).reason))
        .when(count < MIN_LINES)
        .then(pl.lit(AddressProblem(AddressProblemCode.TOO_FEW_LINES).reason))
        .when(count > MAX_LINES)
        .then(pl.lit(AddressProblem(AddressProblemCode.TOO_MANY_LINES).reason))
        .when(pl.col(formatted).is_null() & ~bfpo)
        .then(_numbered(AddressProblemCode.BAD_POSTCODE, kept_count))
        .when(pl.col(formatted).is_null() & ~pl.col(last).str.contains("[0-9]"))
        .then(_numbered(AddressProblemCode.BFPO_NO_UNIT, kept_count))
    )
    for i in range(7):
        line, number_of = pl.col(printed[i]), pl.col(at[i])
        problem = (
            problem.when(
                pl.col(keep[i]) & line.str.slice(0, 1).is_in(list(INVALID_START_CHARACTERS))
            )
            .then(_numbered(AddressProblemCode.INVALID_START_CHARACTER, number_of))
            .when(pl.col(keep[i]) & (line.str.len_chars() > max_line_length))
            .then(_numbered(AddressProblemCode.LINE_TOO_LONG, number_of))
            .when(
                pl.col(keep[i])
                & (number_of <= ALPHANUMERIC_LINES)
                & ~line.str.contains("[A-Za-z0-9]")
            )
            .then(_numbered(AddressProblemCode.NO_ALPHANUMERIC, number_of))
        )
    problem = problem.when(bfpo & (pl.col(bfpo_line).str.len_chars() > max_line_length)).then(
        _numbered(AddressProblemCode.LINE_TOO_LONG, count)
    )
    no_fixed_abode = pl.any_horizontal(
        pl.col(keep[i])
        & (
            pl.col(printed[i]).str.contains(_NFA_FRAME)
            | pl.col(printed[i]).str.contains(_NO_FIXED_ABODE_FRAME)
        )
        for i in range(7)
    )
    reason = (
        problem.when(no_fixed_abode)
        .then(pl.lit(AddressProblem(AddressProblemCode.NO_FIXED_ABODE).reason))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    lines = [
        # line n is the kept line printed as line n, or the BFPO line after the last kept one
        pl.coalesce(
            *(
                pl.when(pl.col(keep[i]) & (pl.col(at[i]) == n)).then(pl.col(printed[i]))
                for i in range(7)
            ),
            pl.when(bfpo & (kept_count + 1 == n)).then(pl.col(bfpo_line)),
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
