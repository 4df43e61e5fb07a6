"""What every part of the letters outbox shares: names, the batch statuses, reading by id
lists, and the flags for people on debts. The letters themselves are written only by
:mod:`csa_closure.store.letters`.

:func:`flag_debts` raises the flags for a person on a debt (``needs_tracing``,
``needs_caseworker``, ``review_reason``) with a ``debt.flagged`` event; a reason already on the
debt is kept (the first problem is the one a caseworker sees first; every one is in the events).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.domain.codes import ReviewReason, ReviewReasonPrefix
from csa_closure.domain.events import EventType
from csa_closure.errors import UsageError
from csa_closure.store.debts import update_debts
from csa_closure.store.dialect import read_frame
from csa_closure.store.schema import letter_batches

if TYPE_CHECKING:
    from csa_closure.store.runs import Run

BUILD_STAGE = "notify-build"
BUILD_LEASE = "stage:notify-build"
APPROVE_STAGE = "notify-approve"
SEND_STAGE = "notify-send"
SYNC_STAGE = "notify-sync"
SYNC_LEASE = "stage:notify-sync"

GOVUK_NOTIFY = "govuk-notify"
FAKE_NOTIFY = "fake-notify"
PRINT_FILE = "print-file"
NOTIFY_CHANNELS = (GOVUK_NOTIFY, FAKE_NOTIFY)
CHANNELS = (GOVUK_NOTIFY, PRINT_FILE, FAKE_NOTIFY)

# letter_status_history.source: who says the letter has this status
TOOLKIT = "toolkit"
SOURCE_FOR_CHANNEL = {GOVUK_NOTIFY: "notify", FAKE_NOTIFY: "fake", PRINT_FILE: "print-file"}

DEBT_FLAGGED_EVENT = EventType.DEBT_FLAGGED

# review_reason codes the outbox sets on a debt (all start LETTER_: `review list --reason
# LETTER`); their one home is domain/codes.py, these names are the outbox's short forms
HELD_PREFIX = ReviewReasonPrefix.LETTER_HELD.value
REASON_RETURNED = ReviewReason.LETTER_RETURNED.value
REASON_PERMANENT_FAILURE = ReviewReason.LETTER_PERMANENT_FAILURE.value
REASON_TECHNICAL_FAILURE = ReviewReason.LETTER_TECHNICAL_FAILURE.value  # notify settle
REASON_UNDELIVERABLE = ReviewReason.LETTER_UNDELIVERABLE.value
REASON_DUPLICATED = ReviewReason.LETTER_DUPLICATED.value
REASON_UNCONFIRMED = ReviewReason.LETTER_UNCONFIRMED.value
REASON_SENT_AFTER_MOVE = ReviewReason.LETTER_SENT_DEBT_MOVED.value
FAILED_PREFIX = ReviewReasonPrefix.LETTER_FAILED.value

IN_LIST_SIZE = 5_000  # ids per IN (...) list: far under both databases' parameter limits


def batch_lease(batch_id: int) -> str:
    """The lease a sender holds on a batch: two operators cannot send it at once."""
    return f"letter_batch:{batch_id}"


def slices(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def read_in(
    conn: Connection,
    sql: str,
    values: Sequence[Any],
    schema: dict[str, pl.DataType],
    params: Sequence[Any] = (),
) -> pl.DataFrame:
    """``sql`` (with ``{marks}`` where the IN list goes, after any ``params``) for every value,
    ``IN_LIST_SIZE`` at a time."""
    frames = [
        read_frame(
            conn,
            (sql.format(marks=", ".join("?" for _ in part)), [*params, *part]),
            schema,
        )
        for part in slices(list(values), IN_LIST_SIZE)
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)


# --- flags for people on debts ------------------------------------------------------------------

_DEBT_FLAG_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "state": pl.String(),
    "needs_tracing": pl.Boolean(),
    "needs_caseworker": pl.Boolean(),
    "review_reason": pl.String(),
}


def read_debt_flags(conn: Connection, debt_ids: Sequence[int]) -> pl.DataFrame:
    return read_in(
        conn,
        "SELECT debt_id, case_ref, state, needs_tracing, needs_caseworker, review_reason "
        "FROM debts WHERE debt_id IN ({marks})",
        sorted(set(debt_ids)),
        _DEBT_FLAG_SCHEMA,
    )


def flag_debts(
    conn: Connection,
    run: Run,
    flags: pl.DataFrame,
    *,
    tracing: bool,
    caseworker: bool,
) -> int:
    """Flag the debts in ``flags`` (``debt_id``, ``reason``: the review reason code) for
    tracing and/or a caseworker. A debt already flagged the same way for the same reason is
    left alone (no second event). Returns how many debts were flagged."""
    if flags.height == 0:
        return 0
    wanted = flags.select("debt_id", pl.col("reason").cast(pl.String)).unique(
        "debt_id", keep="first", maintain_order=True
    )
    current = read_debt_flags(conn, wanted["debt_id"].to_list())
    merged = current.join(wanted, on="debt_id", how="inner").with_columns(
        (pl.col("needs_tracing").fill_null(False) | tracing).alias("new_tracing"),
        (pl.col("needs_caseworker").fill_null(False) | caseworker).alias("new_caseworker"),
        pl.coalesce("review_reason", "reason").str.slice(0, 64).alias("new_reason"),
    )
    changed = merged.filter(
        (pl.col("new_tracing") != pl.col("needs_tracing").fill_null(False))
        | (pl.col("new_caseworker") != pl.col("needs_caseworker").fill_null(False))
        | (pl.col("new_reason") != pl.col("review_reason")).fill_null(True)
    )
    if changed.height == 0:
        return 0
    frame = changed.select(
        "debt_id",
        "case_ref",
        "state",
        pl.col("new_tracing").alias("needs_tracing"),
        pl.col("new_caseworker").alias("needs_caseworker"),
        pl.col("new_reason").alias("review_reason"),
        pl.struct(
            pl.col("reason"),
            pl.col("new_tracing").alias("needs_tracing"),
            pl.col("new_caseworker").alias("needs_caseworker"),
        ).alias("detail"),
    )
    return update_debts(
        conn,
        run,
        frame,
        columns=["needs_tracing", "needs_caseworker", "review_reason"],
        event_type=DEBT_FLAGGED_EVENT,
    )


def batch_row(conn: Connection, batch_id: int) -> Any:
    """The batch's row, or ``UsageError`` naming the command that lists batches."""
    row = conn.execute(select(letter_batches).where(letter_batches.c.batch_id == batch_id)).first()
    if row is None:
        raise UsageError(
            f"there is no letter batch {batch_id}: `csa-closure notify status` lists them"
        )
    return row
