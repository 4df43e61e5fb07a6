"""Reading the files other parties send us, and writing the files we hand back.

Shared by the parent-response import and the CMS acknowledgement import:

- :func:`read_contract_csv` reads a contract CSV (UTF-8, one header row, columns in any
  order) into a frame of strings, one row per data row with its 1-based ``row_number``. A
  file that cannot be read as a whole (not UTF-8, no header, a required column missing, a
  column named twice) is refused with ``InputError`` before anything is written. A row with
  the wrong number of fields is kept and marked ``malformed`` so it can be rejected and
  counted like any other bad row.
- :func:`write_owner_only` writes a file readable by its owner only (0600 from creation),
  atomically: a reader sees the old file or the new one, never half of one.
- rejects files: the rejected rows of an import, with reason codes, for the contact centre.
  They carry row numbers, document ids, case references and our own reason text; never a
  value copied from a bad field (a clerk may have typed a name into it).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.csvsafe import safe_frame
from csa_closure.errors import InputError
from csa_closure.store.schema import import_rejections, response_imports

# What a safe identifier looks like: it may be echoed in rejects files, events and output.
DOCUMENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
CASE_REF_PATTERN = r"^[CS][0-9]{9}$"
ISO_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"

REJECTS_COLUMNS = ("row_number", "document_id", "case_ref", "reason_code", "detail")


@dataclass(frozen=True)
class ContractFile:
    """A contract CSV read whole: its bytes' SHA-256 and its rows as strings."""

    path: Path
    sha256: str
    rows: pl.DataFrame  # row_number, malformed, and one String column per contract column
    ignored_columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name}: line {line} is not UTF-8 (byte {exc.start}); the file was not imported. "
            "Ask the sender to export it as UTF-8."
        ) from None


def read_contract_csv(path: Path, required: Sequence[str]) -> ContractFile:
    """Read ``path`` as a contract CSV with the ``required`` columns (any order, extras ignored).

    Returns every data row (blank lines are not rows) with ``row_number`` (1 = first data
    row), ``malformed`` (wrong number of fields) and the required columns as stripped strings
    (empty strings become null).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    text = _decode(data, path.name)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"{path.name}: the file is empty (no header row)") from None
    except csv.Error as exc:
        raise InputError(f"{path.name}: the header row cannot be read as CSV ({exc})") from None
    names = [h.strip() for h in header]
    doubled = sorted({n for n in names if names.count(n) > 1 and n})
    if doubled:
        raise InputError(
            f"{path.name}: the header names {', '.join(doubled)} more than once; the file was "
            "not imported"
        )
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(
            f"{path.name}: the header has no {', '.join(missing)} column"
            f"{'s' if len(missing) > 1 else ''} (it needs {', '.join(required)}, in any "
            "order); nothing was imported"
        )
    index = {name: names.index(name) for name in required}
    columns: dict[str, list[str | None]] = {name: [] for name in required}
    malformed: list[bool] = []
    row_numbers: list[int] = []
    number = 0
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line is not a row
            number += 1
            row_numbers.append(number)
            malformed.append(len(record) != len(names))
            for name, i in index.items():
                value = record[i].strip() if i < len(record) else ""
                columns[name].append(value or None)
    except csv.Error as exc:
        raise InputError(
            f"{path.name}: data row {number + 1} cannot be read as CSV ({exc}); nothing was "
            "imported"
        ) from None
    rows = pl.DataFrame(
        {
            "row_number": pl.Series(row_numbers, dtype=pl.Int64),
            "malformed": pl.Series(malformed, dtype=pl.Boolean),
            **{name: pl.Series(values, dtype=pl.String) for name, values in columns.items()},
        }
    )
    ignored = tuple(n for n in names if n not in required)
    return ContractFile(path=path, sha256=sha256_bytes(data), rows=rows, ignored_columns=ignored)


def safe_identifier(column: str, pattern: str) -> pl.Expr:
    """``column`` where it looks like an identifier we may echo, else null."""
    value = pl.col(column)
    return pl.when(value.str.contains(pattern).fill_null(False)).then(value).otherwise(None)


# --- files we write ---------------------------------------------------------------------


def write_owner_only(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, readable by its owner only, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def default_rejects_path(input_path: Path) -> Path:
    """``responses-2019-03-01.csv`` -> ``responses-2019-03-01.rejects.csv`` beside it."""
    return input_path.with_name(f"{input_path.stem}.rejects.csv")


def rejects_csv(rejections: pl.DataFrame) -> bytes:
    """The rejects file's bytes: one row per rejected row, in row order."""
    frame = safe_frame(rejections.select(REJECTS_COLUMNS).sort("row_number"))
    buffer = io.StringIO()
    frame.write_csv(buffer)
    return buffer.getvalue().encode("utf-8")


# --- the import record ------------------------------------------------------------------


@dataclass(frozen=True)
class PriorImport:
    import_id: int
    run_id: int | None
    row_count: int
    accepted: int
    duplicates: int
    rejected: int


def find_import(conn: Connection, kind: str, sha256: str) -> PriorImport | None:
    """The earlier import of a file with these exact bytes, if any."""
    row = conn.execute(
        select(response_imports)
        .where(response_imports.c.kind == kind, response_imports.c.file_sha256 == sha256)
        .order_by(response_imports.c.import_id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return PriorImport(
        import_id=int(row.import_id),
        run_id=row.run_id,
        row_count=int(row.row_count),
        accepted=int(row.accepted),
        duplicates=int(row.duplicates),
        rejected=int(row.rejected),
    )


REJECTION_SCHEMA: dict[str, pl.DataType] = {
    "row_number": pl.Int64(),
    "document_id": pl.String(),
    "case_ref": pl.String(),
    "reason_code": pl.String(),
    "detail": pl.String(),
}


def stored_rejections(conn: Connection, import_id: int) -> pl.DataFrame:
    rows = conn.execute(
        select(
            import_rejections.c.row_number,
            import_rejections.c.document_id,
            import_rejections.c.case_ref,
            import_rejections.c.reason_code,
            import_rejections.c.detail,
        )
        .where(import_rejections.c.import_id == import_id)
        .order_by(import_rejections.c.row_number)
    ).all()
    return pl.DataFrame(rows, schema=REJECTION_SCHEMA, orient="row")


def reason_counts(rejections: pl.DataFrame) -> dict[str, int]:
    if rejections.height == 0:
        return {}
    counted = rejections.group_by("reason_code").len().sort("reason_code")
    return {str(code): int(n) for code, n in counted.iter_rows()}
