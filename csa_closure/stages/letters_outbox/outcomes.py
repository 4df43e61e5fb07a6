"""What happens to a debt when its letter's status changes, recorded with the letter's change.

- **Dispatched** (``accepted`` by Notify, ``sent`` in a print file, or found at Notify by a
  reconcile): a final-chance (representation) letter starts its debt's response window. The
  debt moves ``awaiting_letter`` -> ``awaiting_response`` with ``letter_date``,
  ``response_deadline`` and ``reminder_due`` from
  :func:`~csa_closure.letters.response_window` of the letter's own date (what the letter
  printed), event ``debt.final_chance_sent``. A debt already waiting on this letter's window (a
  resend) is left as it is; one that has moved elsewhere meanwhile is flagged for a caseworker
  (``LETTER_SENT_DEBT_MOVED``): the parent has a final-chance letter the book no longer expects.
- **Returned** or **permanently failed**: the debt is flagged for tracing and a caseworker
  (``LETTER_RETURNED``, ``LETTER_PERMANENT_FAILURE``); resolve holds a flagged debt back.
- **Cancelled in Notify** (by someone in Notify's dashboard): flagged for a caseworker.
- **Technical failure** at Notify: flagged for a caseworker (``LETTER_TECHNICAL_FAILURE``);
  never resent automatically (``notify settle`` decides, runbooks/03-letters.md).
- **Held** (unusable address, a fact missing): flagged for tracing (an address) or a caseworker.
- **Failed** (Notify refused it, 400): flagged for tracing when Notify refused the address,
  otherwise for a caseworker (``LETTER_FAILED:<code>``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.domain.events import EventType
from csa_closure.domain.states import DISPATCHED_LETTER_STATUSES, DebtState, LetterStatus
from csa_closure.letters import LettersConfig
from csa_closure.stages.letters_outbox.common import (
    FAILED_PREFIX,
    HELD_PREFIX,
    REASON_PERMANENT_FAILURE,
    REASON_RETURNED,
    REASON_SENT_AFTER_MOVE,
    REASON_TECHNICAL_FAILURE,
    flag_debts,
    read_in,
)
from csa_closure.store.debts import move_debts
from csa_closure.store.letters import change_letters, letter_changes

if TYPE_CHECKING:
    from csa_closure.store.runs import Run

FINAL_CHANCE_EVENT = EventType.DEBT_FINAL_CHANCE_SENT
DISPATCHED = sorted(s.value for s in DISPATCHED_LETTER_STATUSES)
ADDRESS_FAILURES = ("NOTIFY_BAD_POSTCODE", "NOTIFY_BAD_ADDRESS")
_NOTIFY_FLAGS = {
    LetterStatus.RETURNED.value: (REASON_RETURNED, True, True),
    LetterStatus.PERMANENT_FAILURE.value: (REASON_PERMANENT_FAILURE, True, True),
    LetterStatus.CANCELLED.value: ("LETTER_CANCELLED_AT_NOTIFY", False, True),
    # Notify: "Do not try to send the letter again": a caseworker queue, settled by an operator
    LetterStatus.TECHNICAL_FAILURE.value: (REASON_TECHNICAL_FAILURE, False, True),
}


def record_dispatched(
    conn: Connection, run: Run, dispatched: pl.DataFrame, config: LettersConfig
) -> int:
    """Start the response window of each final-chance letter in ``dispatched`` (letters with
    ``debt_id``, ``case_ref``, ``purpose``, ``letter_id``, ``reference``, ``letter_date``).
    Returns how many debts moved to ``awaiting_response``."""
    finals = dispatched.filter(pl.col("purpose") == "representation").unique(
        "debt_id", keep="first", maintain_order=True
    )
    if finals.height == 0:
        return 0
    debts = read_in(
        conn,
        "SELECT debt_id, state, letter_date AS debt_letter_date FROM debts "
        "WHERE debt_id IN ({marks})",
        finals["debt_id"].to_list(),
        {"debt_id": pl.Int64(), "state": pl.String(), "debt_letter_date": pl.Date()},
    )
    planned = (
        finals.select("debt_id", "case_ref", "letter_id", "reference", "letter_date")
        .join(debts, on="debt_id", how="inner")
        .with_columns(
            (pl.col("letter_date") + timedelta(days=config.response_days)).alias(
                "response_deadline"
            ),
            (pl.col("letter_date") + timedelta(days=config.reminder_after_days)).alias(
                "reminder_due"
            ),
        )
    )
    waiting = pl.col("state") == DebtState.AWAITING_LETTER.value
    moves = planned.filter(waiting)
    moved = move_debts(
        conn,
        run,
        moves.select(
            "debt_id",
            "case_ref",
            pl.col("state").alias("from_state"),
            pl.lit(DebtState.AWAITING_RESPONSE.value).alias("to_state"),
            "letter_date",
            "response_deadline",
            "reminder_due",
            pl.struct(
                "letter_id", "reference", "letter_date", "response_deadline", "reminder_due"
            ).alias("detail"),
        ),
        event_type=FINAL_CHANCE_EVENT,
        set_columns=["letter_date", "response_deadline", "reminder_due"],
    )
    already = (pl.col("state") == DebtState.AWAITING_RESPONSE.value) & (
        pl.col("debt_letter_date") == pl.col("letter_date")
    )
    elsewhere = planned.filter(~waiting & ~already.fill_null(False))
    flag_debts(
        conn,
        run,
        elsewhere.select("debt_id", pl.lit(REASON_SENT_AFTER_MOVE).alias("reason")),
        tracing=False,
        caseworker=True,
    )
    return moved


def hold_letters(conn: Connection, run: Run, held: pl.DataFrame, *, source: str) -> int:
    """Hold letters (rows with ``status``, ``held_reason`` and ``tracing``) and flag their
    debts. Returns how many debts were flagged."""
    return _set_aside(
        conn,
        run,
        held,
        LetterStatus.HELD.value,
        pl.col("held_reason"),
        source=source,
        set_columns=["held_reason"],
        prefix=HELD_PREFIX,
        address=pl.col("tracing"),
        address_caseworker=False,
    )


def cancel_letters(conn: Connection, run: Run, rows: pl.DataFrame, *, source: str) -> None:
    """Cancel letters no longer due (rows with ``status`` and ``not_due``): they never go."""
    if rows.height:
        change_letters(
            conn,
            run,
            letter_changes(rows, LetterStatus.CANCELLED.value, pl.col("not_due")).with_columns(
                pl.col("not_due").alias("failure_reason")
            ),
            source=source,
            set_columns=["failure_reason"],
        )


def fail_letters(conn: Connection, run: Run, failed: pl.DataFrame, *, source: str) -> int:
    """Letters the channel refused (rows with ``status``, ``code``, ``failure_reason``)."""
    return _set_aside(
        conn,
        run,
        failed,
        LetterStatus.FAILED.value,
        pl.col("code"),
        source=source,
        set_columns=["failure_reason"],
        prefix=FAILED_PREFIX,
        address=pl.col("code").is_in(ADDRESS_FAILURES),
        address_caseworker=True,
    )


def _set_aside(
    conn: Connection,
    run: Run,
    rows: pl.DataFrame,
    to_status: str,
    code: pl.Expr,
    *,
    source: str,
    set_columns: list[str],
    prefix: str,
    address: pl.Expr,
    address_caseworker: bool,
) -> int:
    """Move ``rows`` to ``to_status`` (held, failed) with ``code`` as the reason, and flag
    their debts ``prefix`` + code: for tracing where ``address`` (the address is the problem;
    a caseworker too if ``address_caseworker``), else for a caseworker. Returns debts flagged."""
    if rows.height == 0:
        return 0
    change_letters(
        conn,
        run,
        letter_changes(rows, to_status, code),
        source=source,
        set_columns=set_columns,
    )
    reason = (pl.lit(prefix) + code).alias("reason")
    flagged = flag_debts(
        conn,
        run,
        rows.filter(address).select("debt_id", reason),
        tracing=True,
        caseworker=address_caseworker,
    )
    return flagged + flag_debts(
        conn,
        run,
        rows.filter(~address).select("debt_id", reason),
        tracing=False,
        caseworker=True,
    )


def apply_statuses(
    conn: Connection,
    run: Run,
    rows: pl.DataFrame,
    *,
    source: str,
    config: LettersConfig,
    set_columns: tuple[str, ...] = (),
) -> tuple[int, int]:
    """Give each letter in ``rows`` its ``new_status`` (Notify's word for it), with what that
    means for its debt (see the module doc). ``rows`` are letters as read, with ``status``,
    ``new_status``, ``reason`` and the ``set_columns``. Returns (debts moved, debts flagged)."""
    changing = rows.filter(pl.col("new_status") != pl.col("status"))
    if changing.height == 0:
        return 0, 0
    change_letters(
        conn,
        run,
        letter_changes(changing, "", pl.col("reason")).with_columns(
            pl.col("new_status").alias("to_status")
        ),
        source=source,
        set_columns=list(set_columns),
    )
    newly = changing.filter(
        pl.col("new_status").is_in(DISPATCHED) & ~pl.col("status").is_in(DISPATCHED)
    )
    moved = record_dispatched(conn, run, newly, config)
    flagged = 0
    for status, (reason, tracing, caseworker) in _NOTIFY_FLAGS.items():
        flagged += flag_debts(
            conn,
            run,
            changing.filter(pl.col("new_status") == status).select(
                "debt_id", pl.lit(reason).alias("reason")
            ),
            tracing=tracing,
            caseworker=caseworker,
        )
    return moved, flagged
