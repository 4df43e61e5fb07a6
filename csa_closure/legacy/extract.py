"""Read the legacy replica (SQLite or PostgreSQL) into polars frames of text.

Every contract column is selected ``CAST(... AS TEXT)`` (``sql/extract/<table>.sql``), so both
databases hand over the same text and a typed CS2 column that holds rubbish (SQLite lets an
INTEGER column hold 'abc' and a DATE column '2009-02-31') reaches the normaliser as it is,
to be quarantined there rather than crash the read. Rows are streamed in batches so that
memory holds columns, never millions of Python tuples.

The replica is only read: SQLite is opened read-only, PostgreSQL in a read-only
REPEATABLE READ transaction, so every table comes from one consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection, Engine, make_url

from csa_closure.errors import InputError
from csa_closure.legacy.contract import CONTROL_TABLE, SPECS, SYSTEMS, TABLES
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.resources import sql_text
from csa_closure.store.dialect import backend, driver_batches, read_only_source
from csa_closure.store.engine import make_engine, normalise_url, redacted

DEFAULT_BATCH_SIZE = 200_000


@dataclass(frozen=True)
class LegacyExtract:
    """Every contract table as a frame whose columns are all ``pl.String``."""

    tables: dict[str, pl.DataFrame]
    source: str  # the source URL, password hidden
    dialect: str  # sqlite | postgresql
    systems: tuple[str, ...] = SYSTEMS  # the systems whose tables were read
    row_counts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, table: str) -> pl.DataFrame:
        return self.tables[table]

    @property
    def control(self) -> pl.DataFrame:
        return self.tables[CONTROL_TABLE]


def system_tables(system: str) -> tuple[str, ...]:
    spec = SPECS[system]
    return (spec.party_table, spec.case_table, spec.debt_table, spec.payment_table)


def extraction_sql(table: str) -> str:
    return sql_text(f"extract/{table}.sql")


def read_legacy(
    source_url: str,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    systems: Sequence[str] = SYSTEMS,
    progress: Progress = NO_PROGRESS,
    task: str = "reading",
) -> LegacyExtract:
    """Read every table of the legacy systems (both by default), and ``extract_control``,
    from ``source_url``.

    Raises ``InputError`` naming the table (or column) when the source lacks part of the
    contract, before anything else is read. Reading one system at a time (``systems``)
    halves the memory a pull needs at full scale. ``progress`` gets ``task`` with the rows
    to read (counted first, in the same snapshot) and each batch as it is read.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise ValueError(f"systems must be some of {', '.join(SYSTEMS)}")
    wanted = [CONTROL_TABLE] + [t for s in SYSTEMS if s in systems for t in system_tables(s)]
    engine = _legacy_engine(source_url)
    try:
        with engine.connect() as source, read_only_source(source) as conn:
            _require_contract(conn)
            reading = [table for table in TABLES if table in wanted]
            progress.start(task, sum(_row_count(conn, table) for table in reading))
            tables = {
                table: _read_table(conn, table, batch_size, progress, task) for table in reading
            }
            dialect = backend(conn)
    finally:
        engine.dispose()
    return LegacyExtract(
        tables=tables,
        source=redacted(source_url),
        dialect=dialect,
        systems=tuple(s for s in SYSTEMS if s in systems),
        row_counts={name: frame.height for name, frame in tables.items()},
    )


def _legacy_engine(source_url: str) -> Engine:
    """PostgreSQL through the store's ``make_engine``; a SQLite file opened read-only.

    ``make_engine`` would switch a SQLite file to WAL on connect, which writes to the file
    (and fails on a read-only one); the replica must not be touched, so SQLite gets a plain
    engine on a ``mode=ro`` URI instead.
    """
    url = normalise_url(source_url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return make_engine(url)
    database = parsed.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise InputError("the legacy source must be a SQLite file path or a PostgreSQL URL")
    path = Path(database)
    if not path.is_file():
        raise InputError(f"the legacy SQLite file {database!r} does not exist")
    return create_engine(f"sqlite:///file:{path.resolve().as_posix()}?mode=ro&uri=true")


def _require_contract(conn: Connection) -> None:
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    missing = [table for table in TABLES if table not in present]
    if missing:
        raise InputError(
            "the legacy source is missing contract table(s): "
            + ", ".join(missing)
            + " (see sql/legacy_schema.sql)"
        )
    for table, columns in TABLES.items():
        have = {column["name"] for column in inspector.get_columns(table)}
        lacking = [column for column in columns if column not in have]
        if lacking:
            raise InputError(
                f"legacy table {table} is missing contract column(s): {', '.join(lacking)}"
            )


def _row_count(conn: Connection, table: str) -> int:
    # (table names come from the contract's own list, never from input)
    return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one())


def _read_table(
    conn: Connection, table: str, batch_size: int, progress: Progress, task: str
) -> pl.DataFrame:
    columns = TABLES[table]
    schema = dict.fromkeys(columns, pl.String)
    frames = []
    for rows in _batches(conn, extraction_sql(table), batch_size):
        frames.append(_batch_frame(rows, columns))
        progress.advance(task, len(rows))
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames, rechunk=True)


def _batches(conn: Connection, sql: str, batch_size: int) -> Iterator[Sequence[Any]]:
    # streamed: a server-side cursor on PostgreSQL, stepping through the table on SQLite
    return driver_batches(conn, sql, batch_size=batch_size, server_side=True)


def _batch_frame(rows: Sequence[Any], columns: Sequence[str]) -> pl.DataFrame:
    # built from the tuples in polars' own code: faster than a Series per column via zip
    return pl.DataFrame(rows, schema=dict.fromkeys(columns, pl.String), orient="row")
