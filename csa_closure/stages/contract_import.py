"""The one way a contract file from another party is imported.

The parents' response files and the CMS's acknowledgements go through the same steps; an
import supplies only what is its own (:class:`ContractImport`): how its rows are judged and
what an accepted row does.

1. **read** the file whole (``intake.read_contract_csv``): a file that cannot be read is
   refused before anything is written;
2. **prior import**: the same bytes imported before change nothing; the earlier counts are
   returned and the rejects file is written again from the store, in case it was lost;
3. **judge** every row, inside the run's one transaction: accepted, duplicate or rejected
   (with a reason code), so the three counts add up to the rows;
4. **record** the import (``response_imports``) and its rejected rows
   (``import_rejections``);
5. **apply** the accepted rows;
6. one event of the import's own type with the counts, and the book check;
7. after the commit, the **rejects** file (if this write fails, importing the file again
   rewrites it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

import polars as pl
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.errors import UsageError
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages import intake
from csa_closure.stages.checks import BookCheck, check_book
from csa_closure.store import events
from csa_closure.store.dialect import insert_frame
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import import_rejections, response_imports

ROW_STATUSES = ("accepted", "duplicate", "rejected")

T = TypeVar("T")


@dataclass(frozen=True)
class Applied(Generic[T]):
    """What applying a file's accepted rows did: ``outcome`` for the import's own result,
    ``event`` added to the import event's detail, ``counts`` to the run's counts."""

    outcome: T
    event: dict[str, Any]
    counts: dict[str, int]


@dataclass(frozen=True)
class ContractImport(Generic[T]):
    """One kind of contract file.

    ``judge(conn, ctx, rows)`` returns the rows with a ``verdict`` column (accepted,
    duplicate or rejected) and, on rejected rows, ``reason_code`` and ``detail``.
    ``rejections(judged)`` gives the rejected rows as ``import_rejections`` holds them
    (``intake.REJECTS_COLUMNS``; identifiers only where they look like identifiers).
    ``apply(conn, run, judged, import_id)`` acts on the accepted rows.
    """

    stage: str  # the run's stage name
    kind: str  # response_imports.kind
    lease: str
    columns: tuple[str, ...]
    event_type: EventType  # the import's own event, one per file
    progress_label: str
    judge: Callable[[Connection, Context, pl.DataFrame], pl.DataFrame]
    rejections: Callable[[pl.DataFrame], pl.DataFrame]
    apply: Callable[[Connection, Run, pl.DataFrame, int], Applied[T]]
    verdict: str = "status"
    rejects_csv: Callable[[pl.DataFrame], bytes] = intake.rejects_csv


@dataclass
class ImportSummary:
    """The fields every import's result starts with (its JSON keys are the field names)."""

    run_id: int | None
    import_id: int | None
    file_name: str
    file_sha256: str
    already_imported: bool
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    rejected_by_reason: dict[str, int]

    def summary_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(ImportSummary)}


@dataclass(frozen=True)
class ImportOutcome(Generic[T]):
    """One file's import, new or found done before (``applied`` is None then)."""

    summary: ImportSummary
    contract: intake.ContractFile
    rejects_file: str | None
    book: BookCheck | None = None
    applied: Applied[T] | None = None

    def result_fields(self) -> dict[str, Any]:
        """Keyword arguments for an import's result (an ``ImportSummary``)."""
        return {**self.summary.summary_json(), "rejects_file": self.rejects_file, "book": self.book}


def _summary(
    contract: intake.ContractFile,
    run_id: int | None,
    import_id: int,
    *,
    already_imported: bool,
    rows: int,
    counts: dict[str, int],
    rejected_by_reason: dict[str, int],
) -> ImportSummary:
    return ImportSummary(
        run_id=run_id,
        import_id=import_id,
        file_name=contract.name,
        file_sha256=contract.sha256,
        already_imported=already_imported,
        rows=rows,
        accepted=counts["accepted"],
        duplicates=counts["duplicate"],
        rejected=counts["rejected"],
        rejected_by_reason=rejected_by_reason,
    )


def import_contract_file(
    ctx: Context,
    spec: ContractImport[T],
    path: Path,
    *,
    rejects_path: Path | None = None,
    progress: Progress = NO_PROGRESS,
) -> ImportOutcome[T]:
    """Import one file of ``spec``'s kind (the steps in the module doc)."""
    path = Path(path)
    rejects_path = rejects_path or intake.default_rejects_path(path)
    contract = intake.read_contract_csv(path, spec.columns)
    with ctx.engine.connect() as conn:
        prior = intake.find_import(conn, spec.kind, contract.sha256)
        stored = intake.stored_rejections(conn, prior.import_id) if prior else None
    if prior is not None:
        assert stored is not None
        written = None
        if stored.height:
            intake.write_owner_only(rejects_path, spec.rejects_csv(stored))
            written = str(rejects_path)
        counted = {
            "accepted": prior.accepted,
            "duplicate": prior.duplicates,
            "rejected": prior.rejected,
        }
        summary = _summary(
            contract,
            prior.run_id,
            prior.import_id,
            already_imported=True,
            rows=prior.row_count,
            counts=counted,
            rejected_by_reason=intake.reason_counts(stored),
        )
        return ImportOutcome(summary, contract, rejects_file=written)
    parameters = {"file_name": contract.name, "file_sha256": contract.sha256}
    with stage_run(ctx, spec.stage, parameters, claims=[spec.lease]) as run:
        progress.start(spec.progress_label, contract.rows.height)
        with run.chunk() as conn:
            # a second operator may have imported the same file since we looked
            if intake.find_import(conn, spec.kind, contract.sha256) is not None:
                raise UsageError(
                    f"{contract.name} was imported by another run just now; run again to see "
                    "its counts"
                )
            judged = spec.judge(conn, ctx, contract.rows)
            progress.advance(spec.progress_label, contract.rows.height)
            counts = {s: judged.filter(pl.col(spec.verdict) == s).height for s in ROW_STATUSES}
            import_id = _record_import(conn, run, spec.kind, contract, counts)
            rejected = spec.rejections(judged.filter(pl.col(spec.verdict) == "rejected"))
            insert_frame(
                conn,
                import_rejections,
                rejected.with_columns(pl.lit(import_id, dtype=pl.Int64).alias("import_id")),
            )
            applied = spec.apply(conn, run, judged, import_id)
            events.record(
                conn,
                run,
                spec.event_type,
                entity=f"import:{import_id}",
                detail={"file_sha256": contract.sha256, **counts, **applied.event},
            )
            book = check_book(conn)
        progress.finish(spec.progress_label)
        run.counts.update({"rows": contract.rows.height, **counts, **applied.counts})
        written = None
        if rejected.height:
            # after the commit: if this write fails, importing the file again rewrites it
            intake.write_owner_only(rejects_path, spec.rejects_csv(rejected))
            written = str(rejects_path)
        summary = _summary(
            contract,
            run.run_id,
            import_id,
            already_imported=False,
            rows=contract.rows.height,
            counts=counts,
            rejected_by_reason=intake.reason_counts(rejected),
        )
        return ImportOutcome(summary, contract, written, book=book, applied=applied)


def _record_import(
    conn: Connection, run: Run, kind: str, contract: intake.ContractFile, counts: dict[str, int]
) -> int:
    return int(
        conn.execute(
            insert(response_imports)
            .values(
                kind=kind,
                file_name=contract.name[:255],
                file_sha256=contract.sha256,
                run_id=run.run_id,
                row_count=contract.rows.height,
                accepted=counts["accepted"],
                duplicates=counts["duplicate"],
                rejected=counts["rejected"],
                imported_at=run.ctx.clock(),
            )
            .returning(response_imports.c.import_id)
        ).scalar_one()
    )
