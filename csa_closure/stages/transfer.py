"""Transfer export: the CMS package for every debt ready to transfer.

A package is a folder per batch, ``<out>/<batch_id>/``, holding ``debts.parquet`` (one row per
debt: the contract's columns, including both parents' identity and address, which the CMS needs
to set the case up; ``amount_pence`` int64) and ``manifest.json`` (``batch_id``, ``created_at``
ISO 8601 UTC, ``row_count``, ``total_pence``, ``files``: name -> SHA-256). The folder is created
0700 and the files 0600: they hold personal data.

Crash safety, in this order:

1. one transaction records the batch (status ``exporting``) and its items, and moves the debts
   ``transfer_ready -> transfer_sent``: from then on no other export can take them;
2. the files are written into a private temporary folder and renamed into place;
3. the batch is marked ``exported`` with the manifest's SHA-256.

A run that dies between 1 and 3 leaves a batch ``exporting``; the next export finishes it
first, writing its files again from the recorded items. The files are a pure function of what
was recorded (items, the batch's ``created_at``, the cases and parties), so every rewrite is
byte-identical: ``rewrite_package`` rewrites any batch and proves it against the recorded
manifest checksum. A debt is never in two unacknowledged batches.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import BigInteger, case, cast, func, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.states import DebtState, TransferBatchStatus, TransferItemStatus
from csa_closure.errors import InputError, Unbalanced, UsageError
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.reconcile import reconcile_conn
from csa_closure.serialise import JsonFields
from csa_closure.stages.checks import BookCheck, book_check
from csa_closure.stages.intake import sha256_bytes, sha256_file
from csa_closure.store import events, transfers
from csa_closure.store.debts import move_debts
from csa_closure.store.dialect import read_frame
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import PERSONAL_DATA_COLUMNS, transfer_batches, transfer_items

TRANSFER_LEASE = "stage:transfer"
DEFAULT_BATCH_SIZE = 50_000
DEBTS_FILE = "debts.parquet"
MANIFEST_FILE = "manifest.json"

PACKAGE_SCHEMA: dict[str, pl.DataType] = {
    "case_ref": pl.String(),
    "source_system": pl.String(),
    "scheme": pl.String(),
    "creditor": pl.String(),
    "amount_pence": pl.Int64(),
    "transfer_reason": pl.String(),
    **{
        f"{who}_{name}": (pl.Date() if name == "birth_date" else pl.String())
        for who in ("pwc", "nrp")
        for name in PERSONAL_DATA_COLUMNS
    },
}


# --- results --------------------------------------------------------------------------------


@dataclass
class BatchPackage(JsonFields):
    batch_id: str
    path: str
    row_count: int
    total_pence: int
    manifest_sha256: str
    resumed: bool = False  # an unfinished batch from an earlier run, finished now


@dataclass
class ExportResult(JsonFields):
    """JSON keys are the field names (see runbooks/05)."""

    run_id: int | None
    out_dir: str
    batches: list[BatchPackage] = field(default_factory=list)
    debts_exported: int = 0
    total_pence: int = 0
    book: BookCheck | None = None


# --- the package files ------------------------------------------------------------------------

_PACKAGE_SQL = """
SELECT t.case_ref, c.source_system, c.scheme, t.creditor, t.amount_pence, t.transfer_reason,
       {pwc}, {nrp}
FROM transfer_items t
JOIN cases c ON c.case_ref = t.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref
WHERE t.batch_id = ?
ORDER BY t.case_ref, t.creditor
"""


def package_frame(conn: Connection, batch_id: str) -> pl.DataFrame:
    """The rows of ``debts.parquet`` for ``batch_id``, from what was recorded."""
    sql = _PACKAGE_SQL.format(
        pwc=", ".join(f"pwc.{n} AS pwc_{n}" for n in PERSONAL_DATA_COLUMNS),
        nrp=", ".join(f"nrp.{n} AS nrp_{n}" for n in PERSONAL_DATA_COLUMNS),
    )
    return read_frame(conn, (sql, [batch_id]), PACKAGE_SCHEMA)


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    # no statistics: they add nothing for the CMS and keep the bytes a function of the rows
    frame.write_parquet(buffer, compression="zstd", statistics=False)
    return buffer.getvalue()


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def manifest_bytes(
    batch_id: str, created_at: datetime, row_count: int, total_pence: int, files: dict[str, str]
) -> bytes:
    manifest = {
        "batch_id": batch_id,
        "created_at": _instant(created_at),
        "row_count": row_count,
        "total_pence": total_pence,
        "files": dict(sorted(files.items())),
    }
    return (json.dumps(manifest, indent=2) + "\n").encode("utf-8")


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _same_package(folder: Path, files: dict[str, bytes]) -> bool:
    try:
        present = {p.name for p in folder.iterdir()}
        return present == set(files) and all(
            (folder / name).read_bytes() == data for name, data in files.items()
        )
    except OSError:
        return False


def _place(out_dir: Path, batch_id: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` into ``out_dir/batch_id`` (0700, files 0600), all or nothing."""
    final = out_dir / batch_id
    if final.is_dir() and _same_package(final, files):
        return final  # an earlier attempt got this far
    temp = Path(tempfile.mkdtemp(prefix=f".{batch_id}.", dir=out_dir))  # 0700
    try:
        for name, data in files.items():
            _write_private(temp / name, data)
        _fsync_dir(temp)
        if final.exists():
            # a partial or different folder from an interrupted attempt: set it aside, then
            # swap, so the name never points at half a package
            aside = Path(tempfile.mkdtemp(prefix=f".{batch_id}.old.", dir=out_dir))
            os.rename(final, aside / batch_id)
            os.rename(temp, final)
            shutil.rmtree(aside)
        else:
            os.rename(temp, final)
        _fsync_dir(out_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _render(conn: Connection, batch: Any) -> tuple[dict[str, bytes], bytes, int, int]:
    frame = package_frame(conn, batch.batch_id)
    rows, total = frame.height, int(frame.get_column("amount_pence").sum() or 0)
    if rows != batch.row_count or total != batch.total_pence:
        raise UsageError(
            f"batch {batch.batch_id} records {batch.row_count} debts, {batch.total_pence} pence "
            f"but its items give {rows}, {total}: the store is inconsistent; nothing was written"
        )
    debts_file = _parquet_bytes(frame)
    manifest = manifest_bytes(
        batch.batch_id, batch.created_at, rows, total, {DEBTS_FILE: sha256_bytes(debts_file)}
    )
    return {DEBTS_FILE: debts_file, MANIFEST_FILE: manifest}, manifest, rows, total


def _prepare_out_dir(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a directory")
    return out_dir


def _batch(conn: Connection, batch_id: str) -> Any:
    row = conn.execute(
        select(transfer_batches).where(transfer_batches.c.batch_id == batch_id)
    ).first()
    if row is None:
        raise UsageError(f"there is no transfer batch {batch_id}")
    return row


# --- export ------------------------------------------------------------------------------------


def _ready(conn: Connection, batch_size: int) -> pl.DataFrame:
    """Every ``transfer_ready`` debt in case order, with the batch (0, 1, ...) it goes in:
    about ``batch_size`` debts a batch, never splitting a case's two debts apart."""
    sql = (
        "SELECT debt_id, case_ref, creditor, opening_pence, reason FROM debts WHERE state = ? "
        "ORDER BY case_ref, creditor"
    )
    ready = read_frame(
        conn,
        (sql, [DebtState.TRANSFER_READY.value]),
        {
            "debt_id": pl.Int64(),
            "case_ref": pl.String(),
            "creditor": pl.String(),
            "amount_pence": pl.Int64(),
            "transfer_reason": pl.String(),
        },
    )
    case_start = pl.col("row").min().over("case_ref")
    return (
        ready.with_row_index("row")
        .with_columns((case_start // batch_size).alias("batch_no"))
        .drop("row")
    )


def batch_id_for(run: Run, sequence: int) -> str:
    """``TB20190331-000042-001``: the as-of date, the run and the batch within it."""
    return f"TB{run.ctx.as_of:%Y%m%d}-{run.run_id:06d}-{sequence:03d}"


def _record_batch(conn: Connection, run: Run, batch_id: str, items: pl.DataFrame) -> None:
    total = transfers.create_batch(
        conn,
        batch_id=batch_id,
        run_id=run.run_id,
        as_of=run.ctx.as_of,
        created_at=run.ctx.clock(),
        items=items,
    )
    move_debts(
        conn,
        run,
        items.with_columns(
            pl.lit(DebtState.TRANSFER_READY.value).alias("from_state"),
            pl.lit(DebtState.TRANSFER_SENT.value).alias("to_state"),
            pl.struct(pl.lit(batch_id).alias("batch_id"), "amount_pence").alias("detail"),
        ),
        event_type=EventType.DEBT_TRANSFER_SENT,
    )
    events.record(
        conn,
        run,
        EventType.TRANSFER_BATCH_CREATED,
        entity=f"batch:{batch_id}",
        detail={"row_count": items.height, "total_pence": total},
    )


def _finish_batch(run: Run, batch_id: str, out_dir: Path, resumed: bool) -> BatchPackage:
    with run.ctx.engine.connect() as conn:
        batch = _batch(conn, batch_id)
        files, manifest, rows, total = _render(conn, batch)
    folder = _place(out_dir, batch_id, files)
    digest = sha256_bytes(manifest)
    with run.chunk() as conn:
        transfers.mark_batch_exported(conn, batch_id, digest)
        events.record(
            conn,
            run,
            EventType.TRANSFER_BATCH_EXPORTED,
            entity=f"batch:{batch_id}",
            detail={"row_count": rows, "total_pence": total, "manifest_sha256": digest},
        )
    return BatchPackage(batch_id, str(folder), rows, total, digest, resumed=resumed)


def export_transfers(
    ctx: Context,
    out_dir: Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = NO_PROGRESS,
) -> ExportResult:
    """Finish any unfinished batch, then package every ``transfer_ready`` debt."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    out_dir = _prepare_out_dir(out_dir)
    result = ExportResult(run_id=None, out_dir=str(out_dir))
    parameters = {"out_dir": str(out_dir), "batch_size": batch_size}
    with stage_run(ctx, "transfer-export", parameters, claims=[TRANSFER_LEASE]) as run:
        result.run_id = run.run_id
        with ctx.engine.connect() as conn:
            unfinished = (
                conn.execute(
                    select(transfer_batches.c.batch_id)
                    .where(transfer_batches.c.status == TransferBatchStatus.EXPORTING.value)
                    .order_by(transfer_batches.c.batch_id)
                )
                .scalars()
                .all()
            )
            ready = _ready(conn, batch_size)
        progress.start("transfer: packaging debts", ready.height)
        for batch_id in unfinished:
            result.batches.append(_finish_batch(run, batch_id, out_dir, resumed=True))
        for sequence, (_, items) in enumerate(
            ready.group_by("batch_no", maintain_order=True), start=1
        ):
            batch_id = batch_id_for(run, sequence)
            with run.chunk() as conn:
                _record_batch(conn, run, batch_id, items)
            result.batches.append(_finish_batch(run, batch_id, out_dir, resumed=False))
            progress.advance("transfer: packaging debts", items.height)
        progress.finish("transfer: packaging debts")
        result.debts_exported = sum(b.row_count for b in result.batches)
        result.total_pence = sum(b.total_pence for b in result.batches)
        run.counts.update(
            {
                "batches": len(result.batches),
                "debts_exported": result.debts_exported,
                "total_pence": result.total_pence,
            }
        )
        with ctx.engine.connect() as conn:
            result.book = book_check(reconcile_conn(conn))
        if not result.book.balanced:
            raise Unbalanced(
                "after export the books do not balance: " + "; ".join(result.book.problems), result
            )
    return result


def rewrite_package(ctx: Context, batch_id: str, out_dir: Path) -> BatchPackage:
    """Write batch ``batch_id``'s package again (a lost or damaged copy), proving it is
    byte-identical to what was exported by the recorded manifest checksum."""
    out_dir = _prepare_out_dir(out_dir)
    with ctx.engine.connect() as conn:
        batch = _batch(conn, batch_id)
        if batch.status == TransferBatchStatus.EXPORTING:
            raise UsageError(
                f"batch {batch_id} was never finished: run `csa-closure transfer export` to "
                "finish it"
            )
        files, manifest, rows, total = _render(conn, batch)
    digest = sha256_bytes(manifest)
    if digest != batch.manifest_sha256:
        raise UsageError(
            f"the package for {batch_id} no longer comes out as it was exported (manifest "
            f"{digest[:12]}… != recorded {str(batch.manifest_sha256)[:12]}…): the cases or "
            "parties it was built from have changed. Nothing was written"
        )
    folder = _place(out_dir, batch_id, files)
    return BatchPackage(batch_id, str(folder), rows, total, digest)


# --- checking a package -----------------------------------------------------------------------


@dataclass
class PackageCheck:
    """What the CMS will check, checked here first. JSON keys are the field names."""

    path: str
    batch_id: str | None
    ok: bool
    problems: list[str]
    row_count: int | None = None
    total_pence: int | None = None


def verify_package(folder: Path) -> PackageCheck:
    """Check a package folder: manifest present and well formed, each file's SHA-256,
    row count and total against ``debts.parquet``, no extra files, owner-only permissions."""
    folder = Path(folder)
    problems: list[str] = []
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder}: no readable {MANIFEST_FILE} ({exc})") from None
    for key in ("batch_id", "created_at", "row_count", "total_pence", "files"):
        if key not in manifest:
            problems.append(f"manifest has no {key}")
    files = manifest.get("files") or {}
    present = {p.name for p in folder.iterdir()} - {MANIFEST_FILE}
    if present != set(files):
        problems.append(f"files in the folder {sorted(present)} != manifest {sorted(files)}")
    for name, digest in files.items():
        path = folder / name
        if path.is_file() and sha256_file(path) != digest:
            problems.append(f"{name}: SHA-256 does not match the manifest")
    rows = total = None
    frame = None
    if (folder / DEBTS_FILE).is_file():
        try:
            frame = pl.read_parquet(folder / DEBTS_FILE)
        except Exception:  # a damaged file: polars raises its own compute errors
            problems.append(f"{DEBTS_FILE} cannot be read as Parquet")
    if frame is not None:
        rows = frame.height
        if frame.schema.get("amount_pence") != pl.Int64:
            problems.append("amount_pence is not int64")
        total = int(frame.get_column("amount_pence").sum() or 0)
        if rows != manifest.get("row_count"):
            problems.append(f"row_count {manifest.get('row_count')} != {rows} rows")
        if total != manifest.get("total_pence"):
            problems.append(f"total_pence {manifest.get('total_pence')} != {total}")
        missing = [c for c in PACKAGE_SCHEMA if c not in frame.columns]
        if missing:
            problems.append("debts.parquet lacks " + ", ".join(missing))
    for path in [folder, *folder.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            problems.append(f"{path.name} is readable by others (mode {mode:o})")
    return PackageCheck(
        path=str(folder),
        batch_id=manifest.get("batch_id"),
        ok=not problems,
        problems=problems,
        row_count=rows,
        total_pence=total,
    )


# --- listing ------------------------------------------------------------------------------------


@dataclass
class BatchSummary:
    batch_id: str
    status: str
    as_of: Any
    created_at: datetime
    row_count: int
    total_pence: int
    accepted: int
    accepted_pence: int
    rejected: int
    rejected_pence: int
    awaiting: int
    awaiting_pence: int
    manifest_sha256: str | None


def list_batches(ctx: Context, *, status: str | None = None) -> list[BatchSummary]:
    """Every batch with its acknowledgement so far (items accepted, rejected, awaiting)."""

    def pence(item_status: str) -> Any:
        amount = case((transfer_items.c.status == item_status, transfer_items.c.amount_pence))
        return cast(func.coalesce(func.sum(amount), 0), BigInteger)

    def n(item_status: str) -> Any:
        flag = case((transfer_items.c.status == item_status, 1), else_=0)
        return cast(func.coalesce(func.sum(flag), 0), BigInteger)

    statement = (
        select(
            transfer_batches.c.batch_id,
            transfer_batches.c.status,
            transfer_batches.c.as_of,
            transfer_batches.c.created_at,
            transfer_batches.c.row_count,
            transfer_batches.c.total_pence,
            n(TransferItemStatus.ACCEPTED).label("accepted"),
            pence(TransferItemStatus.ACCEPTED).label("accepted_pence"),
            n(TransferItemStatus.REJECTED).label("rejected"),
            pence(TransferItemStatus.REJECTED).label("rejected_pence"),
            n(TransferItemStatus.EXPORTED).label("awaiting"),
            pence(TransferItemStatus.EXPORTED).label("awaiting_pence"),
            transfer_batches.c.manifest_sha256,
        )
        .select_from(transfer_batches.outerjoin(transfer_items))
        .group_by(transfer_batches.c.batch_id)
        .order_by(transfer_batches.c.batch_id)
    )
    if status:
        statement = statement.where(transfer_batches.c.status == status)
    with ctx.engine.connect() as conn:
        return [BatchSummary(**row._asdict()) for row in conn.execute(statement)]
