"""Caseworkers: the review queue, decisions recorded like any other, and the guards."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, select

from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.stages.review import decide, list_review, refer
from csa_closure.store.schema import events, letters
from tests.support.builders import BookBuilder
from tests.support.resolve import assert_balanced, debt_row, final_chance_debt, seal_pull

AS_OF = date(2019, 3, 31)


@pytest.fixture
def book(ctx: Context) -> BookBuilder:
    return BookBuilder(ctx)


def test_the_list_shows_review_and_flagged_open_debts_without_personal_data(
    ctx: Context, book: BookBuilder
) -> None:
    in_review = book.debt(
        book.case("C000000001"), "PWC", 1_000, state="review", review_reason="NRP_DISPUTE"
    )
    flagged = final_chance_debt(
        book, book.case("C000000002"), 2_000, date(2019, 1, 1), needs_tracing=True
    )
    book.debt(book.case("C000000003"), "PWC", 3_000, state="awaiting_letter")  # not listed
    book.debt(book.case("C000000004"), "PWC", 4_000, state="transferred", needs_caseworker=True)
    items = list_review(ctx)
    assert [(i.debt_id, i.state) for i in items] == [
        (in_review, "review"),
        (flagged, "awaiting_response"),
    ]
    assert items[0].review_reason == "NRP_DISPUTE" and items[1].needs_tracing
    assert [i.next_step for i in items] == ["decide", "decide (it is referred to review first)"]
    assert [i.case_ref for i in list_review(ctx, review_reason="NRP")] == ["C000000001"]
    assert list_review(ctx, state="awaiting_response")[0].debt_id == flagged
    fields = set(items[0].__dataclass_fields__)
    assert not fields & {"family_name", "given_names", "nino", "birth_date", "postcode"}


def test_a_decision_is_recorded_like_a_rules_decision(ctx: Context, book: BookBuilder) -> None:
    debt = book.debt(
        book.case("C000000001"),
        "PWC",
        50_000,
        state="review",
        outcome="manual_review",
        reason="NRP_DECEASED",
        rule_id="PWC-07",
        ruleset_hash="h" * 64,
        review_reason="NRP_DECEASED",
    )
    seal_pull(ctx)
    result = decide(ctx, "C000000001", "PWC", "write_off_notice", "ESTATE_HAS_NO_ASSETS")
    row = debt_row(ctx, debt)
    assert (row.state, row.outcome, row.reason, row.rule_id, row.ruleset_hash) == (
        "write_off_pending",
        "write_off_notice",
        "ESTATE_HAS_NO_ASSETS",
        "caseworker",
        None,
    )
    assert (row.decided_run_id, row.decided_by, row.decided_as_of) == (
        result.run_id,
        "tester",
        AS_OF,
    )
    assert row.review_reason is None and not result.referred
    with ctx.engine.connect() as conn:
        event = conn.execute(select(events).where(events.c.event_type == "debt.reviewed")).one()
    assert event.detail["previous_reason"] == "NRP_DECEASED"
    assert event.actor == "tester" and event.run_id == result.run_id
    assert_balanced(ctx)


def test_a_flagged_open_debt_is_referred_and_decided_in_one_go(
    ctx: Context, book: BookBuilder
) -> None:
    debt = final_chance_debt(
        book,
        book.case("C000000001"),
        80_000,
        date(2019, 1, 1),
        needs_caseworker=True,
        review_reason="LETTER_RETURNED",
    )
    result = decide(ctx, "C000000001", "PWC", "transfer", "PWC_TRACED_WANTS_COLLECTION")
    assert (result.from_state, result.state, result.referred) == (
        "awaiting_response",
        "transfer_ready",
        True,
    )
    row = debt_row(ctx, debt)
    assert (row.state, row.needs_caseworker, row.needs_tracing) == ("transfer_ready", False, False)
    with ctx.engine.connect() as conn:
        moves = conn.execute(
            select(events.c.from_state, events.c.to_state)
            .where(events.c.debt_id == debt)
            .order_by(events.c.event_id)
        ).all()
    assert moves == [("awaiting_response", "review"), ("review", "transfer_ready")]


def test_refer_takes_an_unflagged_debt_into_review(ctx: Context, book: BookBuilder) -> None:
    debt = book.debt(book.case("C000000001"), "PWC", 90_000, state="collect_requested")
    with pytest.raises(UsageError, match="review refer C000000001 --creditor PWC"):
        decide(ctx, "C000000001", "PWC", "transfer", "X_CODE")
    result = refer(ctx, "C000000001", "PWC", "COMPLAINT")
    assert (result.state, debt_row(ctx, debt).review_reason) == ("review", "COMPLAINT")
    with pytest.raises(UsageError, match="already in review"):
        refer(ctx, "C000000001", "PWC", "COMPLAINT")
    decide(ctx, "C000000001", "PWC", "write_off_silent", "PWC_WITHDREW")
    assert debt_row(ctx, debt).state == "write_off_pending"


@pytest.mark.parametrize(
    ("state", "outcome", "message"),
    [
        ("transfer_sent", "write_off_notice", "transfer ack FILE"),
        ("written_off", "transfer", "ledger reverse"),
        ("transferred", "write_off_notice", "closed"),
        ("review", "nil", "nil is only for a debt with nothing owed"),
        ("review", "manual_review", "not a decision"),
    ],
)
def test_decisions_are_refused_where_they_would_lose_track_of_money(
    ctx: Context, book: BookBuilder, state: str, outcome: str, message: str
) -> None:
    book.debt(book.case("C000000001"), "PWC", 10_000, state=state, needs_caseworker=True)
    with pytest.raises(UsageError, match=message):
        decide(ctx, "C000000001", "PWC", outcome, "SOME_REASON")


def test_representation_only_once_and_only_for_the_pwc(ctx: Context, book: BookBuilder) -> None:
    case = book.case("C000000001")
    pwc = book.debt(case, "PWC", 10_000, state="review")
    book.debt(case, "SOS", 10_000, state="review")
    with pytest.raises(UsageError, match="only for a PWC debt"):
        decide(ctx, "C000000001", "SOS", "representation", "WANTS_FINAL_CHANCE")
    with ctx.engine.begin() as conn:
        party = conn.exec_driver_sql("SELECT pwc_party_ref FROM cases").scalar_one()
        conn.execute(
            insert(letters).values(
                reference="TEST-REP-1",
                debt_id=pwc,
                case_ref="C000000001",
                purpose="representation",
                recipient="PWC",
                party_ref=party,
                status="sent",
                attempts=1,
                created_at=ctx.clock(),
            )
        )
    with pytest.raises(UsageError, match="already had its final-chance letter"):
        decide(ctx, "C000000001", "PWC", "representation", "WANTS_FINAL_CHANCE")


def test_a_zero_balance_may_be_decided_nil_and_a_bad_reason_is_refused(
    ctx: Context, book: BookBuilder
) -> None:
    debt = book.debt(book.case("C000000001"), "PWC", 0, state="review")
    with pytest.raises(UsageError, match="code in capitals"):
        decide(ctx, "C000000001", "PWC", "nil", "paid in full by Mr Smith")
    decide(ctx, "C000000001", "PWC", "nil", "PAID_IN_FULL")
    assert debt_row(ctx, debt).state == "closed"
    with pytest.raises(UsageError, match="no SOS debt on case C000000001"):
        decide(ctx, "C000000001", "SOS", "nil", "PAID_IN_FULL")
