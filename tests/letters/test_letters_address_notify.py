"""Notify's published address cases, in the project's words: the project's check, its frame
version and the fake Notify agree with Notify on each, except where the project is
deliberately stricter (documented in ``csa_closure/letters/address.py``), and none of them
ever accepts an address Notify refuses.

Each case is a party's fields, Notify's verdict on those fields sent as they are (the lines in
order, the postcode last), and the project's reason (``None``: the letter can go). The cases
come from Notify's address rules (``PostalAddress`` in notifications-utils and the API's
documented ``ValidationError`` messages)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import jwt
import polars as pl
import pytest

from csa_closure.letters import RecipientParty, address_lines, check_address
from csa_closure.letters.address import PARTY_COLUMNS, address_frame
from csa_closure.simulation.fake_notify import FAKE_SECRET, FAKE_SERVICE_ID, FakeNotify

ACCEPT, REFUSE = "accept", "refuse"


@dataclass(frozen=True)
class Case:
    name: str
    notify: str  # what Notify does with these lines sent as they are
    reason: str | None  # what the project says (None: send)
    fields: dict[str, str | None] = field(default_factory=dict)
    printed: tuple[str, ...] | None = None  # the lines the project prints, when it sends
    stricter: bool = False  # the project deliberately refuses what Notify accepts
    fake: str | None = None  # the fake's verdict when it differs from Notify's (documented)


BASE: dict[str, str | None] = {
    "given_names": "Alex",
    "family_name": "Example",
    "address_line_1": "1 Test Street",
    "address_line_2": None,
    "address_line_3": "Testtown",
    "address_line_4": None,
    "address_line_5": None,
    "postcode": "SW1A 1AA",
}
TROOPS: dict[str, str | None] = {
    **BASE,
    "given_names": "Sgt A",
    "family_name": "Smith",
    "address_line_1": "123 Squadron",
    "address_line_3": "BFPO 123",
    "postcode": None,
}

CASES = [
    Case("an ordinary UK address", ACCEPT, None, {},
         ("Alex Example", "1 Test Street", "Testtown", "SW1A 1AA")),
    Case("postcode in any case and spacing", ACCEPT, None, {"postcode": "sw1a1aa"},
         ("Alex Example", "1 Test Street", "Testtown", "SW1A 1AA")),
    Case("not a real postcode", REFUSE, "ADDRESS:BAD_POSTCODE:4", {"postcode": "SW1A 1CA"}),
    Case("another country as the last line", REFUSE, "ADDRESS:BAD_POSTCODE:4",
         {"postcode": "France"}),
    Case("fewer than 3 lines", REFUSE, "ADDRESS:TOO_FEW_LINES",
         {"address_line_1": None, "address_line_3": None}),
    Case("a line starting with (", REFUSE, "ADDRESS:INVALID_START_CHARACTER:2",
         {"address_line_1": "(Flat 2) 1 Test Street"}),
    Case("a line starting with =", REFUSE, "ADDRESS:INVALID_START_CHARACTER:3",
         {"address_line_3": "=Testtown"}),
    Case("a line that is NFA", REFUSE, "ADDRESS:NO_FIXED_ABODE", {"address_line_3": "nfa"}),
    Case("no fixed abode", REFUSE, "ADDRESS:NO_FIXED_ABODE",
         {"address_line_1": "No Fixed Abode"}),
    Case("no fixed address", REFUSE, "ADDRESS:NO_FIXED_ABODE",
         {"address_line_3": "of no fixed address"}),
    # lines 1 and 2 must each have an ASCII letter or digit
    Case("a name that is a dash", REFUSE, "ADDRESS:NO_ALPHANUMERIC:1",
         {"given_names": "-", "family_name": None}),
    Case("a name of punctuation", REFUSE, "ADDRESS:NO_ALPHANUMERIC:1",
         {"given_names": "!!!", "family_name": None}),
    Case("a name only in a non-Latin script", REFUSE, "ADDRESS:NO_ALPHANUMERIC:1",
         {"given_names": "\u0391\u03b8\u03b7\u03bd\u03ac",
          "family_name": "\u0394\u03ae\u03bc\u03bf\u03c5"}),
    Case("line 2 of punctuation", REFUSE, "ADDRESS:NO_ALPHANUMERIC:2",
         {"address_line_1": "***"}),
    Case("line 3 of punctuation is allowed", ACCEPT, None,
         {"address_line_2": "Testtown", "address_line_3": "***"}),
    # invisible characters are removed before every check
    Case("a name that is only a zero-width space", ACCEPT, "ADDRESS:MISSING_NAME",
         {"given_names": "\u200b", "family_name": "\ufeff"}, stricter=True),
    Case("NFA behind a zero-width space", REFUSE, "ADDRESS:NO_FIXED_ABODE",
         {"address_line_3": "\u200bNFA"}),
    Case("no fixed abode with a word joiner", REFUSE, "ADDRESS:NO_FIXED_ABODE",
         {"address_line_3": "no fixed\u2060 abode"}),
    Case("[ behind a zero-width space", REFUSE, "ADDRESS:INVALID_START_CHARACTER:1",
         {"given_names": "\u200b[Smith", "family_name": None}),
    Case("= behind a zero-width joiner", REFUSE, "ADDRESS:INVALID_START_CHARACTER:2",
         {"address_line_1": "\u200d\u180e=SUM(A1)"}),
    Case("a postcode with a zero-width space", ACCEPT, None, {"postcode": "SW1A\u200b1AA"},
         ("Alex Example", "1 Test Street", "Testtown", "SW1A 1AA")),
    Case("bidirectional controls never reach the letter", ACCEPT, None,
         {"family_name": "\u202eelpmaxE\u202c", "address_line_3": "\u2066Testtown\u2069"},
         ("Alex elpmaxE", "1 Test Street", "Testtown", "SW1A 1AA")),
    # BFPO
    Case("BFPO without a postcode", ACCEPT, None, TROOPS,
         ("Sgt A Smith", "123 Squadron", "BFPO 123")),
    Case("BFPO with its BF1 postcode", ACCEPT, None, {**TROOPS, "postcode": "bf1 4fb"},
         ("Sgt A Smith", "123 Squadron", "BF1 4FB", "BFPO 123")),
    Case("BFPO in the postcode field, c/o", ACCEPT, None,
         {**TROOPS, "address_line_3": None, "postcode": "BFPO c/o 0042"},
         ("Sgt A Smith", "123 Squadron", "BFPO 42")),
    Case("BFPO naming a country", REFUSE, "ADDRESS:BFPO_NO_UNIT:2",
         {**TROOPS, "address_line_1": "France"}),
    Case("BFPO whose unit has no number", ACCEPT, "ADDRESS:BFPO_NO_UNIT:2",
         {**TROOPS, "address_line_1": "HMS Example"}, stricter=True, fake=REFUSE),
    Case("BFPO with too few lines", REFUSE, "ADDRESS:TOO_FEW_LINES",
         {**TROOPS, "address_line_1": None}),
    # UK country names after the postcode
    Case("United Kingdom after the postcode", ACCEPT, None,
         {"address_line_5": "SW1A 1AA", "postcode": "United Kingdom"},
         ("Alex Example", "1 Test Street", "Testtown", "SW1A 1AA")),
    Case("England then UK after the postcode", ACCEPT, None,
         {"address_line_4": "sw1a 1aa", "address_line_5": "England", "postcode": "UK"},
         ("Alex Example", "1 Test Street", "Testtown", "SW1A 1AA")),
    Case("Cymru after the postcode", ACCEPT, None,
         {"postcode": "CF10 1AA", "address_line_5": None, "address_line_4": None}
         | {"address_line_3": "Caerdydd", "address_line_2": None},
         ("Alex Example", "1 Test Street", "Caerdydd", "CF10 1AA")),
    Case("a UK name before the postcode is an ordinary line", ACCEPT, None,
         {"address_line_5": "Northern Ireland", "postcode": "BT1 1AA"},
         ("Alex Example", "1 Test Street", "Testtown", "Northern Ireland", "BT1 1AA")),
    Case("only a country after the name", REFUSE, "ADDRESS:TOO_FEW_LINES",
         {"address_line_1": None, "address_line_3": None, "postcode": "Scotland"}),
    # the project's deliberate extra rules
    Case("a line over 80 characters", ACCEPT, "ADDRESS:LINE_TOO_LONG:2",
         {"address_line_1": "x" * 81}, stricter=True),
    Case("a line break inside a line", ACCEPT, "ADDRESS:CONTROL_CHARACTER",
         {"address_line_1": "1 Test\nStreet"}, stricter=True),
    Case("the postcode in a street line, the postcode field empty", ACCEPT,
         "ADDRESS:MISSING_POSTCODE", {"address_line_5": "SW1A 1AA", "postcode": None},
         stricter=True),
]  # fmt: skip


def _values(case: Case) -> dict[str, str | None]:
    return {**BASE, **case.fields}


def _party(case: Case) -> RecipientParty:
    return RecipientParty("CS2:1", **_values(case))  # type: ignore[arg-type]


def _as_sent(case: Case) -> dict[str, str]:
    """The fields as Notify would receive them unprocessed: the name, the lines, the postcode."""
    v = _values(case)
    name = " ".join(p for p in (v["given_names"], v["family_name"]) if p)
    lines = [name, *(v[f"address_line_{n}"] for n in range(1, 6)), v["postcode"]]
    return {f"address_line_{n}": line or "" for n, line in enumerate(lines, start=1)}


def _fake_verdict(personalisation: dict[str, str]) -> tuple[str, str]:
    service = FakeNotify(None)
    token = jwt.encode({"iss": FAKE_SERVICE_ID, "iat": int(time.time())}, FAKE_SECRET, "HS256")
    reply = service.handle(
        "POST",
        "https://api.notifications.service.gov.uk/v2/notifications/letter",
        {"template_id": str(uuid.uuid4()), "personalisation": personalisation},
        f"Bearer {token}",
    )
    service.close()
    message = "" if reply.status == 201 else str(reply.body)
    return (ACCEPT if reply.status == 201 else REFUSE), message


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_check_the_frame_and_the_fake_agree_with_notify(case: Case) -> None:
    problem = check_address(_party(case))
    assert (None if problem is None else problem.reason) == case.reason
    frame = address_frame(
        pl.DataFrame([_values(case)], schema=dict.fromkeys(PARTY_COLUMNS, pl.String))
    )
    assert frame["problem"].to_list() == [case.reason]
    ours = ACCEPT if case.reason is None else REFUSE
    # never accept what Notify refuses; refuse what it accepts only by a documented rule
    assert not (ours == ACCEPT and case.notify == REFUSE)
    assert (ours == case.notify) != case.stricter
    if case.printed is not None:
        assert tuple(address_lines(_party(case))) == case.printed
        printed = frame.row(0, named=True)
        assert tuple(v for k, v in printed.items() if k != "problem" and v is not None) == (
            case.printed
        )
        # what we print, Notify (and the fake) accept as it is
        assert (
            _fake_verdict(
                dict(zip((f"address_line_{n}" for n in range(1, 8)), case.printed, strict=False))
            )[0]
            == ACCEPT
        )
    verdict, _ = _fake_verdict(_as_sent(case))
    assert verdict == (case.fake or case.notify)


def test_the_fake_says_why_as_notify_does() -> None:
    verdict, message = _fake_verdict(_as_sent(CASES[10]))
    assert verdict == REFUSE
    assert (
        "The first 2 lines of the address must both include at least one alphanumeric character"
        in message
    )
