"""What the Notify path and the print-file path share: the frames a change of status is
recorded from, and reading, screening and counting a batch's pending letters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from csa_closure.domain.states import LetterStatus
from csa_closure.letters import LettersConfig
from csa_closure.progress import Progress
from csa_closure.stages.letters_outbox.common import SOURCE_FOR_CHANNEL, TOOLKIT
from csa_closure.stages.letters_outbox.outcomes import cancel_letters, hold_letters
from csa_closure.stages.letters_outbox.outgoing import (
    Composed,
    Unsendable,
    letter_date_of,
    read_batch_letters,
    read_letters_by_id,
    unsendable_frame,
    without_address,
)
from csa_closure.stages.letters_outbox.send.options import SendOptions, SendResult, Stop
from csa_closure.store.letters import LETTER_KEY_COLUMNS
from csa_closure.store.runs import Run
from csa_closure.store.schema import letters

_KEEP = (*LETTER_KEY_COLUMNS, "status")


def rows_frame(rows: pl.DataFrame, status: str, as_of: date) -> pl.DataFrame:
    """:func:`composed_frame` of letters as read (a frame) rather than composed one by one."""
    return rows.select(
        *_KEEP,
        pl.coalesce(pl.col("letter_date"), pl.lit(as_of, dtype=pl.Date)).alias("letter_date"),
    ).with_columns(pl.lit(status).alias("status"))


def composed_frame(
    items: Sequence[Composed], status: str, as_of: date, **extra: list[Any]
) -> pl.DataFrame:
    """The letters of ``items`` (no personal data: ids, kind, dates) as a frame for recording."""
    data: dict[str, list[Any]] = {name: [c.row[name] for c in items] for name in _KEEP}
    data["status"] = [status] * len(items)
    data["letter_date"] = [letter_date_of(c.row, as_of) for c in items]
    data.update(extra)
    types: dict[str, Any] = {"letter_id": pl.Int64, "batch_id": pl.Int64, "debt_id": pl.Int64}
    instant = pl.Datetime("us", "UTC")
    types.update(letter_date=pl.Date, attempted_at=instant, sent_at=instant)
    schema = {name: types.get(name, pl.String) for name in data}
    return pl.DataFrame(data, schema=schema, strict=False)


class Sender:
    """What both paths do with a batch's pending letters: read them a page at a time, set
    aside those that may not go (cancelled, held), count them, keep the lease."""

    def __init__(
        self,
        run: Run,
        batch_id: int,
        channel_name: str,
        config: LettersConfig,
        options: SendOptions,
        result: SendResult,
        progress: Progress,
    ) -> None:
        self.run = run
        self.ctx = run.ctx
        self.batch_id = batch_id
        self.config = config
        self.options = options
        self.result = result
        self.progress = progress
        self.source = SOURCE_FOR_CHANNEL.get(channel_name, channel_name)

    def _pages(
        self, only_ids: Sequence[int] | None, size: int | None = None
    ) -> Iterator[pl.DataFrame]:
        """The pending letters, with their addresses, a page (of ``size``) at a time."""
        if only_ids is not None:
            with self.ctx.engine.connect() as conn:
                rows = read_letters_by_id(conn, only_ids, with_address=True)
            yield rows.filter(pl.col("status") == LetterStatus.PENDING.value)
            return
        after = 0
        while True:
            with self.ctx.engine.connect() as conn:
                rows = read_batch_letters(
                    conn,
                    self.batch_id,
                    [LetterStatus.PENDING.value],
                    after=after,
                    limit=size or self.options.read_size,
                    with_address=True,
                )
            if rows.height == 0:
                return
            after = int(rows["letter_id"].max())  # type: ignore[arg-type]
            yield rows

    def _set_aside(self, rows: pl.DataFrame, refused: list[Unsendable]) -> None:
        """Cancel the letters of ``rows`` no longer due and hold the ``refused``."""
        not_due = without_address(rows.filter(pl.col("not_due").is_not_null()))
        held = pl.concat(
            [
                without_address(unsendable_frame(rows, refused)),
                not_due.filter(pl.col("not_due") == "RECIPIENT_CHANGED").with_columns(
                    pl.col("not_due").alias("held_reason"), pl.lit(False).alias("tracing")
                ),
            ],
            how="diagonal_relaxed",
        )
        cancelled = not_due.filter(pl.col("not_due") != "RECIPIENT_CHANGED")
        if held.height or cancelled.height:
            with self.run.chunk() as conn:
                cancel_letters(conn, self.run, cancelled, source=TOOLKIT)
                self.result.debts_flagged += hold_letters(conn, self.run, held, source=TOOLKIT)
            self.result.held += held.height
            self.result.cancelled += cancelled.height

    def send(self) -> Stop | None:
        """Send the batch's letters by this path; the stop, if it stopped."""
        raise NotImplementedError

    def _count(self, conn: Connection, status: LetterStatus) -> int:
        """How many of the batch's letters are in ``status``."""
        return int(
            conn.execute(
                select(func.count())
                .select_from(letters)
                .where(letters.c.batch_id == self.batch_id, letters.c.status == status.value)
            ).scalar_one()
        )

    def _pending_count(self) -> int:
        with self.ctx.engine.connect() as conn:
            return self._count(conn, LetterStatus.PENDING)

    def _heartbeat(self) -> None:
        """Renew the batch's lease during long work between transactions."""
        with self.run.chunk():
            pass
