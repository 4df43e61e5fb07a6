"""The print-file path of ``notify send``: the batch's letters marked ``sending`` (the
intent), composed and written as Notify's bulk-upload CSV per template plus ``manifest.json``
through the :class:`~csa_closure.channels.base.PrintChannel`, then marked ``sent``. A re-run
after a crash finds the complete files by their manifest and only records them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import polars as pl
from sqlalchemy import select

from csa_closure.channels import PrintBatchConflict, PrintChannel
from csa_closure.channels.printfile import MANIFEST_NAME, PrintBatch, PrintFile, file_sha256
from csa_closure.domain.states import LetterStatus
from csa_closure.errors import UsageError
from csa_closure.letters import LettersConfig
from csa_closure.progress import Progress
from csa_closure.stages.letters_outbox import quota
from csa_closure.stages.letters_outbox.common import SEND_STAGE, TOOLKIT, slices
from csa_closure.stages.letters_outbox.outcomes import record_dispatched
from csa_closure.stages.letters_outbox.outgoing import (
    compose_frame_rows,
    read_batch_outbox,
    read_for_composing,
    still_due,
    without_address,
)
from csa_closure.stages.letters_outbox.send.options import (
    PRINTING_EVENT,
    PrintFiles,
    SendOptions,
    SendResult,
    Stop,
    StopCode,
)
from csa_closure.stages.letters_outbox.send.sender import Sender, rows_frame
from csa_closure.store import events, failpoints
from csa_closure.store.letters import change_letters, letter_changes
from csa_closure.store.runs import Run
from csa_closure.store.schema import events as events_table


class PrintSender(Sender):
    """The print-file path: every sendable letter marked ``sending`` (the intent), the batch's
    files written (or found complete from an earlier run), then the letters marked ``sent``."""

    def __init__(
        self,
        run: Run,
        batch_id: int,
        channel: PrintChannel,
        config: LettersConfig,
        options: SendOptions,
        result: SendResult,
        progress: Progress,
    ) -> None:
        super().__init__(run, batch_id, channel.name, config, options, result, progress)
        self.channel = channel

    def send(self) -> Stop | None:
        """Intent for every sendable letter, then the files, then ``sent``.

        Each page of pending letters is read (with the addresses) and composed once: the
        letters that may not go are set aside, the rest marked ``sending`` in one transaction
        and their composed rows appended to the files' temporary parts at once. Only when every
        page is written are the files put in place with their manifest, so a crash part-way
        leaves no file under a final name and letters marked ``sending``, which the next run
        composes again (first, in id order, as they were marked) before any still pending."""
        out_dir = self.channel.out_dir
        self._same_directory(out_dir)
        stop = self._print_quota()
        if stop is not None:
            return stop
        marked, size = "print send: marking sent", self.options.print_chunk
        with self.ctx.engine.connect() as conn:
            earlier = read_batch_outbox(conn, self.batch_id, [LetterStatus.SENDING.value])
        batch = _complete_files(out_dir, self.batch_id, earlier) if earlier.height else None
        if batch is None:
            frames = self._composed_with_intents(earlier["letter_id"].to_list())
            first = next(frames, None)
            if first is None:  # nothing left that may go
                return None
            batch = self._write_files(chain([first], frames))
        failpoints.reach(SEND_STAGE, "after_write")
        with self.ctx.engine.connect() as conn:
            sending = read_batch_outbox(conn, self.batch_id, [LetterStatus.SENDING.value])
        self.progress.start(marked, sending.height)
        for start in range(0, sending.height, size):
            rows = sending.slice(start, size).with_columns(
                pl.lit(self.ctx.clock()).alias("sent_at")
            )
            with self.run.chunk() as conn:
                change_letters(
                    conn,
                    self.run,
                    letter_changes(rows, LetterStatus.SENT.value, "PRINT_FILE_WRITTEN"),
                    source=self.source,
                    set_columns=["sent_at"],
                )
                self.result.debts_moved += record_dispatched(conn, self.run, rows, self.config)
            self.progress.advance(marked, rows.height)
        self.progress.finish(marked)
        self.result.sent += sending.height
        self.result.print_files = PrintFiles(
            directory=str(batch.directory),
            manifest_sha256=batch.manifest_sha256,
            written=batch.written,
            files=[
                {
                    "file": f.name,
                    "template_id": f.template_id,
                    "letters": list(f.kinds),
                    "row_count": f.row_count,
                    "sha256": f.sha256,
                }
                for f in batch.files
            ],
        )
        return None

    def _screen_frame(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Cancel letters no longer due, hold the unsendable, the page at once: the letters
        that can go (as read, without their addresses) and the same letters composed."""
        rows = rows.with_columns(still_due(self.ctx.as_of))
        due = rows.filter(pl.col("not_due").is_null())
        composed, refused = compose_frame_rows(due, self.config, self.ctx.as_of)
        self._set_aside(rows, refused)
        ready = due.join(
            composed.select("letter_id"), on="letter_id", how="semi", maintain_order="left"
        )
        return without_address(ready), composed

    def _composed_with_intents(self, earlier: list[int]) -> Iterator[pl.DataFrame]:
        """The letters for the files, composed, a page at a time: first those an earlier run
        marked ``sending`` (composed again), then each page of pending letters screened and
        marked ``sending`` (the intent, with its share of the day's quota) before its letters
        are handed on. Only non-empty pages."""
        yield from self._composed(earlier)
        as_of, name, size = self.ctx.as_of, self.channel.name, self.options.print_chunk
        announced = False
        screening = "print send: screening and writing letters"
        self.progress.start(screening, self._pending_count())
        for rows in self._pages(None, size):
            ready, composed = self._screen_frame(rows)
            if ready.height:
                with self.run.chunk() as conn:
                    if not announced:  # where these letters' files go, with their intents
                        events.record(
                            conn,
                            self.run,
                            PRINTING_EVENT,
                            entity=f"batch:{self.batch_id}",
                            detail={"out_dir": str(Path(self.channel.out_dir).resolve())},
                        )
                        announced = True
                    quota.reserve(conn, name, as_of, ready.height, self.options.daily_limit)
                    change_letters(
                        conn,
                        self.run,
                        letter_changes(
                            rows_frame(ready, LetterStatus.PENDING.value, as_of).with_columns(
                                pl.lit(name).alias("channel"),
                                pl.lit(self.ctx.clock()).alias("attempted_at"),
                            ),
                            LetterStatus.SENDING.value,
                            "SEND_INTENT",
                        ),
                        source=TOOLKIT,
                        set_columns=["letter_date", "channel", "attempted_at"],
                        count_attempt=True,
                    )
                yield composed
            self.progress.advance(screening, rows.height)
        self.progress.finish(screening)

    def _same_directory(self, out_dir: Path) -> None:
        """Letters an earlier run marked for printing may already be in its files: they are
        finished in the same directory, never written a second time somewhere else."""
        with self.ctx.engine.connect() as conn:
            in_flight = self._count(conn, LetterStatus.SENDING)
            # the batch's latest printing event, picked here: with ORDER BY event_id DESC
            # LIMIT 1, PostgreSQL on statistics older than a bulk load walked the whole log
            # backwards by event_id (over three minutes at eight million events)
            printing = conn.execute(
                select(events_table.c.event_id, events_table.c.detail).where(
                    events_table.c.event_type == PRINTING_EVENT,
                    events_table.c.entity == f"batch:{self.batch_id}",
                )
            ).all()
        where = max(printing, key=lambda event: int(event.event_id)).detail if printing else None
        earlier = (where or {}).get("out_dir")
        if in_flight and earlier and earlier != str(Path(out_dir).resolve()):
            raise UsageError(
                f"{in_flight:,} letters of batch {self.batch_id} were being written to"
                f" {earlier}: finish the batch with --out {earlier}, so no letter is printed"
                " twice"
            )

    def _print_quota(self) -> Stop | None:
        limit = self.options.daily_limit
        if limit is None:
            return None
        with self.ctx.engine.connect() as conn:
            pending = self._count(conn, LetterStatus.PENDING)
            state = quota.quota_state(conn, self.channel.name, self.ctx.as_of, limit)
        if state.remaining is not None and pending > state.remaining:
            return Stop(
                StopCode.QUOTA_USED,
                f"batch {self.batch_id} has {pending:,} letters to print but only"
                f" {state.remaining:,} of today's {limit:,} are left for {self.channel.name}:"
                " a print batch is written whole, so nothing was written. Send it another day,"
                " or build smaller batches (`notify build --limit`)",
            )
        return None

    def _write_files(self, frames: Iterator[pl.DataFrame]) -> PrintBatch:
        try:
            return self.channel.write_frames(self.batch_id, frames)
        except PrintBatchConflict as exc:
            raise UsageError(
                f"{exc} (batch {self.batch_id}: an earlier run wrote part of its files and the"
                " letters now differ, e.g. addresses refreshed by a pull. The files have no"
                " manifest, so they were never complete: move the directory away, then run"
                " `notify send` again)"
            ) from None

    def _composed(self, letter_ids: list[int]) -> Iterator[pl.DataFrame]:
        """Letters an earlier run marked ``sending``, composed again page by page (the files
        are written as they come)."""
        for part in slices(letter_ids, self.options.print_chunk):
            self._heartbeat()
            with self.ctx.engine.connect() as conn:
                rows = read_for_composing(conn, part)
            composed, refused = compose_frame_rows(rows, self.config, self.ctx.as_of)
            if refused:
                raise UsageError(
                    f"{len(refused)} letters of batch {self.batch_id} marked for printing can no"
                    f" longer be composed ({refused[0].reason}): their parties changed during the"
                    " send. Run `notify send` again"
                )
            yield composed


def _complete_files(out_dir: Path, batch_id: int, sending: pl.DataFrame) -> PrintBatch | None:
    """The batch's files if an earlier run finished writing them (their manifest is there, every
    file matches its checksum, and they hold exactly these letters); else None."""
    directory = Path(out_dir) / f"batch-{batch_id}"
    manifest_path = directory / MANIFEST_NAME
    if not manifest_path.exists():
        return None
    data = manifest_path.read_bytes()
    manifest = json.loads(data)
    files = []
    for entry in manifest.get("files", []):
        if file_sha256(directory / entry["file"]) != entry["sha256"]:
            raise UsageError(
                f"{directory / entry['file']} does not match its manifest (SHA-256): the files of"
                f" batch {batch_id} were changed after they were written. Move the directory"
                " away and run `notify send` again"
            )
        files.append(
            PrintFile(
                name=entry["file"],
                template_id=entry["template_id"],
                kinds=tuple(entry["letters"]),
                row_count=int(entry["row_count"]),
                sha256=entry["sha256"],
                references=tuple(entry["references"]),
            )
        )
    references = {r for f in files for r in f.references}
    if references != set(sending["reference"].to_list()):
        raise UsageError(
            f"{directory} holds a complete set of files for other letters than batch"
            f" {batch_id}'s: nothing was overwritten. Move it away (or send to another --out)"
        )
    return PrintBatch(
        str(batch_id), directory, tuple(files), hashlib.sha256(data).hexdigest(), written=False
    )
