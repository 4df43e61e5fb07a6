"""The progress report's figures: the funnel, deadlines at their boundaries, closures per day,
and the expected finish date by its documented formula."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from csa_closure.context import Context
from csa_closure.reports.progress import (
    DayClosures,
    Tally,
    estimate_finish,
    progress_report,
)
from csa_closure.store import events as event_log
from csa_closure.store.runs import stage_run
from tests.support.books import mid_book
from tests.support.builders import BookBuilder

D = date(2019, 3, 31)


def test_the_funnel_counts_every_debt_and_penny_once(ctx: Context) -> None:
    report = progress_report(mid_book(ctx).ctx)
    assert report.total() == Tally(11, 1_681_000)
    assert report.total({"closed"}) == Tally(4, 80_000)
    assert report.total({"to decide"}) == Tally(1, 6_000)
    assert sum(s.debts for s in report.states) == 11
    by_group = {(g.system, g.creditor): g for g in report.by_system_creditor()}
    assert by_group["CS2", "SOS"].closed == Tally(2, 50_000)
    assert by_group["CSCS", "SOS"].open == Tally(1, 20_000)  # the reversed write-off
    assert report.quarantined == Tally(1, 13_023)
    as_json = report.to_json()
    assert as_json["funnel"]["closed"] == {"debts": 4, "pence": 80_000}
    assert [s["state"] for s in as_json["states"]][:2] == ["pulled", "review"]


def test_letters_responses_and_imports_are_counted(ctx: Context) -> None:
    report = progress_report(mid_book(ctx).ctx)
    letters = {(c.purpose, c.status): c.letters for c in report.letters}
    assert letters == {
        ("representation", "pending"): 1,
        ("representation", "received"): 2,
        ("write_off_notice", "accepted"): 1,
    }
    assert [(r.party, r.response, r.responses) for r in report.responses] == [("PWC", "COLLECT", 1)]
    assert [(i.kind, i.rows, i.accepted, i.duplicates, i.rejected) for i in report.imports] == [
        ("responses", 3, 1, 1, 1)
    ]


def test_closures_per_day_come_from_the_event_log(ctx: Context) -> None:
    report = progress_report(mid_book(ctx).ctx)
    days = {c.as_of: c for c in report.closures}
    assert days[date(2019, 3, 1)].debts == 1  # the nil decision
    assert (days[date(2019, 3, 4)].debts, days[date(2019, 3, 4)].pence) == (2, 40_000)
    assert (days[date(2019, 3, 20)].debts, days[date(2019, 3, 20)].pence) == (2, 60_000)
    assert days[date(2019, 3, 28)].reopened == 1 and days[date(2019, 3, 28)].debts == 0


def test_deadlines_at_their_boundaries(ctx: Context) -> None:
    book = BookBuilder(ctx)
    case = book.case()
    for i, (offset, pence) in enumerate(
        [(-1, 1), (0, 10), (7, 100), (8, 1_000), (30, 10_000), (31, 100_000)]
    ):
        other = book.case()
        book.debt(
            other if i else case,
            "PWC",
            pence,
            state="awaiting_response",
            response_deadline=D + timedelta(days=offset),
        )
    # a deadline on a debt no longer awaiting a response is not falling due
    book.debt(case, "SOS", 5, state="collect_requested", response_deadline=D)
    d = progress_report(ctx).deadlines
    assert d.overdue == Tally(1, 1)
    assert d.next_7_days == Tally(2, 110)
    assert d.next_30_days == Tally(4, 11_110)


def _closures(per_day: dict[int, int]) -> list[DayClosures]:
    return [DayClosures(D - timedelta(days=ago), n, 0, 0) for ago, n in per_day.items()]


def test_finish_date_by_letters_and_the_response_window() -> None:
    f = estimate_finish(
        as_of=D,
        awaiting_letter=30_000,
        other_unsent_letters=10_001,
        last_deadline=None,
        open_debts=40_001,
        closures=[],
        daily_letter_limit=20_000,
        response_window_days=60,
    )
    assert f.letters_to_send == 40_001 and f.sending_days == 3
    assert f.letters_bound == D + timedelta(days=3 + 60 + 1)
    assert f.pace_bound is None  # nothing closed yet: pace unknown
    assert f.expected_finish == f.letters_bound and not f.finished


def test_finish_date_by_pace_and_by_the_last_deadline() -> None:
    f = estimate_finish(
        as_of=D,
        awaiting_letter=0,
        other_unsent_letters=5,
        last_deadline=D + timedelta(days=10),
        open_debts=1_000,
        closures=_closures({0: 100, 29: 200, 30: 10_000}),  # 30 days ago is outside the window
        daily_letter_limit=20_000,
        response_window_days=60,
    )
    assert f.closed_last_30_days == 300
    assert f.pace_bound == D + timedelta(days=100)  # ceil(1000 * 30 / 300)
    assert f.deadline_bound == D + timedelta(days=11)
    assert f.letters_bound == D + timedelta(days=1)  # no final-chance letter: no window
    assert f.expected_finish == f.pace_bound


def test_a_finished_book_finishes_on_the_as_of_date() -> None:
    f = estimate_finish(
        as_of=D,
        awaiting_letter=0,
        other_unsent_letters=0,
        last_deadline=None,
        open_debts=0,
        closures=_closures({3: 5}),
        daily_letter_limit=20_000,
        response_window_days=60,
    )
    assert f.finished and f.expected_finish == D


def test_the_daily_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="daily letter limit"):
        estimate_finish(
            as_of=D,
            awaiting_letter=1,
            other_unsent_letters=0,
            last_deadline=None,
            open_debts=1,
            closures=[],
            daily_letter_limit=0,
            response_window_days=60,
        )


def test_an_empty_store_reports_nothing_to_do(ctx: Context) -> None:
    report = progress_report(ctx)
    assert report.total() == Tally() and report.closures == [] and report.finish.finished


def test_a_flag_on_a_closed_debt_is_not_a_closure(ctx: Context) -> None:
    book = mid_book(ctx)
    before = {c.as_of: c for c in progress_report(book.ctx).closures}
    with stage_run(book.ctx.on(date(2019, 3, 30)), "notify", {}) as run, run.chunk() as conn:
        for frm, to in (("transferred", "transferred"), ("written_off", None)):
            event_log.record(
                conn,
                run,
                "debt.flagged",
                case_ref="S000000003",
                debt_id=1,
                from_state=frm,
                to_state=to,
            )
    after = {c.as_of: c for c in progress_report(book.ctx).closures}
    assert after == before
