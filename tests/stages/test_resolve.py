"""Resolve: expiry at the deadline, collectability boundaries, write-offs waiting for notices."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from csa_closure.context import Context
from csa_closure.stages.resolve import resolve
from csa_closure.store.schema import events, ledger_entries, letters, rule_sets
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    assert_balanced,
    debt_row,
    final_chance_debt,
    ledger_rows,
    seal_pull,
    send_notices,
    states,
)

AS_OF = date(2019, 3, 31)


@pytest.fixture
def book(ctx: Context) -> BookBuilder:
    return BookBuilder(ctx)


def test_a_window_expires_the_day_after_its_deadline_unless_flagged(
    ctx: Context, book: BookBuilder
) -> None:
    on_deadline = final_chance_debt(book, book.case(), 200_000, AS_OF - timedelta(days=60))
    past = final_chance_debt(book, book.case(), 300_000, AS_OF - timedelta(days=61))
    flagged = final_chance_debt(
        book, book.case(), 400_000, AS_OF - timedelta(days=61), needs_caseworker=True
    )
    tracing = final_chance_debt(
        book, book.case(), 500_000, AS_OF - timedelta(days=90), needs_tracing=True
    )
    seal_pull(ctx)
    result = resolve(ctx)
    assert (result.expired.debts, result.expired.pence) == (1, 300_000)
    assert (result.expiry_held.debts, result.expiry_held.pence) == (2, 900_000)
    assert debt_row(ctx, on_deadline).state == "awaiting_response"  # today is still in time
    expired = debt_row(ctx, past)
    assert (expired.state, expired.outcome, expired.reason, expired.rule_id) == (
        "write_off_pending",
        "write_off_notice",
        "NO_RESPONSE",
        "final_chance.no_response",
    )
    assert (expired.decided_run_id, expired.decided_as_of) == (result.run_id, AS_OF)
    assert debt_row(ctx, flagged).state == "awaiting_response"
    assert debt_row(ctx, tracing).state == "awaiting_response"
    # nothing is written off until both parents' notices are settled
    assert result.written_off.debts == 0 and result.waiting_for_notices.debts == 1
    assert_balanced(ctx)


def _collect_requested(book: BookBuilder, pence: int, **nrp: object) -> int:
    case = book.case(nrp=book.party(**nrp))
    return book.debt(case, "PWC", pence, state="collect_requested", response="COLLECT")


def test_collectability_boundaries_and_the_recorded_decision(
    ctx: Context, book: BookBuilder
) -> None:
    # employed: 60%, cost £300.00 -> £500.00 yields exactly £300.00: yield - cost = 0
    exactly_zero = _collect_requested(book, 50_000, employment="EMPLOYED")
    a_penny_short = _collect_requested(book, 49_999, employment="EMPLOYED")
    # unknown employment: 5% -> £6,000.00 yields exactly £300.00
    unknown_zero = _collect_requested(book, 600_000, employment="UNKNOWN")
    deceased = _collect_requested(book, 9_000_000, deceased_on=AS_OF)
    alive_until_tomorrow = _collect_requested(book, 9_000_000, deceased_on=AS_OF + timedelta(1))
    untraceable = _collect_requested(
        book, 9_000_000, nino=None, address_verified_on=date(2017, 3, 30)
    )
    traced_by_address = _collect_requested(
        book, 9_000_000, nino=None, address_verified_on=date(2017, 3, 31)
    )
    seal_pull(ctx)
    result = resolve(ctx)
    expected = {
        exactly_zero: ("transfer_ready", "transfer", "COLLECTABLE", "COL-03"),
        a_penny_short: ("write_off_pending", "write_off_notice", "NOT_COST_EFFECTIVE", "COL-04"),
        unknown_zero: ("transfer_ready", "transfer", "COLLECTABLE", "COL-03"),
        deceased: ("write_off_pending", "write_off_notice", "NRP_DECEASED", "COL-01"),
        alive_until_tomorrow: ("transfer_ready", "transfer", "COLLECTABLE", "COL-03"),
        untraceable: ("write_off_pending", "write_off_notice", "UNTRACEABLE", "COL-02"),
        traced_by_address: ("transfer_ready", "transfer", "COLLECTABLE", "COL-03"),
    }
    for debt_id, (state, outcome, reason, rule_id) in expected.items():
        row = debt_row(ctx, debt_id)
        assert (row.state, row.outcome, row.reason, row.rule_id) == (
            state,
            outcome,
            reason,
            rule_id,
        ), debt_id
        assert row.ruleset_hash == result.ruleset_hash
        assert (row.decided_run_id, row.decided_by, row.decided_as_of) == (
            result.run_id,
            "tester",
            AS_OF,
        )
    by_rule = {r["rule_id"]: r["debts"] for r in result.collectability}
    assert by_rule == {"COL-01": 1, "COL-02": 1, "COL-03": 4, "COL-04": 1}
    with ctx.engine.connect() as conn:
        assert conn.execute(select(rule_sets.c.ruleset_hash)).scalar_one() == result.ruleset_hash
        detail = conn.execute(
            select(events.c.detail).where(
                events.c.debt_id == exactly_zero,
                events.c.event_type == "debt.collectability_decided",
            )
        ).scalar_one()
    assert (detail["expected_yield_pence"], detail["collection_cost_pence"]) == (30_000, 30_000)
    assert_balanced(ctx)


def test_a_parameter_override_changes_the_decision_and_the_hash(
    ctx: Context, book: BookBuilder
) -> None:
    debt = _collect_requested(book, 50_000, employment="EMPLOYED")
    default_hash = resolve(ctx, dry_run=True).ruleset_hash
    result = resolve(ctx, overrides={"collection_cost_per_debt_pence": "30001"})
    assert result.ruleset_hash != default_hash
    row = debt_row(ctx, debt)
    assert (row.reason, row.ruleset_hash) == ("NOT_COST_EFFECTIVE", result.ruleset_hash)


def _pending(book: BookBuilder, creditor: str, outcome: str, **case_parties: object) -> int:
    case = book.case(**case_parties)  # type: ignore[arg-type]
    return book.debt(
        case,
        creditor,
        123_456,
        state="write_off_pending",
        outcome=outcome,
        reason="BELOW_THRESHOLD" if outcome == "write_off_notice" else "BELOW_65",
        rule_id="PWC-09",
        ruleset_hash="h" * 64,
    )


def test_write_offs_wait_for_every_living_parents_settled_notice(
    ctx: Context, book: BookBuilder
) -> None:
    silent = _pending(book, "PWC", "write_off_silent")
    notice = _pending(book, "PWC", "write_off_notice")
    sos_notice = _pending(book, "SOS", "write_off_notice")  # the PWC is not told of SOS money
    dead_pwc = _pending(
        book, "PWC", "write_off_notice", pwc=book.party(deceased_on=AS_OF - timedelta(1))
    )
    both_dead = _pending(
        book,
        "PWC",
        "write_off_notice",
        pwc=book.party(deceased_on=AS_OF),
        nrp=book.party(deceased_on=date(2001, 1, 1)),
    )
    seal_pull(ctx)
    first = resolve(ctx)
    assert {d for d, s in states(ctx).items() if s == "written_off"} == {silent, both_dead}
    assert first.waiting_for_notices.debts == 3
    # notices built but still pending (not settled): nothing more
    send_notices(ctx, status="pending")
    assert resolve(ctx).written_off.debts == 0
    with ctx.engine.connect() as conn:
        told = conn.execute(select(letters.c.debt_id, letters.c.recipient)).all()
    # the letters stage writes to the PWC only about a PWC debt and never to the dead
    assert sorted(told) == sorted(
        [(notice, "PWC"), (notice, "NRP"), (sos_notice, "NRP"), (dead_pwc, "NRP")]
    )
    with ctx.engine.begin() as conn:
        conn.execute(update(letters).values(status="accepted"))
    assert resolve(ctx).written_off.debts == 3
    assert set(states(ctx).values()) == {"written_off"}
    assert_balanced(ctx)


def test_notices_settle_a_write_off_only_when_sent_on_or_before_the_as_of_date(
    ctx: Context, book: BookBuilder
) -> None:
    early = _pending(book, "PWC", "write_off_notice")
    seal_pull(ctx)
    send_notices(ctx, status="accepted", letter_date=AS_OF + timedelta(days=1))
    assert resolve(ctx).written_off.debts == 0
    later = resolve(ctx.on(AS_OF + timedelta(days=1)))
    assert later.written_off.debts == 1
    assert debt_row(ctx, early).state == "written_off"


@pytest.mark.parametrize("status", ["accepted", "sent", "received", "held", "returned-letter"])
def test_any_settled_notice_status_lets_the_write_off_go_ahead(
    ctx: Context, book: BookBuilder, status: str
) -> None:
    debt = _pending(book, "PWC", "write_off_notice")
    seal_pull(ctx)
    send_notices(ctx, status=status)
    assert resolve(ctx).written_off.debts == 1
    assert debt_row(ctx, debt).state == "written_off"
    assert_balanced(ctx)


def test_a_notice_cancelled_as_no_longer_due_does_not_count_as_telling_the_parent(
    ctx: Context, book: BookBuilder
) -> None:
    """The letters stage cancels a notice it finds no longer due (NOT_DUE:*) and builds it
    again when it is due; meanwhile the parent has not been told, so no write-off."""
    debt = _pending(book, "PWC", "write_off_notice")
    seal_pull(ctx)
    send_notices(ctx, status="received", recipients=["NRP"])
    send_notices(ctx, status="cancelled", recipients=["PWC"])
    with ctx.engine.begin() as conn:
        conn.execute(
            update(letters)
            .where(letters.c.status == "cancelled")
            .values(failure_reason="NOT_DUE:DEBT_MOVED")
        )
    assert resolve(ctx).written_off.debts == 0
    assert debt_row(ctx, debt).state == "write_off_pending"
    with ctx.engine.begin() as conn:  # built again and sent
        conn.execute(
            update(letters)
            .where(letters.c.status == "cancelled")
            .values(status="accepted", failure_reason=None)
        )
    assert resolve(ctx).written_off.debts == 1


def test_only_the_nrp_notice_is_missing(ctx: Context, book: BookBuilder) -> None:
    debt = _pending(book, "PWC", "write_off_notice")
    seal_pull(ctx)
    send_notices(ctx, recipients=["PWC"])
    assert resolve(ctx).written_off.debts == 0
    send_notices(ctx, recipients=["NRP"], status="sending")  # in flight: not settled
    assert resolve(ctx).written_off.debts == 0
    assert debt_row(ctx, debt).state == "write_off_pending"


def test_the_ledger_entry_carries_the_decision_and_is_written_once(
    ctx: Context, book: BookBuilder
) -> None:
    debt = _pending(book, "PWC", "write_off_notice")
    seal_pull(ctx)
    send_notices(ctx)
    first = resolve(ctx)
    again = resolve(ctx)
    assert (first.written_off.debts, again.written_off.debts) == (1, 0)
    with ctx.engine.connect() as conn:
        entry = conn.execute(select(ledger_entries)).one()
    assert (entry.debt_id, entry.amount_pence, entry.entry_type) == (debt, 123_456, "write_off")
    assert (entry.reason, entry.rule_id, entry.ruleset_hash) == (
        "BELOW_THRESHOLD",
        "PWC-09",
        "h" * 64,
    )
    assert (entry.run_id, entry.actor, entry.as_of) == (first.run_id, "tester", AS_OF)
    assert first.written_off_by_reason == [
        {"reason": "BELOW_THRESHOLD", "debts": 1, "pence": 123_456}
    ]
    assert_balanced(ctx)


def test_a_dry_run_writes_nothing_and_foretells_the_real_run(
    ctx: Context, book: BookBuilder
) -> None:
    for i in range(12):
        final_chance_debt(book, book.case(), 100_000 + i, AS_OF - timedelta(days=55 + i))
        _collect_requested(book, 10_000 * (i + 1), employment="SELF_EMPLOYED")
        _pending(book, "SOS", "write_off_silent")
    seal_pull(ctx)
    before = states(ctx)
    dry = resolve(ctx, dry_run=True)
    assert dry.run_id is None and states(ctx) == before and ledger_rows(ctx) == []
    real = resolve(ctx)
    assert dry.expired == real.expired
    assert dry.collectability == real.collectability
    assert dry.written_off == real.written_off
    assert dry.waiting_for_notices == real.waiting_for_notices
    assert_balanced(ctx)
