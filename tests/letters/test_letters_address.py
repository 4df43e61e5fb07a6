"""Address checks to Notify's rules, before a letter is batched."""

from __future__ import annotations

from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csa_closure.letters import (
    AddressProblemCode,
    RecipientParty,
    address_lines,
    check_address,
    check_lines,
    format_postcode,
)

Code = AddressProblemCode


def party(**overrides: object) -> RecipientParty:
    values: dict[str, object] = {
        "party_ref": "CSCS:P000000001",
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
    return RecipientParty(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "formatted"),
    [
        ("SW1A 1AA", "SW1A 1AA"),
        ("sw1a1aa", "SW1A 1AA"),
        ("  ls1   1ba ", "LS1 1BA"),
        ("M1 1AE", "M1 1AE"),
        ("B33 8TH", "B33 8TH"),
        ("CR2 6XH", "CR2 6XH"),
        ("DN55 1PT", "DN55 1PT"),
        ("EC1A 1BB", "EC1A 1BB"),
        ("BT1 1AA", "BT1 1AA"),  # Northern Ireland
        ("JE2 3AB", "JE2 3AB"),  # Jersey: Notify posts there at UK rates
        ("BF1 4FB", "BF1 4FB"),  # BFPO
    ],
)
def test_real_postcodes_are_formatted_for_printing(raw: str, formatted: str) -> None:
    assert format_postcode(raw) == formatted


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "SW1A",  # outward code only
        "1AA",
        "QQ1 1AA",  # no such area
        "SW1A 1CA",  # C never in the inward code
        "SW1A 1AI",  # nor I
        "SW1A1AAA",
        "12345",
        "France",
        "SW1A-1AA",
    ],
)
def test_unreal_postcodes_are_refused(raw: str) -> None:
    assert format_postcode(raw) is None


def test_a_complete_address_passes_and_prints_name_first_postcode_last() -> None:
    p = party(address_line_1="  1  Test   Street, ", postcode="sw1a1aa")
    assert check_address(p) is None
    assert address_lines(p) == ["Alex Example", "1 Test Street", "Testtown", "SW1A 1AA"]


@pytest.mark.parametrize(
    ("overrides", "code", "line"),
    [
        ({"given_names": None, "family_name": " "}, Code.MISSING_NAME, None),
        ({"postcode": None}, Code.MISSING_POSTCODE, None),
        ({"postcode": " , "}, Code.MISSING_POSTCODE, None),
        ({"postcode": "NOT A CODE"}, Code.BAD_POSTCODE, 4),
        ({"address_line_1": None, "address_line_3": " "}, Code.TOO_FEW_LINES, None),
        ({"address_line_1": "(Flat 2) 1 Test Street"}, Code.INVALID_START_CHARACTER, 2),
        ({"address_line_3": "=Testtown"}, Code.INVALID_START_CHARACTER, 3),
        ({"address_line_3": "@home"}, Code.INVALID_START_CHARACTER, 3),
        ({"family_name": None, "given_names": "~Alex"}, Code.INVALID_START_CHARACTER, 1),
        ({"address_line_1": "x" * 81}, Code.LINE_TOO_LONG, 2),
        ({"address_line_1": "NFA"}, Code.NO_FIXED_ABODE, None),
        ({"address_line_1": "No Fixed Abode"}, Code.NO_FIXED_ABODE, None),
        ({"address_line_3": "no fixed address"}, Code.NO_FIXED_ABODE, None),
        ({"address_line_1": "1 Test\nStreet"}, Code.CONTROL_CHARACTER, None),
        ({"family_name": "Ex\x00ample"}, Code.CONTROL_CHARACTER, None),
    ],
)
def test_each_notify_rule_holds_the_letter_with_a_reason_code(
    overrides: dict[str, object], code: AddressProblemCode, line: int | None
) -> None:
    problem = check_address(party(**overrides))
    assert problem is not None
    assert problem.code is code
    assert problem.line == line


def test_seven_lines_pass_and_eight_do_not() -> None:
    lines = ["Alex Example", "a", "b", "c", "d", "e", "SW1A 1AA"]
    assert check_lines(lines) is None
    problem = check_lines(["Alex Example", "a", "b", "c", "d", "e", "f", "SW1A 1AA"])
    assert problem is not None and problem.code is Code.TOO_MANY_LINES
    assert (
        check_address(party(address_line_2="a", address_line_4="b", address_line_5="c")) is None
    )  # name + 5 lines + postcode = 7, the most a party can have


def test_a_country_as_the_last_line_is_refused_because_we_only_post_in_the_uk() -> None:
    problem = check_lines(["Alex Example", "1 Rue de Test", "Paris", "France"])
    assert problem is not None and problem.code is Code.BAD_POSTCODE


@given(
    st.lists(st.text(min_size=0, max_size=90), min_size=0, max_size=6),
    st.text(max_size=12),
    st.text(max_size=40),
)
def test_a_reason_never_carries_the_address(lines: list[str], postcode: str, name: str) -> None:
    p = RecipientParty(
        "CS2:1",
        given_names=name,
        family_name=None,
        **{f"address_line_{i}": v for i, v in enumerate(lines[:5], start=1)},  # type: ignore[arg-type]
        postcode=postcode,
    )
    problem = check_address(p)
    if problem is None:
        assert 3 <= len(address_lines(p)) <= 7
        return
    # The reason is built from the code and a line number only.
    assert problem.reason == f"ADDRESS:{problem.code.value}" + (
        f":{problem.line}" if problem.line is not None else ""
    )
    assert [f.name for f in fields(problem)] == ["code", "line"]
