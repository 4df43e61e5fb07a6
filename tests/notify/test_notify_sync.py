"""notify sync and returned: statuses polled inside Notify's retention, returns and permanent
failures flagged, technical failures never sent again by sync but settled by an operator; on
SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import text

from csa_closure.channels import NotificationInfo, NotifyStatus
from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.simulation.fake_notify import Fates
from csa_closure.stages.letters_outbox import (
    SendOptions,
    SettleAction,
    record_returned,
    send_batch,
    settle_letter,
    sync_letters,
)
from tests.support.notify import (
    CONFIG,
    built_batch,
    clocked,
    debt_row,
    fake,
    history,
    later,
    letters_book,
    outbox,
)


def _final(ctx: Context, debt_id: int) -> pl.DataFrame:
    return outbox(ctx).filter(
        (pl.col("debt_id") == debt_id) & (pl.col("purpose") == "representation")
    )


def test_statuses_are_kept_as_notify_reports_them(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    channel = fake(tmp_path, clock)
    sent = send_batch(ctx, batch_id, channel, CONFIG)
    nothing_yet = sync_letters(ctx, channel, CONFIG)
    assert nothing_yet.polled == sent.accepted and nothing_yet.changed == {}
    later(clock, days=1, minutes=1)
    result = sync_letters(ctx, channel, CONFIG)
    assert result.changed == {"received": sent.accepted}
    letter = _final(ctx, book.debts["final"])
    assert history(ctx, letter["letter_id"][0]) == ["pending", "sending", "accepted", "received"]
    assert not debt_row(ctx, book.debts["final"])["needs_tracing"]
    with ctx.engine.connect() as conn:
        sources = (
            conn.execute(
                text("SELECT DISTINCT source FROM letter_status_history WHERE status = 'received'")
            )
            .scalars()
            .all()
        )
    assert sources == ["fake"]


def test_a_returned_letter_flags_its_debt_for_tracing_and_a_caseworker(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="representation")
    channel = fake(tmp_path, clock, fates=Fates(returned=1.0, returned_after_days=3))
    send_batch(ctx, batch_id, channel, CONFIG)
    later(clock, days=3, minutes=1)
    polled = sync_letters(ctx, channel, CONFIG)
    assert polled.changed == {"received": 1}  # Notify's API never shows the return
    report = [(i, r) for i, r, _ in channel.service.returned_letters()]
    result = sync_letters(ctx, channel, CONFIG, returned_report=report)
    assert result.changed == {"returned-letter": 1} and result.debts_flagged == 1
    assert result.returned_from_report == 1 and result.returned_unmatched == 0
    debt = debt_row(ctx, book.debts["final"])
    assert debt["needs_tracing"] and debt["needs_caseworker"]
    assert debt["review_reason"] == "LETTER_RETURNED"
    assert debt["state"] == "awaiting_response"  # resolve holds a flagged debt back
    again = sync_letters(ctx, channel, CONFIG, returned_report=report)
    assert again.changed == {} and again.debts_flagged == 0


def test_a_permanent_failure_flags_its_debt(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="representation")
    channel = fake(tmp_path, clock, fates=Fates(permanent_failure=1.0))
    send_batch(ctx, batch_id, channel, CONFIG)
    later(clock, days=1, minutes=1)
    assert sync_letters(ctx, channel, CONFIG).changed == {"permanent-failure": 1}
    assert debt_row(ctx, book.debts["final"])["review_reason"] == "LETTER_PERMANENT_FAILURE"


def test_returns_after_notifys_retention_come_from_the_returned_letters_report(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="representation")
    channel = fake(tmp_path, clock, fates=Fates(returned=1.0, returned_after_days=21))
    send_batch(ctx, batch_id, channel, CONFIG)
    later(clock, days=2)
    assert sync_letters(ctx, channel, CONFIG).changed == {"received": 1}
    later(clock, days=20)
    polled = sync_letters(ctx, channel, CONFIG)
    assert polled.polled == 0  # past the retention: nothing to ask Notify about
    report = [(i, r) for i, r, _ in channel.service.returned_letters()]
    result = sync_letters(ctx, channel, CONFIG, returned_report=report)
    assert result.returned_from_report == 1
    assert _final(ctx, book.debts["final"])["status"].to_list() == ["returned-letter"]
    assert debt_row(ctx, book.debts["final"])["review_reason"] == "LETTER_RETURNED"
    assert record_returned(ctx, report, CONFIG).returned_from_report == 0  # already recorded


def test_accepted_letters_beyond_the_retention_are_counted_not_guessed(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    channel = fake(tmp_path, clock, fates=Fates(received_after_days=30))
    sent = send_batch(ctx, batch_id, channel, CONFIG)
    later(clock, days=8)
    result = sync_letters(ctx, channel, CONFIG)
    assert result.polled == 0 and result.beyond_retention == sent.accepted
    assert set(outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"]) == {"accepted"}


def _failed_technically(ctx: Context, tmp_path: Path) -> tuple[Any, Any, Any, str]:
    """A batch whose final-chance letter Notify failed technically, synced: (clock, book,
    the working fake, the letter's reference)."""
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="representation")
    failing = fake(tmp_path, clock, fates=Fates(technical_failure=1.0, failed_after_days=0.5))
    send_batch(ctx, batch_id, failing, CONFIG)
    later(clock, days=1)
    working = fake(tmp_path, clock)  # the same service, now printing
    result = sync_letters(ctx, working, CONFIG)
    assert result.changed == {"technical-failure": 1} and result.technical_failures == 1
    ref = _final(ctx, book.debts["final"])["reference"][0]
    return ctx, book, working, ref


def test_a_technical_failure_is_never_sent_again_by_sync(ctx: Context, tmp_path: Path) -> None:
    ctx, book, working, ref = _failed_technically(ctx, tmp_path)
    for _ in range(3):  # however often sync runs
        again = sync_letters(ctx, working, CONFIG)
        assert again.technical_failures == 1
    assert working.service.count(ref) == 1  # Notify: "Do not try to send the letter again"
    letter = _final(ctx, book.debts["final"])
    assert letter["status"].to_list() == ["technical-failure"]
    assert letter["attempts"].to_list() == [1]
    debt = debt_row(ctx, book.debts["final"])
    assert debt["needs_caseworker"] and not debt["needs_tracing"]
    assert debt["review_reason"] == "LETTER_TECHNICAL_FAILURE"


def test_settling_with_resend_asks_notify_first_and_sends_it_saying_the_same(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, book, working, ref = _failed_technically(ctx, tmp_path)
    result = settle_letter(ctx, working, CONFIG, ref, SettleAction.RESEND)
    assert (result.outcome, result.status, result.found_at_notify) == ("resent", "accepted", 1)
    first, second = working.service.notifications(ref)
    assert first.status == "technical-failure" and second.status == "accepted"
    assert first.personalisation == second.personalisation  # the same letter, the same date
    letter = _final(ctx, book.debts["final"])
    assert letter["notify_id"][0] == second.notify_id == result.notify_id
    assert history(ctx, letter["letter_id"][0]) == [
        "pending", "sending", "accepted", "technical-failure", "pending", "sending", "accepted",
    ]  # fmt: skip
    with pytest.raises(UsageError, match="not technical-failure"):
        settle_letter(ctx, working, CONFIG, ref, SettleAction.RESEND)  # settled once only
    sync_letters(ctx, working, CONFIG)
    assert working.service.count(ref) == 2


def test_settling_with_resend_records_a_letter_notify_has_instead_of_sending(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, book, working, ref = _failed_technically(ctx, tmp_path)
    (failed,) = working.find_by_reference(ref)
    live = NotificationInfo("00000000-0000-4000-8000-00000000abcd", ref, NotifyStatus.RECEIVED,
                            "received", failed.created_at)  # fmt: skip
    monkeypatch.setattr(working, "find_by_reference", lambda reference: [failed, live])
    result = settle_letter(ctx, working, CONFIG, ref, SettleAction.RESEND)
    assert (result.outcome, result.status, result.notify_id) == (
        "found_at_notify",
        "received",
        live.notify_id,
    )
    assert working.service.count(ref) == 1  # nothing sent
    assert _final(ctx, book.debts["final"])["status"].to_list() == ["received"]


def test_settling_as_undeliverable_never_sends_and_flags_for_tracing(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, book, working, ref = _failed_technically(ctx, tmp_path)
    result = settle_letter(ctx, working, CONFIG, ref, SettleAction.UNDELIVERABLE)
    assert (result.outcome, result.status) == ("undeliverable", "cancelled")
    assert working.service.count(ref) == 1
    debt = debt_row(ctx, book.debts["final"])
    assert debt["needs_tracing"] and debt["needs_caseworker"]
    assert sync_letters(ctx, working, CONFIG).technical_failures == 0


def test_a_poll_cut_short_by_notifys_page_cap_records_what_it_read(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from csa_closure.stages.letters_outbox import sync as sync_module

    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    sent = send_batch(ctx, batch_id, fake(tmp_path, clock), CONFIG)
    later(clock, days=1, minutes=1)
    monkeypatch.setattr(sync_module, "ONE_BY_ONE", 0)  # list, 2 letters a page, 2 pages at most
    capped = fake(tmp_path, clock, page_size=2, max_pages=2)
    result = sync_letters(ctx, capped, CONFIG)
    assert result.poll_stopped and "pages" in result.poll_stopped
    assert (result.polled, result.not_polled) == (4, sent.accepted - 4)
    assert result.changed == {"received": 4}
    rest = sync_letters(ctx, fake(tmp_path, clock), CONFIG)
    assert rest.changed == {"received": sent.accepted - 4} and rest.poll_stopped is None


def test_returns_of_an_uploaded_print_file_are_matched_by_the_upload_reports_notify_ids(
    ctx: Context, tmp_path: Path
) -> None:
    from csa_closure.channels import PrintFileChannel
    from csa_closure.errors import InputError
    from csa_closure.stages.letters_outbox import record_upload_report

    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx, letter_type="representation")
    out = tmp_path / "print"
    sent = send_batch(
        ctx, batch_id, PrintFileChannel(out, CONFIG), CONFIG, options=SendOptions(daily_limit=None)
    )
    assert sent.print_files is not None
    (file,) = sent.print_files.files
    directory = Path(sent.print_files.directory)
    service = fake(tmp_path, clock, fates=Fates(returned=1.0, returned_after_days=21)).service
    upload = service.upload_print_file(directory / file["file"], file["template_id"])
    later(clock, days=22)
    report = [(i, r) for i, r, _ in service.returned_letters()]
    assert report and all(r is None for _, r in report)  # Reference empty: an uploaded file
    unmatched = record_returned(ctx, report, CONFIG)
    assert (unmatched.returned_from_report, unmatched.returned_unmatched) == (0, len(report))
    assert set(unmatched.unmatched_notify_ids) == {i for i, _ in report}
    with pytest.raises(InputError, match="row 99"):
        record_upload_report(ctx, directory, file["file"], [(99, upload[0][1])])
    imported = record_upload_report(ctx, directory, file["file"], upload)
    assert (imported.recorded, imported.already) == (len(upload), 0)
    assert record_upload_report(ctx, directory, file["file"], upload).already == len(upload)
    matched = record_returned(ctx, report, CONFIG)
    assert (matched.returned_from_report, matched.returned_unmatched) == (len(report), 0)
    assert _final(ctx, book.debts["final"])["status"].to_list() == ["returned-letter"]
    assert debt_row(ctx, book.debts["final"])["review_reason"] == "LETTER_RETURNED"
