"""Composing letters: the recipient's own details, the decision, nothing about the other parent."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from datetime import date, timedelta

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from csa_closure.letters import (
    ALLOWED_LETTERS,
    AddressNotUsable,
    LetterFacts,
    LetterKind,
    LetterNotAllowed,
    LetterPurpose,
    LettersConfig,
    Recipient,
    RecipientParty,
    compose,
    format_date,
    format_pence,
    is_reference,
    letters_due,
    load_letters_config,
    new_reference,
    parse_letters_config,
    prepare_letter,
    response_window,
)
from csa_closure.letters.config import bundled_config_text

CONFIG = load_letters_config(env={})
LETTER_DATE = date(2019, 3, 31)


def alice(**overrides: object) -> RecipientParty:
    values: dict[str, object] = {
        "party_ref": "CSCS:P000000001",
        "given_names": "Alice Jane",
        "family_name": "Pwcperson",
        "address_line_1": "1 Carer Close",
        "address_line_3": "Caretown",
        "postcode": "ls1 1ba",
    }
    values.update(overrides)
    return RecipientParty(**values)  # type: ignore[arg-type]


def facts(**overrides: object) -> LetterFacts:
    values: dict[str, object] = {
        "case_ref": "C123456789",
        "amount_pence": 123456,
        "letter_date": LETTER_DATE,
        "decision_date": date(2019, 3, 1),
        "response_deadline": date(2019, 5, 30),
        "first_letter_date": date(2019, 3, 31),
    }
    values.update(overrides)
    return LetterFacts(**values)  # type: ignore[arg-type]


# --- money, dates, windows -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pence", "text"),
    [
        (0, "£0.00"),
        (5, "£0.05"),
        (99, "£0.99"),
        (100, "£1.00"),
        (123456, "£1,234.56"),
        (6_500, "£65.00"),
        (100_000_000_01, "£100,000,000.01"),
    ],
)
def test_money_is_formatted_exactly_from_integer_pence(pence: int, text: str) -> None:
    assert format_pence(pence) == text


@given(st.integers(min_value=0, max_value=10**15))
def test_money_formatting_round_trips(pence: int) -> None:
    text = format_pence(pence)
    pounds, pennies = text.removeprefix("£").replace(",", "").split(".")
    assert int(pounds) * 100 + int(pennies) == pence


@pytest.mark.parametrize("bad", [1.5, True, "100"])
def test_money_must_be_integer_pence(bad: object) -> None:
    with pytest.raises(TypeError):
        format_pence(bad)  # type: ignore[arg-type]


def test_a_letter_never_states_a_negative_amount() -> None:
    with pytest.raises(ValueError):
        format_pence(-1)


def test_dates_are_written_the_gov_uk_way() -> None:
    assert format_date(date(2019, 3, 1)) == "1 March 2019"
    assert format_date(date(2020, 12, 31)) == "31 December 2020"


def test_the_window_is_60_days_with_a_reminder_on_day_21_by_default() -> None:
    window = response_window(LETTER_DATE, CONFIG)
    assert window.reminder_due == date(2019, 4, 21)
    assert window.response_deadline == date(2019, 5, 30)
    longer = parse_letters_config(
        bundled_config_text().replace("response_days = 60", "response_days = 90")
    )
    assert response_window(LETTER_DATE, longer).response_deadline == date(2019, 6, 29)


# --- what a letter carries ------------------------------------------------------------------


def test_a_representation_letter_carries_the_address_then_the_template_placeholders() -> None:
    personalisation = compose(
        LetterPurpose.REPRESENTATION,
        Recipient.PWC,
        alice(),
        facts(response_deadline=None),
        CONFIG,
    )
    assert personalisation == {
        "address_line_1": "Alice Jane Pwcperson",
        "address_line_2": "1 Carer Close",
        "address_line_3": "Caretown",
        "address_line_4": "LS1 1BA",
        "name": "Alice Jane Pwcperson",
        "case_reference": "C123456789",
        "amount_owed": "£1,234.56",
        "letter_date": "31 March 2019",
        "reply_by": "30 May 2019",  # letter date + 60 days
    }


def test_every_letter_composes_with_exactly_its_configured_placeholders() -> None:
    for kind in sorted(ALLOWED_LETTERS):
        personalisation = compose(kind.purpose, kind.recipient, alice(), facts(), CONFIG)
        address = [k for k in personalisation if k.startswith("address_line_")]
        assert address == [f"address_line_{n}" for n in range(1, len(address) + 1)]
        rest = [k for k in personalisation if not k.startswith("address_line_")]
        assert tuple(rest) == CONFIG.template(kind).placeholder_names
        assert all(isinstance(v, str) and v for v in personalisation.values())


def test_a_reminder_needs_the_deadline_and_first_letter_date_it_prints() -> None:
    with pytest.raises(LetterNotAllowed) as caught:
        compose("reminder", "PWC", alice(), facts(first_letter_date=None), CONFIG)
    assert caught.value.code == "MISSING_FIRST_LETTER_DATE"
    with pytest.raises(LetterNotAllowed) as caught:
        compose("reminder", "PWC", alice(), facts(response_deadline=None), CONFIG)
    assert caught.value.code == "MISSING_RESPONSE_DEADLINE"


def test_no_letter_exists_for_a_purpose_to_the_wrong_parent() -> None:
    for purpose, recipient in [
        ("representation", "NRP"),
        ("reminder", "NRP"),
        ("collection_requested", "PWC"),
    ]:
        with pytest.raises(LetterNotAllowed) as caught:
            compose(purpose, recipient, alice(), facts(), CONFIG)
        assert caught.value.code == "NO_SUCH_LETTER"


def test_no_letter_to_a_parent_deceased_on_or_before_the_letter_date() -> None:
    for died in (LETTER_DATE, LETTER_DATE - timedelta(days=400)):
        with pytest.raises(LetterNotAllowed) as caught:
            compose("write_off_notice", "PWC", alice(deceased_on=died), facts(), CONFIG)
        assert caught.value.code == "DECEASED"
        assert "Alice" not in str(caught.value)
    compose(
        "write_off_notice",
        "PWC",
        alice(deceased_on=LETTER_DATE + timedelta(days=1)),
        facts(),
        CONFIG,
    )


def test_an_unusable_address_is_refused_with_its_code_and_no_personal_data() -> None:
    with pytest.raises(AddressNotUsable) as caught:
        compose("representation", "PWC", alice(postcode="Carerville"), facts(), CONFIG)
    assert caught.value.code == "ADDRESS:BAD_POSTCODE:4"
    assert "Carer" not in str(caught.value)


def test_personal_data_stays_out_of_reprs() -> None:
    party = alice()
    letter = prepare_letter(new_reference(), "representation", "PWC", party, facts(), CONFIG)
    for text in (repr(party), repr(letter), str(letter)):
        assert "Alice" not in text and "Carer" not in text and "LS1" not in text


def test_a_party_is_read_from_a_parties_row_taking_only_what_a_letter_needs() -> None:
    row = {
        "party_ref": "CS2:42",
        "source_system": "CS2",
        "family_name": "Pwcperson",
        "given_names": "Alice",
        "birth_date": date(1980, 1, 1),
        "nino": "QQ123456C",
        "address_line_1": "1 Carer Close",
        "address_line_2": None,
        "address_line_3": "Caretown",
        "address_line_4": None,
        "address_line_5": None,
        "postcode": "LS1 1BA",
        "deceased_on": None,
        "employment": "EMPLOYED",
    }
    party = RecipientParty.from_row(row)
    personalisation = compose("write_off_notice", "PWC", party, facts(), CONFIG)
    assert "QQ123456C" not in str(personalisation.values())
    assert "1980" not in str(personalisation.values())


def test_prepare_letter_needs_an_opaque_reference() -> None:
    with pytest.raises(ValueError):
        prepare_letter("C123456789-PWC", "representation", "PWC", alice(), facts(), CONFIG)
    letter = prepare_letter(new_reference(), "representation", "PWC", alice(), facts(), CONFIG)
    assert letter.template_id == CONFIG.template(letter.kind).template_id


def test_references_are_opaque_random_and_unique() -> None:
    references = {new_reference() for _ in range(10_000)}
    assert len(references) == 10_000
    assert all(is_reference(r) and len(r) == 24 for r in references)
    assert new_reference(lambda n: "ab" * n) == "csa-" + "ab" * 10
    assert not is_reference("csa-XYZ") and not is_reference(None)


# --- the other parent can never be in a letter --------------------------------------------


def test_compose_is_never_given_the_other_parent() -> None:
    parameters = list(inspect.signature(compose).parameters)
    assert parameters == ["purpose", "recipient", "party", "facts", "config"]
    assert {f.name for f in fields(LetterFacts)} == {
        "case_ref",
        "amount_pence",
        "letter_date",
        "decision_date",
        "response_deadline",
        "first_letter_date",
    }


@dataclass(frozen=True)
class Case:
    case_ref: str
    dv_marker: bool
    pwc: RecipientParty
    nrp: RecipientParty


# Words a generated parent's details are made of. Each parent gets its own marker prefix, so
# any of one parent's words found in the other parent's letter can only have come from the
# other parent (no month, amount or code contains "Qx" or "Zy").
_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8)
_POSTCODE = st.builds(
    lambda area, district, sector, unit: f"{area}{district} {sector}{unit}",
    st.sampled_from(["LS", "M", "B", "SW", "EC", "CF", "BT", "G", "AB", "TR"]),
    st.integers(min_value=1, max_value=99),
    st.integers(min_value=0, max_value=9),
    st.sampled_from(["AA", "BD", "ZZ", "HJ", "NP", "UW", "XY"]),
)


def _person(marker: str, ref: str) -> st.SearchStrategy[RecipientParty]:
    phrase = st.lists(_WORD, min_size=1, max_size=3).map(
        lambda words: " ".join(marker + w for w in words)
    )
    optional = st.one_of(st.none(), phrase)
    return st.builds(
        RecipientParty,
        party_ref=st.just(ref),
        given_names=phrase,
        family_name=phrase,
        address_line_1=phrase,
        address_line_2=optional,
        address_line_3=optional,
        address_line_4=optional,
        address_line_5=optional,
        postcode=_POSTCODE,
        deceased_on=st.one_of(st.none(), st.dates(date(2015, 1, 1), date(2021, 1, 1))),
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    number = draw(st.integers(min_value=1, max_value=999_999_999))
    case_ref = f"C{number:09d}"
    pwc = draw(_person("Qx", f"CSCS:P{number:09d}"))
    nrp = draw(_person("Zy", f"CSCS:N{number:09d}"))
    compact = [p.postcode.replace(" ", "") for p in (pwc, nrp)]  # type: ignore[union-attr]
    assume(compact[0] not in compact[1] and compact[1] not in compact[0])
    return Case(case_ref, draw(st.booleans()), pwc, nrp)


def _details(party: RecipientParty) -> list[str]:
    """Everything about a parent that identifies or locates them, word by word."""
    texts = [
        party.party_ref,
        party.given_names,
        party.family_name,
        party.address_line_1,
        party.address_line_2,
        party.address_line_3,
        party.address_line_4,
        party.address_line_5,
    ]
    words = [w for t in texts if t for w in t.split()]
    postcode = party.postcode or ""
    return [*words, postcode, postcode.replace(" ", "")]


STATES = [
    ("PWC", "awaiting_letter", "representation", None),
    ("PWC", "awaiting_response", "representation", None),
    ("PWC", "collect_requested", "representation", "COLLECT"),
    ("PWC", "write_off_pending", "write_off_notice", None),
    ("PWC", "write_off_pending", "representation", "DO_NOT_COLLECT"),
    ("PWC", "transferred", "transfer", None),
    ("SOS", "transferred", "transfer", None),
    ("SOS", "write_off_pending", "write_off_silent", None),
    ("PWC", "write_off_pending", "write_off_silent", None),
    ("PWC", "closed", "nil", None),
]


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(cases(), min_size=1, max_size=8, unique_by=lambda c: c.case_ref))
def test_no_letter_carries_the_other_parents_details(generated: list[Case]) -> None:
    as_of = date(2019, 4, 25)
    rows = []
    for i, case in enumerate(generated):
        for j, (creditor, state, outcome, response) in enumerate(STATES):
            rows.append(
                {
                    "debt_id": i * 100 + j,
                    "case_ref": case.case_ref,
                    "creditor": creditor,
                    "state": state,
                    "outcome": outcome,
                    "response": response,
                    "reminder_due": date(2019, 4, 21),
                    "response_deadline": date(2019, 5, 30),
                    "pwc_party_ref": case.pwc.party_ref,
                    "nrp_party_ref": case.nrp.party_ref,
                    "pwc_deceased_on": case.pwc.deceased_on,
                    "nrp_deceased_on": case.nrp.deceased_on,
                }
            )
    by_ref = {c.case_ref: c for c in generated}
    due = letters_due(pl.DataFrame(rows), as_of)
    assert due.height > 0 or all(
        c.pwc.deceased_by(as_of) and c.nrp.deceased_by(as_of) for c in generated
    )
    for letter in due.iter_rows(named=True):
        case = by_ref[letter["case_ref"]]
        recipient, other = (
            (case.pwc, case.nrp) if letter["recipient"] == "PWC" else (case.nrp, case.pwc)
        )
        assert letter["party_ref"] == recipient.party_ref
        reference = new_reference()
        outgoing = prepare_letter(
            reference,
            letter["purpose"],
            letter["recipient"],
            recipient,
            facts(case_ref=case.case_ref, letter_date=as_of),
            CONFIG,
        )
        text = "\n".join(
            [reference, *outgoing.personalisation.keys(), *outgoing.personalisation.values()]
        )
        leaked = [d for d in _details(other) if d and d in text]
        # The same search finds the recipient's own name and postcode: it would find a leak.
        own = [d for d in _details(recipient) if d and d in text]
        assert recipient.postcode in own and (recipient.family_name or "").split()[0] in own
        assert not leaked, f"{letter['purpose']} to {letter['recipient']} carries the other parent"
        assert (
            outgoing.personalisation["address_line_1"]
            == " ".join([recipient.given_names or "", recipient.family_name or ""]).strip()
        )
        assert not recipient.deceased_by(as_of)


def test_every_configured_field_is_about_the_recipient_or_the_decision() -> None:
    config: LettersConfig = CONFIG
    for kind in ALLOWED_LETTERS:
        assert isinstance(kind, LetterKind)
        for _, field in config.template(kind).placeholders:
            assert field.value in {
                "recipient_name",
                "case_reference",
                "amount",
                "letter_date",
                "decision_date",
                "response_deadline",
                "first_letter_date",
            }
