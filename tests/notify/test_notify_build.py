"""notify build and approve, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text, update

from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.letters import is_reference
from csa_closure.stages.letters_outbox import (
    MakerCheckerRefused,
    approve_batch,
    build_batch,
    outbox_status,
    send_batch,
)
from csa_closure.store.schema import debts, letter_batches, parties
from tests.support.notify import (
    CONFIG,
    built_batch,
    clocked,
    debt_row,
    fake,
    history,
    letters_book,
    named,
    outbox,
)


def test_a_batch_holds_every_letter_due_once_with_opaque_references(ctx: Context) -> None:
    book = letters_book(ctx)
    result = build_batch(ctx.as_actor("maker"))
    frame = outbox(ctx)
    assert named(book, frame) == book.expected
    sendable = frame.filter(frame["status"] == "pending")
    assert named(book, sendable) == book.expected - book.held
    assert result.pending == sendable.height == sum(result.by_kind.values())
    assert set(sendable["batch_id"]) == {result.batch_id}
    assert all(is_reference(r) for r in frame["reference"])
    assert frame["reference"].n_unique() == frame.height
    with ctx.engine.connect() as conn:
        batch = conn.execute(
            letter_batches.select().where(letter_batches.c.batch_id == result.batch_id)
        ).one()
    assert (batch.status, batch.built_by, batch.letter_count) == ("built", "maker", result.pending)
    assert batch.approved_by is None
    for letter_id in frame["letter_id"]:
        assert len(history(ctx, letter_id)) == 1


def test_an_unusable_address_is_held_with_its_reason_and_the_debt_flagged(ctx: Context) -> None:
    book = letters_book(ctx)
    result = build_batch(ctx.as_actor("maker"))
    held = outbox(ctx).filter(outbox(ctx)["status"] == "held")
    assert held.height == result.held == 1
    assert held["held_reason"].to_list() == ["ADDRESS:BAD_POSTCODE:4"]
    assert held["batch_id"].to_list() == [None]  # held letters are in no batch
    assert result.held_by_reason == {"ADDRESS:BAD_POSTCODE:4": 1}
    debt = debt_row(ctx, book.debts["bad_address"])
    assert debt["needs_tracing"] and not debt["needs_caseworker"]
    assert debt["review_reason"] == "LETTER_HELD:ADDRESS:BAD_POSTCODE:4"
    assert debt["state"] == "awaiting_letter"


def test_building_twice_never_makes_a_second_letter(ctx: Context) -> None:
    letters_book(ctx)
    first = build_batch(ctx.as_actor("maker"))
    again = build_batch(ctx.as_actor("maker"))
    assert first.pending > 0
    assert again.batch_id is None and again.pending == 0
    assert again.still_held == 1 and again.held == 0
    frame = outbox(ctx)
    assert frame.select("debt_id", "purpose", "recipient").is_unique().all()


def test_a_held_letter_whose_address_was_fixed_is_rebatched_and_the_flag_cleared(
    ctx: Context,
) -> None:
    book = letters_book(ctx)
    build_batch(ctx.as_actor("maker"))
    with ctx.engine.begin() as conn:
        party = conn.execute(
            text(
                "SELECT c.pwc_party_ref FROM debts d JOIN cases c ON c.case_ref = d.case_ref "
                "WHERE d.debt_id = :d"
            ),
            {"d": book.debts["bad_address"]},
        ).scalar_one()
        conn.execute(update(parties).where(parties.c.party_ref == party).values(postcode="LS1 1BA"))
    second = build_batch(ctx.as_actor("maker"))
    assert (second.pending, second.rebatched, second.held) == (1, 1, 0)
    letter = outbox(ctx).filter(outbox(ctx)["debt_id"] == book.debts["bad_address"])
    assert letter["status"].to_list() == ["pending"]
    assert letter["batch_id"].to_list() == [second.batch_id]
    assert letter["held_reason"].to_list() == [None]
    assert history(ctx, letter["letter_id"][0]) == ["held", "pending"]
    debt = debt_row(ctx, book.debts["bad_address"])
    assert not debt["needs_tracing"] and debt["review_reason"] is None
    assert second.debts_unflagged == 1


def test_limit_caps_the_batch_and_the_next_build_takes_the_rest(ctx: Context) -> None:
    book = letters_book(ctx)
    total = len(book.expected - book.held)
    first = build_batch(ctx.as_actor("maker"), limit=3)
    assert first.pending == 3 and first.left_for_later > 0
    second = build_batch(ctx.as_actor("maker"), limit=3)
    third = build_batch(ctx.as_actor("maker"))
    assert first.pending + second.pending + third.pending == total
    assert len({first.batch_id, second.batch_id, third.batch_id}) == 3
    assert named(book, outbox(ctx)) == book.expected


def test_one_letter_type_only(ctx: Context) -> None:
    book = letters_book(ctx)
    result = build_batch(ctx.as_actor("maker"), letter_type="write_off_notice.NRP")
    assert named(book, outbox(ctx)) == {("notice", "write_off_notice", "NRP")}
    assert result.by_kind == {"write_off_notice.NRP": 1}
    build_batch(ctx.as_actor("maker"), letter_type="representation")
    assert ("final", "representation", "PWC") in named(book, outbox(ctx))
    with pytest.raises(UsageError, match="unknown letter type"):
        build_batch(ctx, letter_type="final_demand")
    with pytest.raises(UsageError, match="no reminder letter to the NRP"):
        build_batch(ctx, letter_type="reminder.NRP")


@pytest.mark.parametrize(
    ("response", "as_of_offset", "due"),
    [(None, 0, True), ("DO_NOT_COLLECT", 0, False), (None, 30, False)],
)
def test_reminders_only_while_no_response_and_before_the_deadline(
    ctx: Context, response: str | None, as_of_offset: int, due: bool
) -> None:
    from datetime import timedelta

    book = letters_book(ctx)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(debts).where(debts.c.debt_id == book.debts["reminder"]).values(response=response)
        )
    day = ctx.on(ctx.as_of + timedelta(days=as_of_offset))  # deadline 2019-04-30
    build_batch(day.as_actor("maker"), letter_type="reminder")
    assert (("reminder", "reminder", "PWC") in named(book, outbox(ctx))) is due


def test_maker_checker(ctx: Context) -> None:
    letters_book(ctx)
    built = build_batch(ctx.as_actor("maker"))
    assert built.batch_id is not None
    with pytest.raises(MakerCheckerRefused, match="built by maker"):
        approve_batch(ctx.as_actor("maker"), built.batch_id)
    approved = approve_batch(ctx.as_actor("checker"), built.batch_id)
    assert (approved.built_by, approved.approved_by) == ("maker", "checker")
    assert sum(approved.by_kind.values()) == built.pending
    # approving again is a no-op naming who approved it, whoever asks (even the builder)
    for again_by in ("someone", "maker"):
        again = approve_batch(ctx.as_actor(again_by), built.batch_id)
        assert again.already_approved and again.run_id is None
        assert (again.built_by, again.approved_by) == ("maker", "checker")
    with pytest.raises(UsageError, match="no letter batch 99"):
        approve_batch(ctx.as_actor("checker"), 99)
    with ctx.engine.connect() as conn:
        events = (
            conn.execute(text("SELECT actor FROM events WHERE event_type = 'batch.approved'"))
            .scalars()
            .all()
        )
    assert events == ["checker"]


def test_status_counts_batches_and_letters_without_personal_data(ctx: Context) -> None:
    letters_book(ctx)
    built = build_batch(ctx.as_actor("maker"))
    status = outbox_status(ctx)
    assert [b.batch_id for b in status.batches] == [built.batch_id]
    assert status.batches[0].by_status == {"pending": built.pending}
    assert status.by_status == {"pending": built.pending, "held": 1}
    assert status.held_by_reason == {"ADDRESS:BAD_POSTCODE:4": 1}
    assert status.attention["held"]["letters"] == 1
    assert status.debts_flagged_by_letters == {"LETTER_HELD:ADDRESS:BAD_POSTCODE:4": 1}
    one = outbox_status(ctx, batch_id=built.batch_id)
    assert one.by_status == {"pending": built.pending}
    with ctx.engine.connect() as conn:
        names = conn.execute(text("SELECT family_name, postcode FROM parties")).all()
    flat = repr(status)
    assert not any(n and n in flat for row in names for n in row)


def test_a_letter_cancelled_as_no_longer_due_goes_again_when_it_is_due_again(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="write_off_notice")
    notice = debts.c.debt_id == book.debts["notice"]
    with ctx.engine.begin() as conn:  # a caseworker takes the debt back before the notices go
        conn.execute(update(debts).where(notice).values(state="review"))
    sent = send_batch(ctx, batch_id, fake(tmp_path, clock), CONFIG)
    assert sent.cancelled == 2
    with ctx.engine.begin() as conn:  # ... and decides a write-off with notice again
        conn.execute(update(debts).where(notice).values(state="write_off_pending"))
    again = build_batch(ctx.as_actor("maker"), letter_type="write_off_notice")
    assert again.rebatched == 2 and again.pending == 2
    letters = outbox(ctx).filter(outbox(ctx)["debt_id"] == book.debts["notice"])
    assert set(letters["status"]) == {"pending"} and set(letters["batch_id"]) == {again.batch_id}
    assert letters["failure_reason"].null_count() == 2
    assert history(ctx, letters["letter_id"][0]) == ["pending", "cancelled", "pending"]


def _due_from_everything(conn: Any, ctx: Context) -> pl.DataFrame:
    """What build found before it narrowed its read: every debt in a state some letter can be
    due in and every letter in the outbox, decided by letters_due alone."""
    from csa_closure.letters import letters_due
    from csa_closure.letters.due import DUE_STATES
    from csa_closure.stages.letters_outbox import build
    from csa_closure.store.dialect import read_frame

    states = sorted({s for kind_states in DUE_STATES.values() for s in kind_states})
    sql = build._DUE_SQL.format(candidates=f"d.state IN ({', '.join('?' for _ in states)})")
    debts_frame = read_frame(conn, (sql, states), build._DUE_SCHEMA)
    letters_frame = read_frame(
        conn,
        (
            "SELECT letter_id, debt_id, purpose, recipient, status, reference, failure_reason"
            " FROM letters",
            (),
        ),
        build._EXISTING_SCHEMA,
    )
    return letters_due(debts_frame, ctx.as_of, existing=letters_frame.filter(~build._revivable()))


def test_build_reads_only_the_debts_a_letter_may_be_due_for_and_finds_them_all(
    ctx: Context, tmp_path: Path
) -> None:
    """The store is asked only for debts in a kind's due states, past its not-before date and
    without that kind's letter (or with it held or cancelled): on every day of a book's life,
    with letters built, sent (debts awaiting a response, reminders coming due) and held,
    exactly the letters reading everything finds."""
    from datetime import timedelta

    from csa_closure.channels import PrintFileChannel
    from csa_closure.stages.letters_outbox import SendOptions, build

    letters_book(ctx)
    days = [ctx.as_of + timedelta(days=n) for n in (0, 1, 14, 21, 27, 28, 29, 60)]
    compared = 0
    for n, day in enumerate(days):
        at = ctx.on(day)
        with ctx.engine.connect() as conn:
            narrowed = build._due(conn, at, None, None).select(
                "debt_id", "purpose", "recipient", "party_ref"
            )
            everything = _due_from_everything(conn, at).select(
                "debt_id", "purpose", "recipient", "party_ref"
            )
        assert narrowed.sort(pl.all()).equals(everything.sort(pl.all())), day
        compared += narrowed.height
        if n % 2 == 0:  # build and send some days, so later days have letters in the outbox
            built = build_batch(at.as_actor("maker"))
            if built.batch_id is not None:
                approve_batch(at.as_actor("checker"), built.batch_id)
                send_batch(
                    at,
                    built.batch_id,
                    PrintFileChannel(tmp_path / f"print-{n}", CONFIG),
                    CONFIG,
                    options=SendOptions(daily_limit=None),
                )
    assert compared > 0
