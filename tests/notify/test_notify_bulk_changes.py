"""Status changes of many letters at once (more than a send group: the bulk path, which on
PostgreSQL updates from a copied temporary table) are the same compare-and-set: every letter
moves, with its history and event, or none does. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from sqlalchemy import text

from csa_closure.context import Context
from csa_closure.errors import ConcurrentChange
from csa_closure.stages.letters_outbox.outgoing import read_batch_outbox
from csa_closure.store.letters import SMALL, change_letters, letter_changes
from csa_closure.store.runs import start_run
from tests.support.builders import BookBuilder
from tests.support.notify import built_batch, outbox

LETTERS = SMALL + 40


def _count(ctx: Context, sql: str) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_many_letters_change_at_once_or_not_at_all(ctx: Context) -> None:
    book = BookBuilder(ctx)
    for _ in range(LETTERS):
        book.debt(book.case(), "PWC", 200_000, state="awaiting_letter", outcome="representation")
    batch_id = built_batch(ctx)
    with ctx.engine.connect() as conn:
        rows = read_batch_outbox(conn, batch_id, ["pending"])
    assert rows.height == LETTERS
    run = start_run(ctx, "notify-send", {"test": "bulk"})
    history_before = _count(ctx, "SELECT count(*) FROM letter_status_history")
    intents = letter_changes(
        rows.with_columns(
            pl.lit(date(2019, 3, 31)).alias("letter_date"), pl.lit("print-file").alias("channel")
        ),
        "sending",
        "SEND_INTENT",
    )
    with run.chunk() as conn:
        assert (
            change_letters(
                conn,
                run,
                intents,
                source="toolkit",
                set_columns=["letter_date", "channel"],
                count_attempt=True,
            )
            == LETTERS
        )
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    assert set(frame["status"]) == {"sending"} and set(frame["attempts"]) == {1}
    assert _count(ctx, "SELECT count(*) FROM letters WHERE channel = 'print-file'") == LETTERS
    assert set(frame["letter_date"]) == {date(2019, 3, 31)}
    assert _count(ctx, "SELECT count(*) FROM letter_status_history") == history_before + LETTERS

    # one letter moved on meanwhile: the whole change is refused and nothing is written
    stale = letter_changes(rows.with_columns(pl.lit("sending").alias("status")), "sent", "X")
    with ctx.engine.begin() as conn:
        conn.execute(
            text("UPDATE letters SET status = 'held' WHERE letter_id = :id"),
            {"id": int(rows["letter_id"][7])},
        )
    with pytest.raises(ConcurrentChange, match=f"1 of {LETTERS} letters"), run.chunk() as conn:
        change_letters(conn, run, stale, source="toolkit")
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    assert frame["status"].value_counts().sort("status").rows() == [
        ("held", 1),
        ("sending", LETTERS - 1),
    ]
    assert _count(ctx, "SELECT count(*) FROM letter_status_history") == history_before + LETTERS

    # the rest move, counted once each
    rest = stale.filter(pl.col("letter_id") != rows["letter_id"][7])
    with run.chunk() as conn:
        assert change_letters(conn, run, rest, source="toolkit") == LETTERS - 1
    frame = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    assert set(frame["attempts"]) == {1}
    assert frame["status"].value_counts().sort("status").rows() == [
        ("held", 1),
        ("sent", LETTERS - 1),
    ]
