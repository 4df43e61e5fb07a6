"""Helpers for the letters outbox tests (no tests here).

- :func:`letters_book`: a small book with a debt in every state a letter can be due in, and
  the letters it should produce on ``AS_OF``;
- :func:`clocked`: the test context with a clock that moves only when told, shared with the
  fake Notify service so reconcile and sync see one time;
- :func:`fake`: the fake Notify channel over a file in the test's directory;
- :func:`built_batch`: build (as ``maker``) and approve (as ``checker``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select, text

from csa_closure.context import Context
from csa_closure.letters import load_letters_config
from csa_closure.simulation.fake_notify import FakeNotifyChannel
from csa_closure.stages.letters_outbox import approve_batch, build_batch
from csa_closure.store.dialect import read_frame
from csa_closure.store.schema import debts, letters
from tests.conftest import AS_OF, SteppingClock
from tests.support.builders import BookBuilder

CONFIG = load_letters_config(env={})
START = datetime(2019, 3, 31, 9, 0, tzinfo=UTC)


def clocked(ctx: Context, clock: SteppingClock | None = None) -> tuple[Context, SteppingClock]:
    clock = clock or SteppingClock(START)
    return dataclasses.replace(ctx, clock=clock), clock


def fake(path: Path, clock: SteppingClock, **options: Any) -> FakeNotifyChannel:
    options.setdefault("templates", CONFIG)
    return FakeNotifyChannel(path / "notify.db", clock=lambda: clock.now, **options)


def later(clock: SteppingClock, **delta: float) -> None:
    clock.now = clock.now + timedelta(**delta)


@dataclasses.dataclass
class Book:
    debts: dict[str, int]  # name -> debt_id
    expected: set[tuple[str, str, str]]  # (debt name, purpose, recipient) due on AS_OF
    held: set[tuple[str, str, str]]  # of which held for the address


def letters_book(ctx: Context) -> Book:
    """One case per situation; ``expected`` are the letters due on AS_OF (none for the silent
    SOS write-off, none to the dead NRP)."""
    book = BookBuilder(ctx)
    decided = {"decided_as_of": date(2019, 3, 1)}
    debts: dict[str, int] = {}

    def case(name: str, **parties: Any) -> str:
        pwc = book.party(**parties.get("pwc", {}))
        nrp = book.party(**parties.get("nrp", {}))
        return book.case(pwc=pwc, nrp=nrp)

    c = case("final")
    debts["final"] = book.debt(
        c, "PWC", 250_000, state="awaiting_letter", outcome="representation", **decided
    )
    c = case("notice")
    debts["notice"] = book.debt(
        c, "PWC", 40_000, state="write_off_pending", outcome="write_off_notice", **decided
    )
    debts["silent"] = book.debt(
        c, "SOS", 30_000, state="write_off_pending", outcome="write_off_silent", **decided
    )
    c = case("bad_address", pwc={"postcode": "NOT A POSTCODE"})
    debts["bad_address"] = book.debt(
        c, "PWC", 300_000, state="awaiting_letter", outcome="representation", **decided
    )
    c = case("reminder")
    debts["reminder"] = book.debt(
        c,
        "PWC",
        260_000,
        state="awaiting_response",
        outcome="representation",
        letter_date=date(2019, 3, 1),
        reminder_due=date(2019, 3, 22),
        response_deadline=date(2019, 4, 30),
        **decided,
    )
    c = case("collect")
    debts["collect"] = book.debt(
        c,
        "PWC",
        270_000,
        state="collect_requested",
        outcome="representation",
        response="COLLECT",
        letter_date=date(2019, 2, 1),
        response_deadline=date(2019, 4, 2),
        reminder_due=date(2019, 2, 22),
        **decided,
    )
    c = case("dead_nrp", nrp={"deceased_on": date(2019, 1, 5)})
    debts["dead_nrp"] = book.debt(
        c, "PWC", 45_000, state="write_off_pending", outcome="write_off_notice", **decided
    )
    c = case("transferred")
    debts["transferred"] = book.debt(
        c, "PWC", 500_000, state="transferred", outcome="transfer", **decided
    )
    expected = {
        ("final", "representation", "PWC"),
        ("notice", "write_off_notice", "PWC"),
        ("notice", "write_off_notice", "NRP"),
        ("bad_address", "representation", "PWC"),
        ("reminder", "reminder", "PWC"),
        ("collect", "collection_requested", "NRP"),
        ("dead_nrp", "write_off_notice", "PWC"),
        ("transferred", "transfer_notice", "PWC"),
        ("transferred", "transfer_notice", "NRP"),
    }
    return Book(debts, expected, {("bad_address", "representation", "PWC")})


LETTER_SCHEMA: dict[str, pl.DataType] = {
    "letter_id": pl.Int64(),
    "reference": pl.String(),
    "batch_id": pl.Int64(),
    "debt_id": pl.Int64(),
    "purpose": pl.String(),
    "recipient": pl.String(),
    "status": pl.String(),
    "held_reason": pl.String(),
    "failure_reason": pl.String(),
    "notify_id": pl.String(),
    "letter_date": pl.Date(),
    "attempts": pl.Int64(),
}


def outbox(ctx: Context) -> pl.DataFrame:
    with ctx.engine.connect() as conn:
        return read_frame(
            conn,
            select(*(letters.c[c] for c in LETTER_SCHEMA)).order_by(letters.c.letter_id),
            LETTER_SCHEMA,
        )


def named(book: Book, frame: pl.DataFrame) -> set[tuple[str, str, str]]:
    names = {v: k for k, v in book.debts.items()}
    return {(names[d], p, r) for d, p, r in frame.select("debt_id", "purpose", "recipient").rows()}


def built_batch(ctx: Context, **options: Any) -> int:
    built = build_batch(ctx.as_actor("maker"), **options)
    assert built.batch_id is not None
    approve_batch(ctx.as_actor("checker"), built.batch_id)
    return built.batch_id


def debt_row(ctx: Context, debt_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        row = conn.execute(select(debts).where(debts.c.debt_id == debt_id)).one()
    return dict(row._mapping)


def history(ctx: Context, letter_id: int) -> list[str]:
    with ctx.engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT status FROM letter_status_history WHERE letter_id = :l"
                    " ORDER BY history_id"
                ),
                {"l": letter_id},
            ).scalars()
        )


def sent_counts(channel: FakeNotifyChannel, references: Iterable[str]) -> dict[str, int]:
    return {r: channel.service.count(r) for r in references}


__all__ = ["AS_OF", "CONFIG", "START"]
