"""The address rules over a frame (``address_frame``) are ``check_address`` exactly: the same
code and line number, and the same printed lines, for every party, however odd."""

from __future__ import annotations

import re
import sys

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csa_closure.letters import RecipientParty, address_lines, check_address
from csa_closure.letters.address import (
    IGNORECASE_EXTRA,
    MAX_LINE_LENGTH,
    PARTY_COLUMNS,
    PYTHON_WHITESPACE,
    UPPER_TO_ASCII,
    address_frame,
    address_problems,
    normalise_line,
)

EVERY_CHARACTER = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
ADDRESS_KEYS = tuple(f"address_line_{n}" for n in range(1, 8))


# --- the character tables are Python's own -------------------------------------------------------


def test_the_whitespace_is_pythons() -> None:
    assert "".join(c for c in EVERY_CHARACTER if c.isspace()) == PYTHON_WHITESPACE
    assert "".join(re.findall(r"\s", EVERY_CHARACTER)) == PYTHON_WHITESPACE


def test_the_characters_that_upper_case_into_ascii_are_pythons() -> None:
    found = {c: c.upper() for c in EVERY_CHARACTER if not c.isascii() and c.upper().isascii()}
    assert found == UPPER_TO_ASCII


def test_ignorecase_matches_are_pythons() -> None:
    for letter in "abcdefghijklmnopqrstuvwxyz":
        matched = set(re.findall(letter, EVERY_CHARACTER, re.IGNORECASE))
        assert matched == {letter, letter.upper(), *IGNORECASE_EXTRA.get(letter, "")}, letter
    assert {c for c in EVERY_CHARACTER if c.lower() in ("n", "f", "a", "nf", "fa", "nfa")} == set(
        "nNfFaA"
    )


# --- generated parties ------------------------------------------------------------------------

SPACES = " ,\t\xa0\u2000\u200a\u202f\u3000\u1680\u205f"  # Python and Notify collapse these
CONTROL = "\n\r\x0b\x0c\x1c\x1f\x85\u2028\u2029\x00\x07\x7f\x9f"
ODD = (
    '@()=[]"\\/<>~'  # not at the start of a line
    "\xdf\u0131\u017f\ufb00\ufb05\u0130\u212a\u0149"  # upper/lower-casing oddities
    "\u200b\ufeff\u200c\u200d\u2060\u180e\u202a\u202e\u2066\u2069\xe9\u00c9\u0301\U0001f600-'.&#"
)
NAMES = ("Alex", "Mary Jane", "O'Brien", "Zo\u00eb", "  Ann  ", "SIÂN", "~Alex", "(Dr) Ann")
WORDS = (
    "NFA", "nfa", "nFa", " NFA ", "No Fixed Abode", "NO FIXED ADDRESS", "no  fixed abode",
    "no fixed\taddress", "no f\u0130xed abode", "no fixed addre\u017fs", "n\u00f6 fixed abode",
    "nfa.", "Flat 2", "1 Test Street", "Testtown", "France", "SW1A 1AA", ",", "x" * 80, "y" * 81,
    "=1", "@home", "\"Rose\" Cottage", "1, High St,", "  2  Low   Road , ,",
    "BFPO 123", "bfpo c/o 0042", "BFPO", "BFPO 1", "Bfpo123", "BF1 4FB", "United Kingdom",
    "UK", "england", "WALES", "Cymru", "northern  ireland", "-", "!!!",
    "\u0391\u03b8\u03ae\u03bd\u03b1",
    "\u200bNFA", "\u200b[Smith", "\u200b", "\u202eSmith\u202c", "\u2066x\u2069", "\u180e\u2060",
)  # fmt: skip


def _odd_text(max_size: int) -> st.SearchStrategy[str]:
    pieces = st.one_of(
        st.sampled_from(WORDS),
        st.text(alphabet=SPACES, min_size=1, max_size=3),
        st.text(alphabet=ODD, min_size=1, max_size=3),
        st.text(alphabet=CONTROL, min_size=1, max_size=1),
        st.text(alphabet="ABCabc019 ,", min_size=1, max_size=12),
        st.text(max_size=6),
    )
    return st.lists(pieces, min_size=1, max_size=max_size).map("".join)


def _line(likely: tuple[str, ...], empty: int = 1) -> st.SearchStrategy[str | None]:
    # mostly ordinary, so the rules after the first few are reached too
    return _weighted(
        (12, st.sampled_from(likely)),
        (empty, st.sampled_from([None, "", " \u3000 ", ","])),
        (1, st.sampled_from(WORDS)),
        (2, _odd_text(3)),
    )


def _weighted(*choices: tuple[int, st.SearchStrategy[str | None]]) -> st.SearchStrategy[str | None]:
    """One of ``choices``, each as likely as its weight (shrinking towards the first)."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda n: table[n])


def _postcode() -> st.SearchStrategy[str | None]:
    areas = st.sampled_from(["SW", "M", "EC", "B", "DN", "GY", "W", "QQ", "ZZ", "ſw", "ıp", "sw"])
    outward = st.tuples(areas, st.sampled_from(["1", "1A", "55", "9Z", "1a", "", "A"])).map("".join)
    inward = st.sampled_from(["1AA", "8TH", "0aa", "9ZZ", "1CA", "1ﬀ", "1ﬅ", "1ß", "", "1A"])
    spacing = st.sampled_from(["", " ", "  ", "\t", "\u3000", "\xa0", ",", " ,", "-", "\n"])
    built = st.tuples(spacing, outward, spacing, inward, spacing).map("".join)
    plain = st.sampled_from(
        ["SW1A 1AA", "sw1a1aa", "M1 1AE", "B33 8TH", "JE2 3AB", "BF1 4FB", "BFPO 77", "UK"]
    )
    return _weighted((6, plain), (6, built), (1, st.sampled_from([None, " , "])), (1, _odd_text(2)))


STREET = ("1 Test Street", "Flat 2", "Testtown", "North Side", "Leeds")
parties = st.integers(1, 40).flatmap(
    lambda empty: st.builds(
        lambda *values: dict(zip(PARTY_COLUMNS, values, strict=True)),
        _line(NAMES),
        _line(("Example", "Smith-Jones", "O'Neil")),
        *(_line(STREET, empty) for _ in range(5)),  # sometimes most street lines are empty
        _postcode(),
    )
)


def _party(values: dict[str, str | None]) -> RecipientParty:
    return RecipientParty("CS2:1", **values)  # type: ignore[arg-type]


def _frame(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(PARTY_COLUMNS, pl.String))


def _expected(values: dict[str, str | None], max_line_length: int) -> dict[str, str | None]:
    party = _party(values)
    problem = check_address(party, max_line_length=max_line_length)
    lines = address_lines(party)
    return {
        "problem": None if problem is None else problem.reason,
        **{key: lines[n] if n < len(lines) else None for n, key in enumerate(ADDRESS_KEYS)},
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(parties, min_size=1, max_size=40), st.sampled_from([MAX_LINE_LENGTH, 10, 6]))
@example(
    [
        {
            "given_names": "Alex",
            "family_name": "Example",
            "address_line_1": "1 Test Street",
            "address_line_2": None,
            "address_line_3": "Testtown",
            "address_line_4": None,
            "address_line_5": None,
            "postcode": "sw1a1aa",
        }
    ],
    MAX_LINE_LENGTH,
)
def test_the_frame_gives_check_addresss_reason_and_lines_for_every_party(
    rows: list[dict[str, str | None]], max_line_length: int
) -> None:
    found = address_frame(_frame(rows), max_line_length=max_line_length).to_dicts()
    assert found == [_expected(values, max_line_length) for values in rows]


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({}, None),
        ({"given_names": None, "family_name": " \u3000"}, "ADDRESS:MISSING_NAME"),
        ({"postcode": " , "}, "ADDRESS:MISSING_POSTCODE"),
        ({"postcode": "NOT A CODE"}, "ADDRESS:BAD_POSTCODE:4"),
        ({"address_line_1": None, "address_line_3": "\xa0"}, "ADDRESS:TOO_FEW_LINES"),
        ({"address_line_3": "=Testtown"}, "ADDRESS:INVALID_START_CHARACTER:3"),
        ({"address_line_1": "x" * 81}, "ADDRESS:LINE_TOO_LONG:2"),
        ({"address_line_1": "1 Test\u2028Street"}, "ADDRESS:CONTROL_CHARACTER"),
        ({"address_line_3": "No  Fixed\u2003Abode,"}, "ADDRESS:NO_FIXED_ABODE"),
        ({"address_line_3": "NO F\u0130XED ADDRE\u017fS"}, "ADDRESS:NO_FIXED_ABODE"),
        ({"postcode": "\u017fw1a\u30001aa"}, None),  # Python upper-cases the long s to S
    ],
)
def test_each_rule_over_a_frame(overrides: dict[str, str | None], reason: str | None) -> None:
    values: dict[str, str | None] = {
        "given_names": "Alex",
        "family_name": "Example",
        "address_line_1": "1 Test Street",
        "address_line_2": None,
        "address_line_3": "Testtown",
        "address_line_4": None,
        "address_line_5": None,
        "postcode": "SW1A 1AA",
    }
    values.update(overrides)
    assert address_problems(_frame([values])).to_list() == [reason]
    assert _expected(values, MAX_LINE_LENGTH)["problem"] == reason


def test_an_empty_frame_and_normalised_lines() -> None:
    assert address_frame(_frame([])).height == 0
    assert normalise_line(" a\u3000\u3000b ,, ") == "a b"
