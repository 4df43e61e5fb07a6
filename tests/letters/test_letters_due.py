"""Which letters are due, vectorised over debts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csa_closure.letters import letters_due

AS_OF = date(2019, 4, 21)


def debt(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "debt_id": 1,
        "case_ref": "C000000001",
        "creditor": "PWC",
        "state": "awaiting_letter",
        "outcome": "representation",
        "response": None,
        "reminder_due": None,
        "response_deadline": None,
        "pwc_party_ref": "CSCS:P1",
        "nrp_party_ref": "CSCS:N1",
        "pwc_deceased_on": None,
        "nrp_deceased_on": None,
    }
    row.update(overrides)
    return row


def due(*rows: dict[str, Any], as_of: date = AS_OF, **kw: Any) -> list[tuple[str, str, str]]:
    frame = pl.DataFrame(list(rows), schema_overrides={"reminder_due": pl.Date})
    result = letters_due(frame, as_of, **kw)
    return [(r["purpose"], r["recipient"], r["party_ref"]) for r in result.iter_rows(named=True)]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, [("representation", "PWC", "CSCS:P1")]),
        ({"creditor": "SOS"}, []),
        ({"state": "write_off_pending", "outcome": "write_off_notice"},
         [("write_off_notice", "PWC", "CSCS:P1"), ("write_off_notice", "NRP", "CSCS:N1")]),
        ({"state": "write_off_pending", "outcome": "representation", "response": "DO_NOT_COLLECT"},
         [("write_off_notice", "PWC", "CSCS:P1"), ("write_off_notice", "NRP", "CSCS:N1")]),
        ({"state": "write_off_pending", "outcome": "write_off_silent"}, []),
        ({"state": "write_off_pending", "outcome": "write_off_silent", "creditor": "SOS"}, []),
        ({"state": "write_off_pending", "outcome": "write_off_notice", "creditor": "SOS"},
         [("write_off_notice", "NRP", "CSCS:N1")]),
        ({"state": "closed", "outcome": "nil"}, []),
        ({"state": "collect_requested", "response": "COLLECT"},
         [("collection_requested", "NRP", "CSCS:N1")]),
        ({"state": "transfer_ready", "outcome": "transfer"}, []),
        ({"state": "transfer_sent", "outcome": "transfer"}, []),
        ({"state": "transferred", "outcome": "transfer"},
         [("transfer_notice", "PWC", "CSCS:P1"), ("transfer_notice", "NRP", "CSCS:N1")]),
        ({"state": "transferred", "outcome": "transfer", "creditor": "SOS"},
         [("transfer_notice", "NRP", "CSCS:N1")]),
        ({"state": "review", "outcome": "manual_review"}, []),
        ({"state": "written_off", "outcome": "write_off_notice"}, []),
    ],
)  # fmt: skip
def test_letters_follow_the_debts_state(
    overrides: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert due(debt(**overrides)) == expected


def window(**overrides: Any) -> dict[str, Any]:
    return debt(
        state="awaiting_response",
        reminder_due=date(2019, 4, 21),
        response_deadline=date(2019, 5, 30),
        **overrides,
    )


def test_the_reminder_is_due_from_day_21_until_the_deadline_if_nothing_came_back() -> None:
    reminder = [("reminder", "PWC", "CSCS:P1")]
    assert due(window(), as_of=date(2019, 4, 20)) == []
    assert due(window(), as_of=date(2019, 4, 21)) == reminder
    assert due(window(), as_of=date(2019, 5, 29)) == reminder
    assert due(window(), as_of=date(2019, 5, 30)) == []  # a reminder on the last day is no use
    assert due(window(response="COLLECT")) == []
    assert due(window(creditor="SOS")) == []


def test_no_letter_to_a_parent_deceased_on_or_before_the_as_of_date() -> None:
    notice = {"state": "write_off_pending", "outcome": "write_off_notice"}
    assert due(debt(**notice, pwc_deceased_on=AS_OF)) == [("write_off_notice", "NRP", "CSCS:N1")]
    assert due(debt(**notice, nrp_deceased_on=AS_OF - timedelta(days=9))) == [
        ("write_off_notice", "PWC", "CSCS:P1")
    ]
    assert len(due(debt(**notice, pwc_deceased_on=AS_OF + timedelta(days=1)))) == 2
    assert due(debt(**notice, pwc_deceased_on=AS_OF, nrp_deceased_on=AS_OF)) == []
    assert due(debt(pwc_deceased_on=date(2000, 1, 1))) == []


def test_no_letter_without_the_recipients_party() -> None:
    assert due(debt(pwc_party_ref=None)) == []


def test_letters_already_made_are_not_due_again() -> None:
    rows = [debt(debt_id=1), debt(debt_id=2, state="write_off_pending", outcome="write_off_notice")]
    existing = pl.DataFrame(
        {
            "debt_id": [1, 2],
            "purpose": ["representation", "write_off_notice"],
            "recipient": ["PWC", "NRP"],
        }
    )
    assert due(*rows, existing=existing) == [("write_off_notice", "PWC", "CSCS:P1")]


def test_a_lazy_frame_gives_a_lazy_frame_ordered_by_debt() -> None:
    frame = pl.DataFrame(
        [debt(debt_id=3), debt(debt_id=1, state="transferred", outcome="transfer"), debt(debt_id=2)]
    ).lazy()
    result = letters_due(frame, AS_OF)
    assert isinstance(result, pl.LazyFrame)
    collected = result.collect()
    assert collected.columns == ["debt_id", "case_ref", "purpose", "recipient", "party_ref"]
    assert collected["debt_id"].to_list() == [1, 1, 2, 3]


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="response_deadline"):
        letters_due(pl.DataFrame([debt()]).drop("response_deadline"), AS_OF)


# --- the vectorised rules agree with a row-by-row reading of the policy ----------------------


def expected_for(row: dict[str, Any], as_of: date) -> set[tuple[str, str]]:
    """The policy, read one debt at a time (the reference the polars rules are checked against)."""

    def alive(who: str) -> bool:
        died = row[f"{who}_deceased_on"]
        return row[f"{who}_party_ref"] is not None and (died is None or died > as_of)

    pwc_debt = row["creditor"] == "PWC"
    letters: set[tuple[str, str]] = set()
    state = row["state"]
    if pwc_debt and state == "awaiting_letter" and row["outcome"] == "representation":
        letters.add(("representation", "PWC"))
    if (
        pwc_debt
        and state == "awaiting_response"
        and row["response"] is None
        and row["reminder_due"] is not None
        and row["response_deadline"] is not None
        and row["reminder_due"] <= as_of < row["response_deadline"]
    ):
        letters.add(("reminder", "PWC"))
    if state == "collect_requested" and row["response"] == "COLLECT":
        letters.add(("collection_requested", "NRP"))
    if state == "write_off_pending" and row["outcome"] != "write_off_silent":
        letters |= {("write_off_notice", "NRP")} | (
            {("write_off_notice", "PWC")} if pwc_debt else set()
        )
    if state == "transferred":
        letters |= {("transfer_notice", "NRP")} | (
            {("transfer_notice", "PWC")} if pwc_debt else set()
        )
    return {(p, r) for p, r in letters if alive(r.lower())}


maybe_date = st.one_of(st.none(), st.dates(date(2019, 1, 1), date(2019, 12, 31)))
rows = st.fixed_dictionaries(
    {
        "creditor": st.sampled_from(["PWC", "SOS"]),
        "state": st.sampled_from(
            ["pulled", "closed", "write_off_pending", "awaiting_letter", "awaiting_response",
             "collect_requested", "transfer_ready", "transfer_sent", "transferred", "review",
             "written_off"]
        ),
        "outcome": st.sampled_from(
            [None, "write_off_silent", "write_off_notice", "representation", "transfer",
             "manual_review", "nil"]
        ),
        "response": st.sampled_from([None, "COLLECT", "DO_NOT_COLLECT"]),
        "reminder_due": maybe_date,
        "response_deadline": maybe_date,
        "pwc_party_ref": st.sampled_from([None, "P"]),
        "nrp_party_ref": st.sampled_from([None, "N"]),
        "pwc_deceased_on": maybe_date,
        "nrp_deceased_on": maybe_date,
    }
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(rows, min_size=1, max_size=60), st.dates(date(2019, 1, 1), date(2019, 12, 31)))
def test_the_vectorised_rules_match_the_policy_row_by_row(
    generated: list[dict[str, Any]], as_of: date
) -> None:
    full = [{"debt_id": i, "case_ref": f"C{i:09d}", **row} for i, row in enumerate(generated)]
    frame = pl.DataFrame(
        full,
        schema_overrides={
            c: pl.Date
            for c in ("reminder_due", "response_deadline", "pwc_deceased_on", "nrp_deceased_on")
        }
        | {c: pl.String for c in ("outcome", "response", "pwc_party_ref", "nrp_party_ref")},
    )
    result = letters_due(frame, as_of)
    got: dict[int, set[tuple[str, str]]] = {}
    for r in result.iter_rows(named=True):
        got.setdefault(r["debt_id"], set()).add((r["purpose"], r["recipient"]))
    for row in full:
        assert got.get(row["debt_id"], set()) == expected_for(row, as_of), row
