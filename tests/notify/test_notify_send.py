"""notify send through the fake Notify service (the real client over a simulated service) and
as print files, on SQLite and PostgreSQL: exactly once, the daily quota, 403, 400, ambiguous
sends reconciled by reference, outages, letters no longer due, print-file idempotency."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import select, text, update

from csa_closure.channels import NotifyChannel
from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.simulation.fake_notify import (
    FAKE_SERVICE_ID,
    FakeNotifyChannel,
    Fates,
    FaultKind,
    Faults,
)
from csa_closure.stages.letters_outbox import (
    BatchStopped,
    SendOptions,
    build_batch,
    send_batch,
)
from csa_closure.store import failpoints
from csa_closure.store.schema import debts, letter_batches, parties, send_quota
from tests.support.notify import (
    AS_OF,
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


def _pending_refs(ctx: Context, batch_id: int) -> list[str]:
    frame = outbox(ctx)
    return frame.filter(pl.col("batch_id") == batch_id)["reference"].to_list()


def _exactly_once(channel: FakeNotifyChannel, references: list[str]) -> None:
    assert {r: channel.service.count(r) for r in references} == dict.fromkeys(references, 1)
    assert channel.service.count() == len(references)


def _batch(ctx: Context, batch_id: int) -> Any:
    with ctx.engine.connect() as conn:
        return conn.execute(
            letter_batches.select().where(letter_batches.c.batch_id == batch_id)
        ).one()


def test_a_batch_goes_out_once_and_final_chance_windows_start(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    channel = fake(tmp_path, clock)
    result = send_batch(ctx.as_actor("sender"), batch_id, channel, CONFIG)
    assert result.accepted == len(refs) and result.batch_status == "sent"
    assert result.by_status == {"accepted": len(refs)} and result.remaining == 0
    _exactly_once(channel, refs)
    sent = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    assert set(sent["status"]) == {"accepted"} and sent["notify_id"].null_count() == 0
    assert set(sent["letter_date"]) == {AS_OF} and set(sent["attempts"]) == {1}
    assert history(ctx, sent["letter_id"][0]) == ["pending", "sending", "accepted"]
    final = debt_row(ctx, book.debts["final"])
    assert final["state"] == "awaiting_response"
    assert final["letter_date"] == AS_OF
    assert final["response_deadline"] == AS_OF + timedelta(days=60)
    assert final["reminder_due"] == AS_OF + timedelta(days=21)
    assert result.debts_moved == 1
    with ctx.engine.connect() as conn:
        moved = conn.execute(
            text("SELECT debt_id, detail FROM events WHERE event_type = 'debt.final_chance_sent'")
        ).all()
    assert [m.debt_id for m in moved] == [book.debts["final"]]
    batch = _batch(ctx, batch_id)
    assert (batch.status, batch.channel) == ("sent", "fake-notify") and batch.sent_at
    again = send_batch(ctx.as_actor("sender"), batch_id, channel, CONFIG)
    assert again.accepted == 0 and again.batch_status == "sent"
    _exactly_once(channel, refs)


def test_an_unapproved_batch_is_never_sent(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    built = build_batch(ctx.as_actor("maker"))
    assert built.batch_id is not None
    channel = fake(tmp_path, clock)
    with pytest.raises(UsageError, match="not approved"):
        send_batch(ctx, built.batch_id, channel, CONFIG)
    assert channel.service.count() == 0


def test_a_live_notify_send_with_the_example_configuration_is_refused(ctx: Context) -> None:
    letters_book(ctx)
    batch_id = built_batch(ctx)
    live = NotifyChannel(client=object())  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="example letters configuration"):
        send_batch(ctx, batch_id, live, CONFIG)


def test_the_daily_quota_stops_cleanly_and_the_next_day_resumes(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    channel = fake(tmp_path, clock)
    options = SendOptions(daily_limit=3, intent_group=2)
    first = send_batch(ctx, batch_id, channel, CONFIG, options=options)  # no exception
    assert first.accepted == 3 and first.stop_code == "QUOTA_USED"
    assert first.batch_status == "stopped" and first.remaining == len(refs) - 3
    assert first.quota["sent_count"] == 3 and first.quota["remaining"] == 0
    assert "next day" in (_batch(ctx, batch_id).stop_reason or "")
    same_day = send_batch(ctx, batch_id, channel, CONFIG, options=options)
    assert same_day.accepted == 0 and same_day.stop_code == "QUOTA_USED"
    assert channel.service.count() == 3
    tomorrow = ctx.on(AS_OF + timedelta(days=1))
    later(clock, days=1)
    rest = send_batch(tomorrow, batch_id, channel, CONFIG, options=SendOptions(daily_limit=20))
    assert rest.accepted == len(refs) - 3 and rest.batch_status == "sent"
    _exactly_once(channel, refs)
    dates = outbox(ctx).filter(pl.col("batch_id") == batch_id)["letter_date"]
    assert sorted(set(dates)) == [AS_OF, AS_OF + timedelta(days=1)]  # dated when sent
    with ctx.engine.connect() as conn:
        quota = conn.execute(select(send_quota).order_by(send_quota.c.day)).all()
    assert [(q.day, q.sent_count) for q in quota] == [
        (AS_OF, 3),
        (AS_OF + timedelta(days=1), len(refs) - 3),
    ]


def test_notifys_own_daily_limit_stops_the_day(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    channel = fake(tmp_path, clock, faults=Faults(daily_limit=2))
    first = send_batch(ctx, batch_id, channel, CONFIG)
    assert first.accepted == 2 and first.stop_code == "DAILY_LIMIT"
    assert first.quota["limit_reached"] is True
    assert first.quota["sent_count"] == 2  # the refused letter's reservation was given back
    requests = len(channel.service.request_log())
    again = send_batch(ctx, batch_id, channel, CONFIG)
    assert again.accepted == 0 and len(channel.service.request_log()) == requests
    later(clock, days=1)
    roomy = fake(tmp_path, clock, faults=Faults(daily_limit=100))
    rest = send_batch(ctx.on(AS_OF + timedelta(days=1)), batch_id, roomy, CONFIG)
    assert rest.batch_status == "sent"
    _exactly_once(roomy, refs)


def test_403_stops_the_batch_with_a_clear_message_and_sends_nothing(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    wrong_key = f"csa_closure_fake-{FAKE_SERVICE_ID}-00000000-0000-4000-8000-000000000000"
    refused = fake(tmp_path, clock, api_key=wrong_key)
    with pytest.raises(BatchStopped, match="refused the API key") as stopped:
        send_batch(ctx, batch_id, refused, CONFIG)
    assert stopped.value.exit_code == 6
    assert stopped.value.result.stop_code == "FORBIDDEN"
    assert stopped.value.result.by_status == {"pending": len(refs)}
    assert stopped.value.result.quota["sent_count"] == 0
    batch = _batch(ctx, batch_id)
    assert batch.status == "stopped" and "NOTIFY_API_KEY" in batch.stop_reason
    with ctx.engine.connect() as conn:
        run = conn.execute(
            text("SELECT status, error FROM stage_runs WHERE stage = 'notify-send'")
        ).one()
    assert run.status == "failed" and "API key" in run.error
    channel = fake(tmp_path, clock)
    send_batch(ctx, batch_id, channel, CONFIG)
    _exactly_once(channel, refs)


@pytest.mark.parametrize(
    ("fault", "code", "cause"),
    [
        (FaultKind.SERVICE_CANNOT_SEND_LETTERS, "NOTIFY_SERVICE_CANNOT_SEND_LETTERS",
         "turn on letters"),
        (FaultKind.TEMPLATE_DELETED, "NOTIFY_TEMPLATE_DELETED", "deleted in Notify"),
        (FaultKind.WRONG_TEMPLATE_TYPE, "NOTIFY_WRONG_TEMPLATE_TYPE", "not a letter template"),
        (FaultKind.TEAM_KEY, "NOTIFY_TEAM_KEY", "is a team key"),
        (FaultKind.TRIAL_MODE, "NOTIFY_TRIAL_MODE", "trial mode"),
    ],
)  # fmt: skip
def test_a_service_wide_refusal_stops_the_batch_after_one_letter(
    ctx: Context, tmp_path: Path, fault: FaultKind, code: str, cause: str
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    assert len(refs) > 1
    refused = fake(tmp_path, clock, faults=Faults(service_refusal=fault))
    with pytest.raises(BatchStopped, match=cause) as stopped:
        send_batch(ctx, batch_id, refused, CONFIG)
    assert stopped.value.exit_code == 6
    assert code in (stopped.value.result.stop_message or "") or (
        stopped.value.result.stop_code == code
    )
    assert stopped.value.result.by_status == {"pending": len(refs)}  # none failed one by one
    sends = [r for r in refused.service.request_log() if r[1] == "send"]
    assert len(sends) == 1  # one letter asked, not every letter in turn
    assert code in _batch(ctx, batch_id).stop_reason or cause in _batch(ctx, batch_id).stop_reason
    channel = fake(tmp_path, clock)
    send_batch(ctx, batch_id, channel, CONFIG)
    _exactly_once(channel, refs)


def test_400_fails_that_letter_with_its_reason_and_the_rest_go(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    bad = frame.filter(pl.col("debt_id") == book.debts["final"])["reference"][0]
    channel = fake(tmp_path, clock, faults=Faults(on_reference={bad: FaultKind.BAD_REQUEST}))
    result = send_batch(ctx, batch_id, channel, CONFIG)
    assert (result.failed, result.accepted) == (1, frame.height - 1)
    assert result.batch_status == "sent"
    failed = outbox(ctx).filter(pl.col("reference") == bad)
    assert failed["status"].to_list() == ["failed"]
    assert failed["failure_reason"][0].startswith("NOTIFY_BAD_POSTCODE: ValidationError")
    final = debt_row(ctx, book.debts["final"])
    assert final["state"] == "awaiting_letter"  # no window: the letter never went
    assert final["needs_tracing"] and final["needs_caseworker"]
    assert final["review_reason"] == "LETTER_FAILED:NOTIFY_BAD_POSTCODE"


@pytest.mark.parametrize(
    ("fault", "decision"),
    [(FaultKind.TIMEOUT_AFTER_ACCEPT, "sent"), (FaultKind.CONNECTION_ERROR, "resend")],
)
def test_an_ambiguous_send_is_unknown_until_reconciled_by_reference(
    ctx: Context, tmp_path: Path, fault: FaultKind, decision: str
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    ref = frame.filter(pl.col("debt_id") == book.debts["final"])["reference"][0]
    channel = fake(tmp_path, clock, faults=Faults(on_reference={ref: fault}))
    first = send_batch(ctx, batch_id, channel, CONFIG)
    assert first.unknown == 1 and first.batch_status == "sending" and first.remaining == 1
    letter = outbox(ctx).filter(pl.col("reference") == ref)
    assert letter["status"].to_list() == ["unknown"]
    assert letter["failure_reason"][0].startswith("AMBIGUOUS_")
    assert debt_row(ctx, book.debts["final"])["state"] == "awaiting_letter"
    soon = send_batch(ctx, batch_id, channel, CONFIG)  # Notify may not show it yet
    assert soon.reconciled == {"wait": 1} and soon.accepted == 0
    later(clock, minutes=10)
    settled = send_batch(ctx, batch_id, channel, CONFIG)
    assert settled.reconciled == {decision: 1} and settled.batch_status == "sent"
    _exactly_once(channel, refs)
    letter = outbox(ctx).filter(pl.col("reference") == ref)
    assert letter["status"].to_list() == ["accepted"]
    assert letter["notify_id"][0] == channel.service.notifications(ref)[0].notify_id
    assert debt_row(ctx, book.debts["final"])["state"] == "awaiting_response"
    assert history(ctx, letter["letter_id"][0])[:3] == ["pending", "sending", "unknown"]


def test_an_ambiguous_send_notify_failed_technically_is_recorded_never_resent(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    ref = frame.filter(pl.col("debt_id") == book.debts["final"])["reference"][0]
    channel = fake(
        tmp_path,
        clock,
        faults=Faults(on_reference={ref: FaultKind.TIMEOUT_AFTER_ACCEPT}),
        fates=Fates(technical_failure=1.0, failed_after_days=0.001),
    )
    first = send_batch(ctx, batch_id, channel, CONFIG)
    assert first.unknown == 1
    later(clock, minutes=10)
    settled = send_batch(ctx, batch_id, channel, CONFIG)
    assert settled.reconciled == {"technical": 1} and settled.accepted == 0
    assert channel.service.count(ref) == 1  # reconcile-before-resend did not resend it
    letter = outbox(ctx).filter(pl.col("reference") == ref)
    assert letter["status"].to_list() == ["technical-failure"]
    assert letter["notify_id"][0] == channel.service.notifications(ref)[0].notify_id
    assert debt_row(ctx, book.debts["final"])["review_reason"] == "LETTER_TECHNICAL_FAILURE"
    send_batch(ctx, batch_id, channel, CONFIG)  # nothing left to send or reconcile
    assert channel.service.count(ref) == 1


def test_an_outage_stops_the_batch_and_the_rerun_sends_each_letter_once(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    down = fake(tmp_path, clock, faults=Faults(server_error_after_accept=1.0))
    with pytest.raises(BatchStopped, match="outage") as stopped:
        send_batch(ctx, batch_id, down, CONFIG, options=SendOptions(intent_group=5))
    result = stopped.value.result
    assert result.unknown == 3 and result.by_status == {"unknown": 3, "pending": len(refs) - 3}
    assert result.quota["sent_count"] == 3  # the never-tried letters were given back
    later(clock, minutes=10)
    up = fake(tmp_path, clock)
    send_batch(ctx, batch_id, up, CONFIG)
    _exactly_once(up, refs)


def test_an_interrupted_send_records_the_letter_in_flight_as_unknown(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    channel = fake(tmp_path, clock)
    real_send = channel.send
    calls = {"n": 0}

    def interrupted(letter: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_send(letter)

    monkeypatch.setattr(channel, "send", interrupted)
    with pytest.raises(KeyboardInterrupt):
        send_batch(ctx, batch_id, channel, CONFIG, options=SendOptions(intent_group=4))
    statuses = outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"].to_list()
    assert statuses.count("accepted") == 1 and statuses.count("unknown") == 1
    assert statuses.count("pending") == len(refs) - 2
    later(clock, minutes=10)
    send_batch(ctx, batch_id, fake(tmp_path, clock), CONFIG)
    _exactly_once(channel, refs)


def test_letters_no_longer_due_are_cancelled_and_unusable_ones_held(
    ctx: Context, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    with ctx.engine.begin() as conn:
        # the PWC answered before the reminder went; the notice's PWC moved somewhere unusable
        conn.execute(
            update(debts)
            .where(debts.c.debt_id == book.debts["reminder"])
            .values(response="DO_NOT_COLLECT")
        )
        party = conn.execute(
            text(
                "SELECT c.pwc_party_ref FROM debts d JOIN cases c ON c.case_ref = d.case_ref"
                " WHERE d.debt_id = :d"
            ),
            {"d": book.debts["notice"]},
        ).scalar_one()
        conn.execute(
            update(parties).where(parties.c.party_ref == party).values(address_line_1="NFA")
        )
    channel = fake(tmp_path, clock)
    result = send_batch(ctx, batch_id, channel, CONFIG)
    assert (result.cancelled, result.held) == (1, 1)
    frame = outbox(ctx)
    reminder = frame.filter(pl.col("debt_id") == book.debts["reminder"])
    assert reminder.select("status", "failure_reason").row(0) == (
        "cancelled",
        "NOT_DUE:RESPONSE_RECEIVED",
    )
    notice = frame.filter(
        (pl.col("debt_id") == book.debts["notice"]) & (pl.col("recipient") == "PWC")
    )
    assert notice.select("status", "held_reason").row(0) == ("held", "ADDRESS:NO_FIXED_ABODE")
    assert debt_row(ctx, book.debts["notice"])["needs_tracing"]
    assert result.batch_status == "sent"


def test_a_batch_goes_through_one_channel_only(ctx: Context, tmp_path: Path) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    send_batch(ctx, batch_id, fake(tmp_path, clock), CONFIG, options=SendOptions(daily_limit=1))
    from csa_closure.channels import PrintFileChannel

    with pytest.raises(UsageError, match="--channel fake-notify"):
        send_batch(ctx, batch_id, PrintFileChannel(tmp_path / "out", CONFIG), CONFIG)


# --- print files ---------------------------------------------------------------------------------


def _print(ctx: Context, batch_id: int, out: Path) -> Any:
    from csa_closure.channels import PrintFileChannel

    return send_batch(
        ctx,
        batch_id,
        PrintFileChannel(out, CONFIG),
        CONFIG,
        options=SendOptions(daily_limit=None),
    )


def test_print_files_per_template_with_a_manifest_owner_only(ctx: Context, tmp_path: Path) -> None:
    book = letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    out = tmp_path / "print"
    result = _print(ctx, batch_id, out)
    assert result.sent == len(refs) and result.batch_status == "sent"
    files = result.print_files
    assert files is not None and files.written
    directory = Path(files.directory)
    assert directory == out / f"batch-{batch_id}"
    assert directory.stat().st_mode & 0o777 == 0o700
    manifest = json.loads((directory / "manifest.json").read_text())
    assert sorted(r for f in manifest["files"] for r in f["references"]) == sorted(refs)
    for entry in manifest["files"]:
        path = directory / entry["file"]
        assert path.stat().st_mode & 0o777 == 0o600
        rows = list(csv.reader(path.open(encoding="utf-8")))
        assert rows[0][:7] == [*(f"address line {n}" for n in range(1, 7)), "postcode"]
        assert len(rows) - 1 == entry["row_count"]
    assert set(outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"]) == {"sent"}
    assert debt_row(ctx, book.debts["final"])["state"] == "awaiting_response"


def test_sending_a_printed_batch_again_writes_nothing_new(ctx: Context, tmp_path: Path) -> None:
    letters_book(ctx)
    batch_id = built_batch(ctx)
    out = tmp_path / "print"
    first = _print(ctx, batch_id, out)
    assert first.print_files is not None
    directory = Path(first.print_files.directory)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.iterdir()}
    again = _print(ctx, batch_id, out)
    assert again.sent == 0 and again.print_files is None and again.batch_status == "sent"
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in directory.iterdir()}
    assert after == before


def test_a_crash_after_the_files_were_written_is_finished_without_rewriting(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters_book(ctx)
    batch_id = built_batch(ctx)
    out = tmp_path / "print"

    def crash(stage: str, where: str) -> None:
        if where == "after_write":
            raise RuntimeError("power cut")

    monkeypatch.setattr(failpoints, "reach", crash)
    with pytest.raises(RuntimeError):
        _print(ctx, batch_id, out)
    assert set(outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"]) == {"sending"}
    directory = out / f"batch-{batch_id}"
    before = {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}
    monkeypatch.undo()
    result = _print(ctx, batch_id, out)
    assert result.print_files is not None and not result.print_files.written
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == before
    assert set(outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"]) == {"sent"}


def test_a_crash_between_pages_is_finished_with_each_letter_once_in_id_order(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page's letters are marked ``sending`` and appended to the files' temporary parts
    as they are composed: killed after the first page, the run leaves no file in place; the
    re-run composes the marked letters again, then the rest, and each file holds its letters
    once each in id order, as a run never interrupted writes them."""
    from csa_closure.channels import PrintFileChannel
    from csa_closure.stages.letters_outbox import quota

    letters_book(ctx)
    batch_id = built_batch(ctx)
    pending = _pending_refs(ctx, batch_id)
    assert len(pending) >= 3
    options = SendOptions(daily_limit=None, print_chunk=2)
    reserve = quota.reserve
    calls: list[int] = []

    def second_page_dies(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return reserve(*args, **kwargs)

    monkeypatch.setattr(quota, "reserve", second_page_dies)
    out = tmp_path / "print"
    with pytest.raises(RuntimeError):
        send_batch(ctx, batch_id, PrintFileChannel(out, CONFIG), CONFIG, options=options)
    statuses = outbox(ctx).filter(pl.col("batch_id") == batch_id)["status"].to_list()
    assert statuses.count("sending") == 2 and "sent" not in statuses
    directory = out / f"batch-{batch_id}"
    assert not directory.exists() or not list(directory.iterdir())
    monkeypatch.undo()
    again = send_batch(ctx, batch_id, PrintFileChannel(out, CONFIG), CONFIG, options=options)
    assert again.print_files is not None and again.sent == len(pending)
    letters = outbox(ctx).filter(pl.col("batch_id") == batch_id).sort("letter_id")
    assert set(letters["status"]) == {"sent"}
    manifest = json.loads((directory / "manifest.json").read_text())
    written = [r for entry in manifest["files"] for r in entry["references"]]
    assert sorted(written) == sorted(pending)  # each letter once
    order = {r: i for i, r in enumerate(letters["reference"].to_list())}
    for entry in manifest["files"]:
        ids = [order[r] for r in entry["references"]]
        assert ids == sorted(ids), entry["file"]
        rows = list(csv.reader((directory / entry["file"]).open(encoding="utf-8")))
        assert len(rows) - 1 == entry["row_count"] == len(ids)


def test_print_files_changed_after_they_were_written_are_refused(
    ctx: Context, tmp_path: Path
) -> None:
    letters_book(ctx)
    batch_id = built_batch(ctx)
    out = tmp_path / "print"
    result = _print(ctx, batch_id, out)
    assert result.print_files is not None
    directory = Path(result.print_files.directory)
    csv_file = next(p for p in directory.iterdir() if p.suffix == ".csv")
    csv_file.write_text(csv_file.read_text() + "tampered\n")
    with ctx.engine.begin() as conn:  # as if a run had crashed after writing the files
        conn.execute(
            text("UPDATE letters SET status = 'sending' WHERE batch_id = :b"), {"b": batch_id}
        )
        conn.execute(
            text("UPDATE letter_batches SET status = 'sending' WHERE batch_id = :b"),
            {"b": batch_id},
        )
    with pytest.raises(UsageError, match="does not match its manifest"):
        _print(ctx, batch_id, out)


def test_a_print_batch_in_flight_is_finished_in_the_same_directory(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    letters_book(ctx)
    batch_id = built_batch(ctx)

    def crash(stage: str, where: str) -> None:
        if where == "after_write":
            raise RuntimeError("power cut")

    monkeypatch.setattr(failpoints, "reach", crash)
    with pytest.raises(RuntimeError):
        _print(ctx, batch_id, tmp_path / "first")
    monkeypatch.undo()
    with pytest.raises(UsageError, match="finish the batch with --out"):
        _print(ctx, batch_id, tmp_path / "second")
    assert not (tmp_path / "second").exists()
    assert _print(ctx, batch_id, tmp_path / "first").batch_status == "sent"


def _representation_template() -> Any:
    from csa_closure.letters.kinds import letter_kind

    return CONFIG.template(letter_kind("representation", "PWC"))


@pytest.mark.parametrize("change", ["placeholders", "type"])
def test_templates_that_differ_at_notify_refuse_the_batch_before_any_letter(
    ctx: Context, tmp_path: Path, change: str
) -> None:
    ctx, clock = clocked(ctx)
    letters_book(ctx)
    batch_id = built_batch(ctx)
    refs = _pending_refs(ctx, batch_id)
    template = _representation_template()
    kept = [name for name in template.placeholder_names[1:]]
    body = "\n".join(f"(({name}))" for name in [*kept, "reply_phone"])
    override = ("letter", body) if change == "placeholders" else ("email", body)
    channel = fake(tmp_path, clock, template_overrides={template.template_id: override})
    with pytest.raises(BatchStopped) as stopped:
        send_batch(ctx, batch_id, channel, CONFIG)
    message = stopped.value.result.stop_message or ""
    assert stopped.value.result.stop_code == "TEMPLATE_MISMATCH"
    assert "representation.PWC" in message and template.template_id in message
    if change == "placeholders":
        assert "does not send: reply_phone" in message  # the one the template needs
        assert f"does not have: {template.placeholder_names[0]}" in message  # the one we send
    else:
        assert "is of type email, not letter" in message
    assert channel.service.count() == 0  # not one letter
    assert {r[1] for r in channel.service.request_log()} == {"template"}
    assert stopped.value.result.by_status == {"pending": len(refs)}
    fixed = fake(tmp_path, clock)
    send_batch(ctx, batch_id, fixed, CONFIG)
    _exactly_once(fixed, refs)


def test_the_template_check_names_a_template_notify_does_not_have() -> None:
    from csa_closure.letters.kinds import letter_kind
    from csa_closure.stages.letters_outbox.templates import template_problem

    problem = template_problem(letter_kind("representation", "PWC"), CONFIG, None)
    assert problem is not None and "Notify has no such template" in problem
