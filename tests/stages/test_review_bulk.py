"""Caseworker decisions in bulk: review decide-file / decide_many."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from csa_closure.cli import cli
from csa_closure.context import Context
from csa_closure.domain.states import STATE_FOR_OUTCOME, Outcome
from csa_closure.reconcile import reconcile
from csa_closure.stages.review import CaseworkerDecision, decide_many
from csa_closure.store.schema import debts, events
from tests.support.builders import BookBuilder


def _queue(ctx: Context) -> tuple[str, str, str]:
    book = BookBuilder(ctx)
    in_review = book.case()
    book.debt(
        in_review,
        "PWC",
        120_000,
        state="review",
        outcome="manual_review",
        reason="NRP_DECEASED",
        review_reason="NRP_DECEASED",
    )
    flagged = book.case()
    book.debt(
        flagged,
        "PWC",
        90_000,
        state="awaiting_response",
        needs_tracing=True,
        review_reason="LETTER_RETURNED",
    )
    untouched = book.case()
    book.debt(untouched, "PWC", 80_000, state="awaiting_response")
    return in_review, flagged, untouched


def test_many_decisions_are_recorded_and_a_refused_row_stops_nothing(ctx: Context) -> None:
    in_review, flagged, untouched = _queue(ctx)
    result = decide_many(
        ctx,
        [
            CaseworkerDecision(in_review, "PWC", "write_off_notice", "ESTATE_NOT_PURSUED"),
            CaseworkerDecision(untouched, "PWC", "transfer", "NOT_FLAGGED"),
            CaseworkerDecision(flagged, "PWC", "write_off_notice", "PWC_UNTRACEABLE"),
            CaseworkerDecision(flagged, "SOS", "transfer", "NO_SUCH_DEBT"),
            CaseworkerDecision(in_review, "PWC", "maybe", "X"),
        ],
    )
    assert result.rows == 5 and result.decided == 2
    assert [r["row"] for r in result.refused or []] == [2, 4, 5]
    reasons = " ".join(r["reason"] for r in result.refused or [])
    assert "not flagged for a caseworker" in reasons
    assert "there is no SOS debt" in reasons and "unknown outcome 'maybe'" in reasons
    assert result.by_outcome == {"write_off_notice": 2}
    with ctx.engine.connect() as conn:
        states = dict(conn.execute(select(debts.c.case_ref, debts.c.state)).all())
        logged = [
            e.event_type
            for e in conn.execute(select(events.c.event_type).order_by(events.c.event_id))
        ]
    assert states == {
        in_review: "write_off_pending",
        flagged: "write_off_pending",
        untouched: "awaiting_response",
    }
    # the flagged debt is referred to review first, then decided: both moves are events
    assert logged.count("debt.referred") == 1 and logged.count("debt.reviewed") == 2
    assert result.book is not None and result.book.balanced
    assert reconcile(ctx).systems["CS2"]["PWC"].book_balanced


def test_decide_file_reads_a_csv_and_refuses_one_without_its_columns(
    ctx: Context, store_url: str, tmp_path: Path
) -> None:
    in_review, _, _ = _queue(ctx)
    good = tmp_path / "decisions.csv"
    good.write_text(
        f"case_ref,creditor,outcome,reason\n{in_review},PWC,transfer,DISPUTE_REVIEWED\n"
    )
    runner = CliRunner()
    base = ["--db", store_url, "--as-of", "2019-03-31", "--actor", "casey", "review", "decide-file"]
    done = runner.invoke(cli, [*base, str(good), "--format", "json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["decided"] == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("case_ref,creditor,outcome\nC1,PWC,transfer\n")
    refused = runner.invoke(cli, [*base, str(bad)])
    assert refused.exit_code == 2 and "lacks the column(s) reason" in refused.output


@pytest.mark.parametrize("chunk_size", [1, 2, 2_000])
def test_a_second_row_for_a_debt_decided_earlier_in_the_file_is_refused(
    ctx: Context, chunk_size: int
) -> None:
    in_review, flagged, _ = _queue(ctx)
    result = decide_many(
        ctx,
        [
            CaseworkerDecision(flagged, "PWC", "write_off_notice", "PWC_UNTRACEABLE"),
            CaseworkerDecision(in_review, "PWC", "transfer", "DISPUTE_REVIEWED"),
            CaseworkerDecision(flagged, "PWC", "transfer", "CHANGED_MIND"),
        ],
        chunk_size=chunk_size,
    )
    assert result.decided == 2
    assert [r["row"] for r in result.refused or []] == [3]
    assert "not flagged for a caseworker" in (result.refused or [])[0]["reason"]
    with ctx.engine.connect() as conn:
        states = dict(conn.execute(select(debts.c.case_ref, debts.c.state)).all())
        logged = conn.execute(
            select(events.c.case_ref, events.c.event_type, events.c.from_state, events.c.to_state)
            .where(events.c.event_type.like("debt.%"))
            .order_by(events.c.event_id)
        ).all()
    assert states[flagged] == STATE_FOR_OUTCOME[Outcome.WRITE_OFF_NOTICE].value
    assert states[in_review] == STATE_FOR_OUTCOME[Outcome.TRANSFER].value
    # each debt's moves in order, the flagged one referred before it is decided
    assert [tuple(e[1:]) for e in logged if e[0] == flagged] == [
        ("debt.referred", "awaiting_response", "review"),
        ("debt.reviewed", "review", STATE_FOR_OUTCOME[Outcome.WRITE_OFF_NOTICE].value),
    ]
    assert [tuple(e[1:]) for e in logged if e[0] == in_review] == [
        ("debt.reviewed", "review", STATE_FOR_OUTCOME[Outcome.TRANSFER].value)
    ]
