"""The evidence archive: the store written out as Parquet, with a manifest, and its verification.

``archive`` writes one Parquet file per kind of evidence (see ``FILES``), read from one
consistent snapshot of the store and streamed in batches, so memory stays bounded at millions
of rows. ``manifest.json`` records, per file, its rows, the sum of each ``*_pence`` column and
its SHA-256, plus the reconciliation at archive time, when it was made (UTC), the as-of date,
and whether personal data is included. The archive is recorded in the ``archives`` table with
the manifest's SHA-256 and the store's counts, so the decommission gate can tell whether the
store has changed since.

Personal data: the ``parties`` table (names, dates of birth, NINOs, addresses) is written only
when asked (``include_personal_data``); every other file refers to parents by ``party_ref``.
The directory is created 0700 and every file 0600, from creation.

The directory: a new or empty one is used; one that holds an interrupted archive (our marker
file, no manifest) is cleared of that archive's files and written again from the start; any
other non-empty directory, a finished archive included, is refused (verify a finished archive
with ``verify``; write a new one elsewhere).

``verify`` re-reads every file: SHA-256, row count and pence totals against the manifest, the
manifest against the one recorded in the store, and the manifest's counts and totals against
the store as it stands now (a store that changed since makes the archive stale). It records
``verified_at`` and ``verified_ok`` on the archive's row.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Integer,
    String,
    Table,
    Text,
    cast,
    func,
    select,
    type_coerce,
)
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import ColumnElement
from sqlalchemy.types import TypeEngine

from csa_closure.context import Context
from csa_closure.domain.events import DECISION_DETAIL_KEYS
from csa_closure.errors import UsageError
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.reconcile import reconcile_conn
from csa_closure.serialise import JsonFields
from csa_closure.store.dialect import (
    consistent_read,
    driver_batches,
    fetched_type,
    from_fetched,
)
from csa_closure.store.events import is_decision_event
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import (
    UtcDateTime,
    archives,
    cases,
    debts,
    events,
    import_rejections,
    ledger_entries,
    letter_batches,
    letter_status_history,
    letters,
    parties,
    payment_days,
    quarantine,
    response_imports,
    responses,
    rule_sets,
    stage_runs,
    transfer_batches,
    transfer_items,
)

FORMAT = "csa-closure-archive/1"
MANIFEST = "manifest.json"
MARKER = ".csa-closure-archive-in-progress"
PARTIAL_SUFFIX = ".partial"
ARCHIVE_LEASE = "stage:archive"
DEFAULT_BATCH_ROWS = 50_000
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class Marks(JsonFields):
    """Where the store stood when the archive was taken."""

    run_id: int  # the archive's own run: runs.parquet holds the runs before it
    last_event_id: int

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Marks:
        value = value or {}
        return cls(int(value.get("run_id", 0)), int(value.get("last_event_id", 0)))


@dataclass(frozen=True)
class ArchiveFile:
    """One evidence file: which table, which rows, in which order."""

    name: str
    table: Table
    order_by: tuple[str, ...]
    personal: bool = False
    where: Callable[[Marks], ColumnElement[bool]] | None = None
    derive: Callable[[pl.DataFrame], pl.DataFrame] | None = None

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"

    @property
    def pence_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.table.columns if c.name.endswith("_pence"))

    def condition(self, marks: Marks) -> ColumnElement[bool] | None:
        return self.where(marks) if self.where else None


def _decision_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Decision events with the decision's keys taken out of ``detail``."""
    return frame.with_columns(
        pl.col("detail").str.json_path_match(f"$.{key}").alias(key) for key in DECISION_DETAIL_KEYS
    )


FILES: tuple[ArchiveFile, ...] = (
    ArchiveFile("cases", cases, ("case_ref",)),
    ArchiveFile("payment_days", payment_days, ("case_ref", "paid_on")),
    ArchiveFile("debts", debts, ("debt_id",)),
    ArchiveFile(
        "decisions",
        events,
        ("event_id",),
        where=lambda _marks: is_decision_event(),
        derive=_decision_columns,
    ),
    ArchiveFile("events", events, ("event_id",)),
    ArchiveFile("ledger", ledger_entries, ("entry_id",)),
    ArchiveFile("letter_batches", letter_batches, ("batch_id",)),
    ArchiveFile("letters", letters, ("letter_id",)),
    ArchiveFile("letter_status_history", letter_status_history, ("history_id",)),
    ArchiveFile("response_imports", response_imports, ("import_id",)),
    ArchiveFile("responses", responses, ("response_id",)),
    ArchiveFile("import_rejections", import_rejections, ("rejection_id",)),
    ArchiveFile("transfer_batches", transfer_batches, ("batch_id",)),
    ArchiveFile("transfer_items", transfer_items, ("batch_id", "debt_id")),
    ArchiveFile("runs", stage_runs, ("run_id",), where=lambda m: stage_runs.c.run_id < m.run_id),
    ArchiveFile("quarantine", quarantine, ("quarantine_id",)),
    ArchiveFile("rule_sets", rule_sets, ("ruleset_hash",)),
    ArchiveFile("parties", parties, ("party_ref",), personal=True),
)
FILES_BY_NAME = {f.file_name: f for f in FILES}


@dataclass(frozen=True)
class FileSummary:
    rows: int
    totals: dict[str, int]
    sha256: str = ""
    bytes: int = 0


@dataclass
class ArchiveResult:
    archive_id: int
    run_id: int
    path: Path
    created_at: datetime
    as_of: str
    includes_personal_data: bool
    manifest_sha256: str
    files: dict[str, FileSummary]
    reconciliation_balanced: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "archive_id": self.archive_id,
            "run_id": self.run_id,
            "path": str(self.path),
            "created_at": self.created_at,
            "as_of": self.as_of,
            "includes_personal_data": self.includes_personal_data,
            "manifest_sha256": self.manifest_sha256,
            "reconciliation_balanced": self.reconciliation_balanced,
            "files": {
                name: {"rows": f.rows, "totals": f.totals, "sha256": f.sha256, "bytes": f.bytes}
                for name, f in self.files.items()
            },
        }


@dataclass(frozen=True)
class Problem:
    file: str
    problem: str


@dataclass
class FileCheck:
    name: str
    manifest_rows: int | None = None
    file_rows: int | None = None
    store_rows: int | None = None
    checksum_ok: bool = False
    totals_ok: bool = False


@dataclass
class VerifyResult:
    path: Path
    archive_id: int | None
    verified_at: datetime
    files: list[FileCheck] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "archive_id": self.archive_id,
            "verified_at": self.verified_at,
            "ok": self.ok,
            "files": self.files,
            "problems": self.problems,
        }


# --- reading the store ------------------------------------------------------------------


def _polars_type(sql_type: TypeEngine[Any]) -> pl.DataType:
    if isinstance(sql_type, UtcDateTime):
        return pl.Datetime("us", "UTC")
    if isinstance(sql_type, Date):
        return pl.Date()
    if isinstance(sql_type, Boolean):
        return pl.Boolean()
    if isinstance(sql_type, Integer):
        return pl.Int64()
    return pl.String()  # String, Text, and JSON (read as its text)


def _schema(table: Table) -> dict[str, pl.DataType]:
    return {c.name: _polars_type(c.type) for c in table.columns}


def _raw_column(column: Any) -> Any:
    """The column as the driver hands it over: no per-row conversion by SQLAlchemy."""
    if isinstance(column.type, JSON):
        return cast(column, Text).label(column.name)
    if isinstance(column.type, Date | UtcDateTime | Boolean):
        return type_coerce(column, String).label(column.name)
    return column


def _select_sql(conn: Connection, spec: ArchiveFile, marks: Marks) -> str:
    """The file's SELECT as driver SQL, its few values written in (an event type, a run id):
    nothing in it for ``driver_sql`` to mistake for a placeholder."""
    statement = select(*(_raw_column(c) for c in spec.table.columns)).order_by(
        *(spec.table.c[k] for k in spec.order_by)
    )
    condition = spec.condition(marks)
    if condition is not None:
        statement = statement.where(condition)
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if "?" in sql or "%" in sql:
        raise ValueError(f"{spec.file_name}: its SELECT holds a character driver SQL reserves")
    return sql


def _iter_frames(
    conn: Connection, spec: ArchiveFile, marks: Marks, batch_rows: int
) -> Iterator[pl.DataFrame]:
    """The file's rows in key order, a frame of at most ``batch_rows`` rows at a time.

    Straight from the driver's cursor (streamed on PostgreSQL) into columns: no SQLAlchemy
    ``Row`` per row, and no per-value conversion in Python."""
    schema = _schema(spec.table)
    fetched = {name: fetched_type(dtype, conn) for name, dtype in schema.items()}
    typed = [from_fetched(n, d, conn).alias(n) for n, d in schema.items()]
    sql = _select_sql(conn, spec, marks)
    for batch in driver_batches(conn, sql, batch_size=batch_rows, server_side=True):
        frame = pl.DataFrame(batch, schema=fetched, orient="row").select(typed)
        yield spec.derive(frame) if spec.derive else frame


def _empty_frame(spec: ArchiveFile) -> pl.DataFrame:
    frame = pl.DataFrame(schema=_schema(spec.table))
    return spec.derive(frame) if spec.derive else frame


def store_summary(conn: Connection, spec: ArchiveFile, marks: Marks) -> FileSummary:
    """Rows and pence totals of ``spec`` in the store, computed in SQL."""
    statement = select(
        func.count(),
        *(func.coalesce(func.sum(spec.table.c[c]), 0) for c in spec.pence_columns),
    ).select_from(spec.table)
    condition = spec.condition(marks)
    if condition is not None:
        statement = statement.where(condition)
    row = conn.execute(statement).one()
    return FileSummary(
        rows=int(row[0]),
        totals={c: int(v) for c, v in zip(spec.pence_columns, row[1:], strict=True)},
    )


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection that sees one consistent state of the whole store.

    PostgreSQL: a REPEATABLE READ transaction. SQLite: one read transaction (WAL keeps its
    snapshot while writers carry on).
    """
    with engine.connect() as conn, consistent_read(conn) as reader:
        yield reader


def _marks(conn: Connection, run_id: int) -> Marks:
    last = conn.execute(select(func.coalesce(func.max(events.c.event_id), 0))).scalar_one()
    return Marks(run_id=run_id, last_event_id=int(last))


# --- files ------------------------------------------------------------------------------


def _owner_only_file(path: Path) -> BinaryIO:
    """A new file readable and writable by its owner only, from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _HashingWriter:
    """A write-only file that hashes every byte on its way to ``file``: the archive's
    SHA-256 without reading the finished file back."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.size += view.nbytes
        self.file.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:  # the caller closes ``file``
        self.closed = True

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


def _write_parquet(
    conn: Connection,
    spec: ArchiveFile,
    marks: Marks,
    path: Path,
    batch_rows: int,
    progress: Progress,
) -> FileSummary:
    schema = _empty_frame(spec).to_arrow().schema
    expected = store_summary(conn, spec, marks)
    rows = 0
    totals = dict.fromkeys(spec.pence_columns, 0)
    task = f"archive: {spec.name}"
    progress.start(task, expected.rows)
    with _owner_only_file(path) as f:
        hashing = _HashingWriter(f)
        with pq.ParquetWriter(hashing, schema, compression="zstd") as writer:
            for frame in _iter_frames(conn, spec, marks, batch_rows):
                writer.write_table(frame.to_arrow().cast(schema))
                rows += frame.height
                for c in spec.pence_columns:
                    totals[c] += int(frame[c].sum() or 0)
                progress.advance(task, frame.height)
    progress.finish(task)
    if (rows, totals) != (expected.rows, expected.totals):
        # the snapshot should make this impossible; an archive that disagrees with itself
        # must not be recorded
        raise RuntimeError(
            f"{spec.file_name}: wrote {rows} rows {totals}, the store counted "
            f"{expected.rows} rows {expected.totals} in the same snapshot"
        )
    if hashing.size != path.stat().st_size:
        raise RuntimeError(f"{spec.file_name}: the bytes hashed are not the bytes on disk")
    return FileSummary(
        rows=rows, totals=totals, sha256=hashing.digest.hexdigest(), bytes=hashing.size
    )


def _known_names() -> set[str]:
    names = {MANIFEST, MARKER, MANIFEST + PARTIAL_SUFFIX}
    names.update(FILES_BY_NAME)
    return names


def _leftovers(out: Path) -> set[str]:
    """What an interrupted archive left in ``out`` (to write again), or a refusal."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory; choose a new directory")
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if MANIFEST in entries:
        raise UsageError(
            f"{out} already holds a finished archive; check it with "
            f"`csa-closure archive verify {out}`, or write a new one to an empty directory"
        )
    if entries and (MARKER not in entries or not entries <= _known_names()):
        raise UsageError(
            f"{out} is not empty and holds no interrupted archive; "
            "write the archive to a new or empty directory"
        )
    return entries


def _prepare_directory(out: Path) -> None:
    """Make ``out`` an empty owner-only directory, clearing an interrupted archive of ours.
    Called holding the archive lease, so no other archive run is writing there."""
    for name in _leftovers(out):
        (out / name).unlink()
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    out.chmod(0o700)


def _write_json(path: Path, value: Any) -> bytes:
    data = (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()
    with _owner_only_file(path) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return data


def archive_files(include_personal_data: bool) -> tuple[ArchiveFile, ...]:
    return tuple(f for f in FILES if include_personal_data or not f.personal)


def archive(
    ctx: Context,
    out: Path | str,
    *,
    include_personal_data: bool = False,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress = NO_PROGRESS,
) -> ArchiveResult:
    """Write the evidence archive to ``out`` and record it in the store."""
    if batch_rows < 1:
        raise UsageError("--batch-rows must be at least 1")
    out = Path(out).expanduser().resolve()
    _leftovers(out)  # refuse before recording a run
    parameters = {"out": str(out), "include_personal_data": include_personal_data}
    with stage_run(ctx, "archive", parameters, claims=[ARCHIVE_LEASE]) as run:
        _prepare_directory(out)
        created_at = ctx.clock()
        _write_json(out / MARKER, {"run_id": run.run_id, "started_at": created_at.isoformat()})
        files: dict[str, FileSummary] = {}
        with _snapshot(ctx.engine) as conn:
            marks = _marks(conn, run.run_id)
            for spec in archive_files(include_personal_data):
                path = out / spec.file_name
                files[spec.file_name] = _write_parquet(
                    conn, spec, marks, path, batch_rows, progress
                )
            reconciliation = reconcile_conn(conn).to_json()
        manifest = {
            "format": FORMAT,
            "created_at": created_at.isoformat(),
            "as_of": ctx.as_of.isoformat(),
            "actor": ctx.actor,
            "run_id": run.run_id,
            "includes_personal_data": include_personal_data,
            "store": marks.to_json(),
            "files": {
                name: {
                    "table": FILES_BY_NAME[name].table.name,
                    "rows": f.rows,
                    "totals": f.totals,
                    "sha256": f.sha256,
                    "bytes": f.bytes,
                }
                for name, f in files.items()
            },
            "reconciliation": reconciliation,
        }
        partial = out / (MANIFEST + PARTIAL_SUFFIX)
        manifest_sha = hashlib.sha256(_write_json(partial, manifest)).hexdigest()
        with run.chunk() as conn:
            archive_id = conn.execute(
                archives.insert()
                .values(
                    path=str(out),
                    run_id=run.run_id,
                    created_at=created_at,
                    manifest_sha256=manifest_sha,
                    includes_personal_data=include_personal_data,
                    counts=_manifest_counts(manifest),
                )
                .returning(archives.c.archive_id)
            ).scalar_one()
        partial.rename(out / MANIFEST)
        (out / MARKER).unlink()
        run.counts.update({name.removesuffix(".parquet"): f.rows for name, f in files.items()})
    return ArchiveResult(
        archive_id=int(archive_id),
        run_id=run.run_id,
        path=out,
        created_at=created_at,
        as_of=ctx.as_of.isoformat(),
        includes_personal_data=include_personal_data,
        manifest_sha256=manifest_sha,
        files=files,
        reconciliation_balanced=bool(reconciliation["balanced"]),
    )


# --- comparing with the store ----------------------------------------------------------


def _manifest_counts(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest's figures the store can be compared with, as ``archives.counts`` keeps
    them: per file its rows and totals, the store marks and the reconciliation."""
    return {
        "files": {
            name: {"rows": f.get("rows"), "totals": f.get("totals") or {}}
            for name, f in (manifest.get("files") or {}).items()
        },
        "store": manifest.get("store") or {},
        "reconciliation": manifest.get("reconciliation"),
    }


@dataclass
class StoreComparison:
    problems: list[Problem]
    rows: dict[str, int]  # each file's rows in the store now


def compare_with_store(conn: Connection, recorded: dict[str, Any]) -> StoreComparison:
    """Where the store no longer matches the counts recorded at archive time.

    ``recorded`` is ``archives.counts`` (or the same figures from a manifest): per file its
    rows and totals, the store marks and the reconciliation. Events are append-only, so the
    same number of events means no event was recorded since.
    """
    problems: list[Problem] = []
    rows: dict[str, int] = {}
    marks = Marks.from_json(recorded.get("store"))
    for name, expected in sorted((recorded.get("files") or {}).items()):
        spec = FILES_BY_NAME.get(name)
        if spec is None:
            problems.append(Problem(name, "not a file this toolkit archives"))
            continue
        now = store_summary(conn, spec, marks)
        rows[name] = now.rows
        if now.rows != expected.get("rows"):
            problems.append(
                Problem(
                    name,
                    f"the store now holds {now.rows:,} rows, the archive {expected.get('rows')}: "
                    "the store changed after the archive was written",
                )
            )
        for column, value in sorted((expected.get("totals") or {}).items()):
            if now.totals.get(column) != value:
                problems.append(
                    Problem(
                        name,
                        f"{column} in the store now totals {now.totals.get(column)}, "
                        f"the archive {value}: the store changed after the archive was written",
                    )
                )
    expected_rec = recorded.get("reconciliation")
    if expected_rec is not None and reconcile_conn(conn).to_json() != expected_rec:
        problems.append(
            Problem(
                "reconciliation",
                "the store's reconciliation differs from the one recorded at archive time "
                "(debts moved since)",
            )
        )
    return StoreComparison(problems=problems, rows=rows)


# --- verify -----------------------------------------------------------------------------


def _file_totals(path: Path, columns: tuple[str, ...]) -> dict[str, int]:
    totals = dict.fromkeys(columns, 0)
    if not columns:
        return totals
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(columns=list(columns), batch_size=DEFAULT_BATCH_ROWS):
        for c in columns:
            value = pc.sum(batch.column(c)).as_py()
            totals[c] += int(value or 0)
    return totals


def _owner_only_problems(path: Path, name: str) -> list[Problem]:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return [Problem(name, f"is not owner-only (mode {mode:o}); others may read it")]
    return []


def _check_file(out: Path, name: str, expected: dict[str, Any]) -> tuple[FileCheck, list[Problem]]:
    check = FileCheck(name=name, manifest_rows=expected.get("rows"))
    path = out / name
    if not path.is_file():
        return check, [Problem(name, "missing from the archive directory")]
    problems = []
    problems.extend(_owner_only_problems(path, name))
    actual_sha = sha256_of(path)
    check.checksum_ok = actual_sha == expected.get("sha256")
    if not check.checksum_ok:
        problems.append(
            Problem(name, f"SHA-256 is {actual_sha}, the manifest says {expected.get('sha256')}")
        )
    spec = FILES_BY_NAME.get(name)
    try:
        check.file_rows = pq.ParquetFile(path).metadata.num_rows
        totals = _file_totals(path, spec.pence_columns if spec else ())
    except (pa.ArrowException, OSError) as exc:
        problems.append(Problem(name, f"is not a readable Parquet file ({type(exc).__name__})"))
        return check, problems
    if check.file_rows != check.manifest_rows:
        problems.append(
            Problem(
                name, f"holds {check.file_rows:,} rows, the manifest says {check.manifest_rows}"
            )
        )
    expected_totals = expected.get("totals") or {}
    check.totals_ok = totals == expected_totals
    if not check.totals_ok:
        problems.append(
            Problem(name, f"pence totals are {totals}, the manifest says {expected_totals}")
        )
    return check, problems


def _find_archive(conn: Connection, out: Path, manifest_sha: str | None) -> Any:
    if manifest_sha:
        row = conn.execute(
            select(archives)
            .where(archives.c.manifest_sha256 == manifest_sha)
            .order_by(archives.c.archive_id.desc())
        ).first()
        if row is not None:
            return row
    return conn.execute(
        select(archives).where(archives.c.path == str(out)).order_by(archives.c.archive_id.desc())
    ).first()


def _read_manifest(out: Path) -> tuple[dict[str, Any] | None, str | None, list[Problem]]:
    path = out / MANIFEST
    if not path.is_file():
        return None, None, [Problem(MANIFEST, "missing: this is not a finished archive")]
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        manifest = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None, sha, [Problem(MANIFEST, "is not valid JSON")]
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None, sha, [Problem(MANIFEST, f"is not a {FORMAT} manifest")]
    return manifest, sha, []


def verify(ctx: Context, out: Path | str) -> VerifyResult:
    """Re-check the archive in ``out`` against its manifest and the store; record the result."""
    out = Path(out).expanduser().resolve()
    if not out.is_dir():
        raise UsageError(f"{out} is not a directory")
    result = VerifyResult(path=out, archive_id=None, verified_at=ctx.clock())
    with stage_run(ctx, "archive_verify", {"path": str(out)}) as run:
        manifest, manifest_sha, problems = _read_manifest(out)
        result.problems.extend(problems)
        with _snapshot(ctx.engine) as conn:
            recorded = _find_archive(conn, out, manifest_sha)
            if recorded is not None:
                result.archive_id = int(recorded.archive_id)
                if manifest is not None and recorded.manifest_sha256 != manifest_sha:
                    result.problems.append(
                        Problem(
                            MANIFEST,
                            f"SHA-256 is {manifest_sha}, the store recorded "
                            f"{recorded.manifest_sha256} when archive {recorded.archive_id} "
                            "was written",
                        )
                    )
            elif manifest is not None:
                result.problems.append(
                    Problem(MANIFEST, "no archive with this manifest is recorded in this store")
                )
            if manifest is not None:
                _verify_files(out, manifest, result)
                compared = compare_with_store(conn, _manifest_counts(manifest))
                result.problems.extend(compared.problems)
                for check in result.files:
                    check.store_rows = compared.rows.get(check.name)
        if result.archive_id is not None:
            with run.chunk() as conn:
                conn.execute(
                    sql_update(archives)
                    .where(archives.c.archive_id == result.archive_id)
                    .values(verified_at=result.verified_at, verified_ok=result.ok)
                )
        run.counts.update({"files": len(result.files), "problems": len(result.problems)})
    return result


def _verify_files(out: Path, manifest: dict[str, Any], result: VerifyResult) -> None:
    listed: dict[str, Any] = manifest.get("files") or {}
    personal = bool(manifest.get("includes_personal_data"))
    result.problems.extend(_owner_only_problems(out, f"{out.name}/ (the directory)"))
    for name, expected in sorted(listed.items()):
        check, problems = _check_file(out, name, expected)
        result.files.append(check)
        result.problems.extend(problems)
        spec = FILES_BY_NAME.get(name)
        if spec is not None and spec.personal and not personal:
            result.problems.append(
                Problem(name, "holds personal data but the manifest says the archive has none")
            )
    for path in sorted(out.iterdir()):
        if path.name != MANIFEST and path.name not in listed:
            result.problems.append(Problem(path.name, "is not listed in the manifest"))
