"""Composing a frame of letters at once (``compose_frame``) is ``prepare_letter`` exactly: a
letter is composable in the frame when and only when ``prepare_letter`` composes it, and then
its address, template and every placeholder are what ``prepare_letter`` gives."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csa_closure.letters import (
    LetterFacts,
    LettersConfig,
    RecipientParty,
    load_letters_config,
    new_reference,
    parse_letters_config,
    prepare_letter,
)
from csa_closure.letters.compose import LETTER_FRAME_SCHEMA, compose_frame
from csa_closure.letters.fields import ADDRESS_KEYS, LetterField
from tests.letters.test_letters_address_frame import parties

BUNDLED = load_letters_config(env={})
# Another service's: a shorter window, placeholders listed by field, two letters on one template.
OTHER = parse_letters_config(
    """
version = 1
[window]
response_days = 30
reminder_after_days = 10
[templates.representation.PWC]
template_id = "11111111-1111-4111-8111-111111111111"
placeholders = ["recipient_name", "case_reference", "amount", "letter_date", "response_deadline",
                "decision_date"]
[templates.reminder.PWC]
template_id = "22222222-2222-4222-8222-222222222222"
placeholders = { "Reply by" = "response_deadline", "first-letter" = "first_letter_date" }
[templates.collection_requested.NRP]
template_id = "33333333-3333-4333-8333-333333333333"
placeholders = { amount = "amount", on = "decision_date" }
[templates.write_off_notice.PWC]
template_id = "44444444-4444-4444-8444-444444444444"
placeholders = { name = "recipient_name", amount = "amount", decided = "decision_date" }
[templates.write_off_notice.NRP]
template_id = "44444444-4444-4444-8444-444444444444"
placeholders = { name = "recipient_name", amount = "amount", decided = "decision_date" }
[templates.transfer_notice.PWC]
template_id = "66666666-6666-4666-8666-666666666666"
[templates.transfer_notice.NRP]
template_id = "77777777-7777-4777-8777-777777777777"
placeholders = ["letter_date"]
""",
    source="another service's letters.toml",
)

KINDS = [
    ("representation", "PWC"),
    ("reminder", "PWC"),
    ("collection_requested", "NRP"),
    ("write_off_notice", "PWC"),
    ("write_off_notice", "NRP"),
    ("transfer_notice", "PWC"),
    ("transfer_notice", "NRP"),
]
ODD_KINDS = [
    ("representation", "NRP"),
    ("reminder", "NRP"),
    ("nil", "PWC"),
    ("", ""),
    (None, "PWC"),
]
AMOUNTS = [0, 1, 99, 100, 101, 99_999, 100_000, 123_456, 99_999_999, 100_000_000, 10**15, 10**17]


def _dates() -> st.SearchStrategy[date | None]:
    return st.one_of(
        st.dates(date(2015, 1, 1), date(2025, 12, 31)),
        st.dates(date(2015, 1, 1), date(2025, 12, 31)),
        st.none(),
        st.sampled_from([date(1, 1, 1), date(999, 12, 31), date(9999, 12, 31), date(9999, 11, 5)]),
    )


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda n: table[n])


_TEXT = st.text(alphabet="ABCabc019 ,'-+=@&\"\u00e9\u00df\u3000", min_size=1, max_size=30)
usable_parties = st.fixed_dictionaries(
    {
        "given_names": st.one_of(st.none(), _TEXT.map(lambda t: "G" + t)),
        "family_name": _TEXT.map(lambda t: "F" + t),
        "address_line_1": _TEXT.map(lambda t: "1" + t),
        "address_line_2": st.one_of(st.none(), _TEXT.map(lambda t: "2" + t)),
        "address_line_3": st.one_of(st.none(), _TEXT.map(lambda t: "3" + t)),
        "address_line_4": st.one_of(st.none(), _TEXT.map(lambda t: "4" + t)),
        "address_line_5": st.one_of(st.none(), _TEXT),
        "postcode": st.sampled_from(["SW1A 1AA", "sw1a1aa", " m1  1ae ", "BT1 1AA", "QQ1 1AA"]),
    }
)
letters = st.fixed_dictionaries(
    {
        "reference": _weighted(
            (8, st.builds(new_reference)),
            (1, st.sampled_from(["csa-XYZ", "", "csa-0123456789abcdef0123 ", None])),
        ),
        "kind": _weighted((8, st.sampled_from(KINDS)), (1, st.sampled_from(ODD_KINDS))),
        "party": _weighted((2, parties), (3, usable_parties)),
        "deceased_on": st.one_of(st.none(), st.none(), _dates()),
        "case_ref": _weighted(
            (8, st.from_regex(r"\A[A-Z0-9]{1,16}\Z")),
            (1, st.sampled_from(["", "c123", "C123\n", "C" * 17, "C 1", None])),
        ),
        "amount_pence": _weighted(
            (4, st.integers(0, 10**12)),
            (2, st.sampled_from(AMOUNTS)),
            (1, st.sampled_from([-1, -100, None])),
        ),
        "letter_date": _dates(),
        "decision_date": _dates(),
        "response_deadline": _dates(),
        "first_letter_date": _dates(),
    }
)


def _row(letter: dict[str, Any]) -> dict[str, Any]:
    purpose, recipient = letter["kind"]
    return {
        "reference": letter["reference"],
        "purpose": purpose,
        "recipient": recipient,
        **letter["party"],
        **{k: letter[k] for k in LETTER_FRAME_SCHEMA if k in letter},
    }


def _prepared(letter: dict[str, Any], config: LettersConfig) -> Any:
    """What prepare_letter makes of the letter, or None if it refuses it (any exception)."""
    purpose, recipient = letter["kind"]
    try:
        party = RecipientParty("CS2:1", **letter["party"], deceased_on=letter["deceased_on"])
        facts = LetterFacts(
            letter["case_ref"],
            letter["amount_pence"],
            letter["letter_date"],
            letter["decision_date"],
            letter["response_deadline"],
            letter["first_letter_date"],
        )
        return prepare_letter(letter["reference"], purpose, recipient, party, facts, config)
    except Exception:
        return None


_EDGE = {
    "reference": "csa-0123456789abcdef0123",
    "kind": ("representation", "PWC"),
    "party": {
        "given_names": "Alex",
        "family_name": "Example",
        "address_line_1": "1 Test Street",
        "address_line_2": None,
        "address_line_3": "Testtown",
        "address_line_4": None,
        "address_line_5": None,
        "postcode": "SW1A 1AA",
    },
    "deceased_on": None,
    "case_ref": "C1",
    "amount_pence": 5,
    "letter_date": date(9999, 11, 5),  # its window would end after the last date there is
    "decision_date": date(2019, 3, 1),
    "response_deadline": None,
    "first_letter_date": None,
}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(letters, min_size=1, max_size=30), st.sampled_from([BUNDLED, OTHER]))
@example(
    [
        _EDGE,  # refused: compose works the deadline out, and it overflows
        {**_EDGE, "response_deadline": date(9999, 12, 31)},  # composed: the deadline is given
        {**_EDGE, "letter_date": None},  # refused: no letter date
        {**_EDGE, "deceased_on": date(9999, 11, 5)},  # refused: died on the letter date
        {**_EDGE, "deceased_on": date(9999, 11, 6), "response_deadline": date(2019, 1, 1)},
        {**_EDGE, "kind": ("reminder", "PWC"), "first_letter_date": date(2019, 1, 1)},
    ],
    BUNDLED,
)
def test_the_frame_composes_exactly_the_letters_prepare_letter_does(
    generated: list[dict[str, Any]], config: LettersConfig
) -> None:
    frame = pl.DataFrame([_row(x) for x in generated], schema=LETTER_FRAME_SCHEMA)
    composed = compose_frame(frame, config)
    assert composed.height == len(generated)
    templates = {k.key: t for k, t in config.templates.items()}
    for letter, row in zip(generated, composed.iter_rows(named=True), strict=True):
        expected = _prepared(letter, config)
        assert row["composable"] is (expected is not None)
        assert row["reference"] == letter["reference"]
        if expected is None:
            continue
        assert row["kind"] == expected.kind.key
        assert row["template_id"] == expected.template_id
        template = templates[row["kind"]]
        personalisation = {k: row[k] for k in ADDRESS_KEYS if row[k] is not None}
        personalisation.update((name, row[f.value]) for name, f in template.placeholders)
        assert personalisation == expected.personalisation
        # and the whole address, the name first, whether or not the template prints it
        assert row[LetterField.RECIPIENT_NAME.value] == expected.personalisation["address_line_1"]


def test_money_and_dates_read_as_compose_writes_them() -> None:
    base = {
        "reference": new_reference(),
        "kind": ("representation", "PWC"),
        "party": {
            "given_names": "Alex",
            "family_name": "Example",
            "address_line_1": "1 Test Street",
            "address_line_2": None,
            "address_line_3": "Testtown",
            "address_line_4": None,
            "address_line_5": None,
            "postcode": "SW1A 1AA",
        },
        "deceased_on": None,
        "case_ref": "C123",
        "decision_date": date(2019, 3, 1),
        "response_deadline": None,
        "first_letter_date": None,
    }
    amounts = [*AMOUNTS, *range(0, 2_000, 7), *(10**n - 1 for n in range(1, 18))]
    days = [date(2019, 1, 1) + timedelta(days=n) for n in range(0, 800, 3)]
    generated = [
        {**base, "amount_pence": pence, "letter_date": day}
        for pence, day in zip(amounts * 3, days, strict=False)
    ]
    frame = pl.DataFrame([_row(x) for x in generated], schema=LETTER_FRAME_SCHEMA)
    composed = compose_frame(frame, BUNDLED).to_dicts()
    for letter, row in zip(generated, composed, strict=True):
        expected = _prepared(letter, BUNDLED).personalisation
        assert (row["amount"], row["letter_date"], row["response_deadline"]) == (
            expected["amount_owed"],
            expected["letter_date"],
            expected["reply_by"],
        )


def test_an_empty_frame() -> None:
    composed = compose_frame(pl.DataFrame(schema=LETTER_FRAME_SCHEMA), BUNDLED)
    assert composed.height == 0 and "composable" in composed.columns
