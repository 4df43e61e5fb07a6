"""Parent responses: every contract row outcome, deadline boundaries, duplicates, rejects."""

from __future__ import annotations

import os
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from csa_closure.context import Context
from csa_closure.errors import InputError
from csa_closure.stages.resolve import resolve
from csa_closure.stages.responses import (
    ResponseRejected,
    import_responses,
    record_response,
)
from csa_closure.store.schema import events, import_rejections, response_imports, responses
from tests.support.builders import BookBuilder
from tests.support.resolve import (
    RESPONSE_HEADER,
    assert_balanced,
    debt_row,
    final_chance_debt,
    read_csv,
    seal_pull,
    send_notices,
    write_csv,
)

AS_OF = date(2019, 3, 31)
LETTER = date(2019, 1, 30)
DEADLINE = LETTER + timedelta(days=60)  # 2019-03-31: the as-of date


def _count(ctx: Context, table) -> int:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def book(ctx: Context) -> BookBuilder:
    return BookBuilder(ctx)


def test_on_the_deadline_is_in_time_and_the_day_after_is_late(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    on_time = final_chance_debt(book, book.case("C000000001"), 250_000, LETTER)
    late = final_chance_debt(book, book.case("C000000002"), 250_000, LETTER - timedelta(days=1))
    seal_pull(ctx)
    rows = [
        ("D1", "C000000001", "PWC", "COLLECT", DEADLINE.isoformat(), "POST"),
        ("D2", "C000000002", "PWC", "COLLECT", DEADLINE.isoformat(), "POST"),
    ]
    result = import_responses(ctx, write_csv(tmp_path / "r.csv", rows, RESPONSE_HEADER))
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.rejected_by_reason == {"LATE": 1}
    assert debt_row(ctx, on_time).state == "collect_requested"
    assert debt_row(ctx, on_time).response_received_on == DEADLINE
    assert debt_row(ctx, late).state == "awaiting_response"
    rejects = read_csv(Path(result.rejects_file or ""))
    assert rejects[0]["case_ref"] == "C000000002" and rejects[0]["reason_code"] == "LATE"
    assert "2019-03-30" in rejects[0]["detail"]  # names the deadline it missed
    assert_balanced(ctx)


def test_every_row_outcome_and_the_counts_add_up(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    collect = final_chance_debt(book, book.case("C000000001"), 300_000, LETTER)
    decline = final_chance_debt(book, book.case("C000000002"), 300_000, LETTER)
    twice = final_chance_debt(book, book.case("C000000003"), 300_000, LETTER)
    final_chance_debt(book, book.case("C000000004"), 300_000, LETTER)
    unsent = book.debt(book.case("C000000005"), "PWC", 300_000, state="awaiting_letter")
    sos_only = book.case("C000000006")
    book.debt(sos_only, "SOS", 9_000, state="write_off_pending", outcome="write_off_silent")
    disputed = book.case("C000000007")
    ready = book.debt(disputed, "PWC", 500_000, state="transfer_ready", outcome="transfer")
    seal_pull(ctx)
    d = "2019-02-10"
    rows = [
        ("A1", "C000000001", "PWC", "COLLECT", d, "POST"),  # accepted
        ("A2", "C000000002", "PWC", "DO_NOT_COLLECT", d, "PHONE"),  # accepted
        ("A1", "C000000001", "PWC", "COLLECT", d, "POST"),  # duplicate (same file)
        ("A3", "C000000003", "PWC", "COLLECT", "2019-02-12", "ONLINE"),  # loses to A4
        ("A4", "C000000003", "PWC", "DO_NOT_COLLECT", "2019-02-11", "ONLINE"),  # accepted
        ("A1", "C000000001", "PWC", "DO_NOT_COLLECT", d, "POST"),  # DOCUMENT_ID_CONFLICT
        ("A5", "C999999999", "PWC", "COLLECT", d, "POST"),  # UNKNOWN_CASE
        ("A6", "C000000005", "PWC", "COLLECT", d, "POST"),  # NOT_AWAITING (no letter)
        ("A7", "C000000006", "PWC", "COLLECT", d, "POST"),  # NOT_AWAITING (no PWC debt)
        ("A8", "C000000004", "PWC", "COLLECT", "2019-01-29", "POST"),  # BEFORE_LETTER
        ("A9", "C000000004", "PWC", "COLLECT", "2019-04-01", "POST"),  # FUTURE_DATE
        ("B1", "C000000004", "PWC", "COLLECT", "2019-02-30", "POST"),  # BAD_DATE
        ("B2", "C000000004", "PWC", "COLLECT", "10/02/2019", "POST"),  # BAD_DATE
        ("B3", "C000000004", "CHILD", "COLLECT", d, "POST"),  # BAD_PARTY
        ("B4", "C000000004", "PWC", "DISPUTE_AMOUNT", d, "POST"),  # BAD_RESPONSE
        ("B5", "C000000004", "NRP", "COLLECT", d, "POST"),  # BAD_RESPONSE
        ("B6", "C000000004", "PWC", "COLLECT", d, "FAX"),  # BAD_CHANNEL
        ("B7", "C000000004", "PWC", "", d, "POST"),  # MISSING_VALUE
        ("B8", "Jane Smith", "PWC", "COLLECT", d, "POST"),  # BAD_CASE_REF (no PII echoed)
        ("bad id!", "C000000004", "PWC", "COLLECT", d, "POST"),  # BAD_DOCUMENT_ID
        ("B9", "C000000004", "PWC", "COLLECT", d),  # MALFORMED_ROW
        ("C1", "C000000007", "NRP", "DISPUTE_AMOUNT", d, "POST"),  # accepted: to review
        ("C2", "C000000002", "NRP", "DISPUTE_AMOUNT", d, "POST"),  # NOT_AWAITING
        ("C3", "C000000001", "NRP", "DISPUTE_AMOUNT", d, "POST"),  # accepted after A1
    ]
    path = write_csv(tmp_path / "day1.csv", rows, RESPONSE_HEADER)
    result = import_responses(ctx, path)
    assert result.rows == len(rows) == result.accepted + result.duplicates + result.rejected
    assert (result.accepted, result.duplicates) == (5, 1)
    assert result.rejected_by_reason == {
        "ALREADY_ANSWERED": 1,
        "BAD_CASE_REF": 1,
        "BAD_CHANNEL": 1,
        "BAD_DATE": 2,
        "BAD_DOCUMENT_ID": 1,
        "BAD_PARTY": 1,
        "BAD_RESPONSE": 2,
        "BEFORE_LETTER": 1,
        "DOCUMENT_ID_CONFLICT": 1,
        "FUTURE_DATE": 1,
        "MALFORMED_ROW": 1,
        "MISSING_VALUE": 1,
        "NOT_AWAITING": 3,
        "UNKNOWN_CASE": 1,
    }
    assert result.actions == {"collect": 1, "decline": 2, "dispute": 2}
    assert debt_row(ctx, collect).state == "review"  # COLLECT, then the NRP disputed
    assert debt_row(ctx, collect).review_reason == "NRP_DISPUTE"
    declined = debt_row(ctx, decline)
    assert (declined.state, declined.outcome, declined.reason, declined.rule_id) == (
        "write_off_pending",
        "write_off_notice",
        "FINAL_CHANCE_DECLINED",
        "final_chance.declined",
    )
    assert declined.decided_by == "tester" and declined.decided_as_of == AS_OF
    assert declined.ruleset_hash == "r" * 64  # the rule set that opened the window
    assert debt_row(ctx, twice).response == "DO_NOT_COLLECT"  # the earliest received wins
    assert debt_row(ctx, unsent).state == "awaiting_letter"
    assert debt_row(ctx, ready).state == "review"
    # the rejects file: owner-only, every rejected row, no value copied from a bad field
    rejects_path = tmp_path / "day1.rejects.csv"
    assert result.rejects_file == str(rejects_path)
    assert stat.S_IMODE(os.stat(rejects_path).st_mode) == 0o600
    rejects = read_csv(rejects_path)
    assert len(rejects) == result.rejected
    text = rejects_path.read_text()
    assert "Jane" not in text and "bad id!" not in text and "10/02/2019" not in text
    assert {r["reason_code"] for r in rejects} == set(result.rejected_by_reason)
    by_row = {int(r["row_number"]): r for r in rejects}
    assert by_row[4]["detail"] == "the answer on row 5 is taken for this debt"
    assert by_row[18]["detail"] == "no value for response"
    assert _count(ctx, import_rejections) == result.rejected
    assert _count(ctx, responses) == 5
    assert_balanced(ctx)


def test_the_same_file_twice_changes_nothing_and_rewrites_its_rejects(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    debt = final_chance_debt(book, book.case("C000000001"), 250_000, LETTER)
    seal_pull(ctx)
    rows = [
        ("D1", "C000000001", "PWC", "COLLECT", "2019-02-01", "POST"),
        ("D2", "C000000009", "PWC", "COLLECT", "2019-02-01", "POST"),
    ]
    path = write_csv(tmp_path / "r.csv", rows, RESPONSE_HEADER)
    first = import_responses(ctx, path)
    with ctx.engine.connect() as conn:
        events_before = conn.execute(select(func.count()).select_from(events)).scalar_one()
    Path(first.rejects_file or "").unlink()
    again = import_responses(ctx, path)
    assert again.already_imported
    assert (again.import_id, again.accepted, again.rejected) == (first.import_id, 1, 1)
    assert again.rejected_by_reason == {"UNKNOWN_CASE": 1}
    assert read_csv(Path(again.rejects_file or ""))[0]["case_ref"] == "C000000009"
    with ctx.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == (
            events_before
        )
    assert _count(ctx, response_imports) == 1
    # the same rows in a different file (another export of the day): row-level duplicates
    copy = write_csv(tmp_path / "copy.csv", [*rows, rows[0]], RESPONSE_HEADER)
    third = import_responses(ctx, copy)
    assert (third.accepted, third.duplicates, third.rejected) == (0, 2, 1)
    assert debt_row(ctx, debt).state == "collect_requested"
    assert_balanced(ctx)


def test_columns_in_any_order_extras_ignored_bom_and_blank_lines(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    debt = final_chance_debt(book, book.case("S000000001"), 250_000, LETTER)
    path = tmp_path / "r.csv"
    path.write_bytes(
        "\ufeffchannel,received_on,note,response,party,case_ref,document_id\r\n"
        "ONLINE,2019-02-01,anything,DO_NOT_COLLECT,PWC,S000000001,W-1\r\n\r\n".encode()
    )
    result = import_responses(ctx, path)
    assert (result.rows, result.accepted, result.ignored_columns) == (1, 1, ["note"])
    assert debt_row(ctx, debt).state == "write_off_pending"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"document_id,case_ref,party,response,channel\nD1,C000000001,PWC,COLLECT,POST\n",
            "no received_on column",
        ),
        (b"", "empty"),
        (b"document_id,case_ref,party,response,received_on,channel,party\n", "more than once"),
        (
            "document_id,case_ref,party,response,received_on,channel\nD\xe9".encode("latin-1"),
            "line 2 is not UTF-8",
        ),
    ],
)
def test_a_file_that_cannot_be_read_whole_is_refused_before_anything_is_written(
    ctx: Context, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        import_responses(ctx, path)
    assert _count(ctx, response_imports) == 0


def test_an_in_time_answer_imported_after_the_expiry_is_honoured(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    expired = {"state": "write_off_pending", "outcome": "write_off_notice"}
    # written off as NO_RESPONSE the proper way: notices sent, then resolve
    gone = final_chance_debt(
        book, book.case("C000000003"), 250_000, date(2019, 1, 1), reason="NO_RESPONSE", **expired
    )
    send_notices(ctx)
    resolve(ctx)
    assert debt_row(ctx, gone).state == "written_off"
    pending_collect = final_chance_debt(
        book, book.case("C000000001"), 250_000, date(2019, 1, 1), reason="NO_RESPONSE", **expired
    )
    pending_decline = final_chance_debt(
        book, book.case("C000000002"), 250_000, date(2019, 1, 1), reason="NO_RESPONSE", **expired
    )
    too_late = final_chance_debt(
        book, book.case("C000000004"), 250_000, date(2019, 1, 1), reason="NO_RESPONSE", **expired
    )
    rows = [
        ("E1", "C000000001", "PWC", "COLLECT", "2019-03-02", "POST"),  # deadline day
        ("E2", "C000000002", "PWC", "DO_NOT_COLLECT", "2019-02-02", "POST"),
        ("E3", "C000000003", "PWC", "COLLECT", "2019-02-02", "POST"),
        ("E4", "C000000004", "PWC", "COLLECT", "2019-03-03", "POST"),  # the day after
    ]
    result = import_responses(ctx, write_csv(tmp_path / "r.csv", rows, RESPONSE_HEADER))
    assert result.actions == {
        "collect_after_expiry": 1,
        "decline_after_expiry": 1,
        "collect_after_write_off": 1,
    }
    assert result.rejected_by_reason == {"LATE": 1}
    referred = debt_row(ctx, pending_collect)
    assert (referred.state, referred.review_reason) == ("review", "IN_TIME_RESPONSE_AFTER_EXPIRY")
    declined = debt_row(ctx, pending_decline)
    assert (declined.state, declined.reason) == ("write_off_pending", "FINAL_CHANCE_DECLINED")
    flagged = debt_row(ctx, gone)
    assert (flagged.state, flagged.needs_caseworker) == ("written_off", True)
    assert flagged.review_reason == "IN_TIME_RESPONSE_AFTER_WRITE_OFF"
    assert debt_row(ctx, too_late).state == "write_off_pending"


def test_a_dispute_while_in_a_cms_package_flags_without_moving(
    ctx: Context, book: BookBuilder, tmp_path: Path
) -> None:
    case = book.case("C000000001")
    sent = book.debt(case, "PWC", 400_000, state="transfer_sent", outcome="transfer")
    also = book.debt(case, "SOS", 40_000, state="transfer_ready", outcome="transfer")
    rows = [("N1", "C000000001", "NRP", "DISPUTE_AMOUNT", "2019-03-01", "PHONE")]
    result = import_responses(ctx, write_csv(tmp_path / "r.csv", rows, RESPONSE_HEADER))
    assert result.actions == {"dispute": 1, "dispute_in_transfer": 1}
    row = debt_row(ctx, sent)
    assert (row.state, row.needs_caseworker, row.review_reason) == (
        "transfer_sent",
        True,
        "NRP_DISPUTE_IN_TRANSFER",
    )
    assert debt_row(ctx, also).state == "review"
    with ctx.engine.connect() as conn:
        recorded = conn.execute(select(responses.c.debt_id)).scalar_one()
    assert recorded == sent  # recorded against the PWC debt


def test_record_takes_a_phone_call_through_the_same_rules(ctx: Context, book: BookBuilder) -> None:
    debt = final_chance_debt(book, book.case("C000000001"), 250_000, LETTER)
    other = final_chance_debt(book, book.case("C000000002"), 1_000, date(2018, 12, 1))
    seal_pull(ctx)
    first = record_response(ctx, "C000000001", party="PWC", response="COLLECT")
    assert (first.status, first.actions) == ("accepted", {"collect": 1})
    assert first.document_id == "PHONE:C000000001:PWC:COLLECT:20190331"
    assert debt_row(ctx, debt).state == "collect_requested"
    again = record_response(ctx, "C000000001", party="PWC", response="COLLECT")
    assert again.status == "duplicate"
    with pytest.raises(ResponseRejected, match="ALREADY_ANSWERED"):
        record_response(ctx, "C000000001", party="PWC", response="DO_NOT_COLLECT")
    with pytest.raises(ResponseRejected, match="LATE"):
        record_response(ctx, "C000000002", party="PWC", response="COLLECT")
    assert debt_row(ctx, other).state == "awaiting_response"
    with pytest.raises(ResponseRejected, match="UNKNOWN_CASE"):
        record_response(ctx, "C000000099", party="PWC", response="COLLECT")
    assert _count(ctx, responses) == 1
    assert_balanced(ctx)
