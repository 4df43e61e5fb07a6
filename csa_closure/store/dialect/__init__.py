"""The one seam where SQLite and PostgreSQL differ.

Everything dialect-specific the stages need is here: conflict-tolerant inserts, fast bulk
inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL), driver placeholders, and how
values are handed to the driver. Stages call these functions and never branch on the
dialect.

Each database is one class (``sqlite.SQLiteImpl``, ``postgresql.PostgresqlImpl``) over the
shared ``base.DialectImpl``, registered by dialect name; ``impl_for`` looks one up from a
connection, engine or dialect. To teach the store something new that differs by database,
add a method to ``DialectImpl`` (the shared behaviour), override it where a database
differs, and expose it here as a function of the connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import polars as pl
from sqlalchemy import Table
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from csa_closure.store.dialect import postgresql, sqlite
from csa_closure.store.dialect.base import (
    WRITTEN_KEY,
    DialectImpl,
    FrameUpdate,
    execute_many,
    impl_for,
    note_written,
)

__all__ = [
    "IMPLEMENTATIONS",
    "WRITTEN_KEY",
    "DialectImpl",
    "FrameUpdate",
    "backend",
    "consistent_read",
    "driver_batches",
    "driver_frame",
    "driver_sql",
    "driver_value",
    "execute_many",
    "fetched_type",
    "from_fetched",
    "impl_for",
    "insert",
    "insert_frame",
    "insert_ignoring_conflicts",
    "insert_rows",
    "insert_tuples",
    "note_written",
    "read_frame",
    "read_only_source",
    "refresh_statistics",
    "update_from_frame",
    "values_for_driver",
]

# every implementation, registered by its dialect name as its module is imported
IMPLEMENTATIONS = (sqlite.SQLiteImpl, postgresql.PostgresqlImpl)


def insert(conn: Connection, table: Table) -> Insert:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return impl_for(conn).insert(table)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """INSERT that skips rows whose key already exists (idempotent re-runs)."""
    return insert(conn, table).on_conflict_do_nothing()  # type: ignore[attr-defined,no-any-return]


def driver_sql(conn: Connection, sql: str) -> str:
    """Write driver SQL with ``?`` placeholders; PostgreSQL's driver wants ``%s`` (and a
    literal ``%`` doubled, or psycopg reads it as a placeholder)."""
    return impl_for(conn).driver_sql(sql)


def driver_value(conn: Connection, value: Any) -> Any:
    """One parameter as the driver stores it (SQLite: ISO text for dates and instants, in
    SQLAlchemy's own layout with microseconds always written, so text order is time order)."""
    return impl_for(conn).driver_value(value)


def values_for_driver(conn: Connection, values: Sequence[Any]) -> tuple[Any, ...]:
    impl = impl_for(conn)
    return tuple(impl.driver_value(v) for v in values)


def driver_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its columns turned into what the driver stores for ``table``.

    SQLite keeps dates as ISO text (SQLAlchemy's own format) and JSON as text; PostgreSQL
    takes dates and booleans natively. Conversions are whole-column, not per row.
    """
    return impl_for(conn).driver_frame(table, frame)


def insert_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> int:
    """Bulk-insert every row of ``frame`` (columns named as in ``table``); return the count.

    SQLite: one ``executemany`` of tuples. PostgreSQL: ``COPY ... FROM STDIN``, the fastest
    path the driver has. Runs inside the caller's transaction either way.
    """
    if frame.height == 0:
        return 0
    impl = impl_for(conn)
    prepared = impl.driver_frame(table, frame)
    impl.insert_driver_frame(conn, table.name, prepared)
    return prepared.height


def insert_tuples(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows already in driver values (``driver_frame``, ``values_for_driver``):
    one ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL."""
    if rows:
        impl_for(conn).insert_tuples(conn, table, columns, rows)


def insert_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Insert a modest number of rows given as dicts (same keys in every row)."""
    rows = list(rows)
    if not rows:
        return 0
    conn.execute(table.insert(), rows)
    return len(rows)


def update_from_frame(
    conn: Connection,
    table: Table,
    frame: pl.DataFrame,
    *,
    key: str,
    guards: dict[str, str] | None = None,
    increment: Sequence[str] = (),
) -> int:
    """Set ``table``'s columns from ``frame`` (one row per ``key``), in bulk; return the rows
    changed. ``guards`` maps a frame column to the table column it must still equal (the
    compare-and-set: a row whose guarded value moved on is not changed, and not counted).
    ``increment`` names counter columns that go up by one on every row changed.

    SQLite: one ``executemany`` of UPDATE by primary key, which is fast in process.
    PostgreSQL: ``COPY`` into a temporary table, then one ``UPDATE ... FROM``.
    """
    if frame.height == 0:
        return 0
    update = FrameUpdate(table, frame, key, guards or {}, increment)
    return impl_for(conn).update_from_frame(conn, update)


def consistent_read(conn: Connection) -> AbstractContextManager[Connection]:
    """``conn`` in one read transaction that sees a single state of the whole database.

    PostgreSQL: REPEATABLE READ. SQLite: an explicit BEGIN, whose read snapshot WAL keeps
    while writers carry on. Rolled back at the end: a consistent read never writes.
    """
    return impl_for(conn).consistent_read(conn)


def read_only_source(conn: Connection) -> AbstractContextManager[Connection]:
    """``conn`` set up to read a source database (the legacy replica) without writing to it
    (PostgreSQL: one REPEATABLE READ, read-only transaction with ISO DateStyle; SQLite: the
    caller opened the file read-only)."""
    return impl_for(conn).read_only_source(conn)


def backend(conn: Connection) -> str:
    """The database's name (``sqlite``, ``postgresql``), for records; never for branching."""
    return impl_for(conn).name


def refresh_statistics(conn: Connection, *tables: str) -> None:
    """Let the planner see tables that just grew or changed by millions of rows (PostgreSQL's
    ``ANALYZE``; SQLite's planner needs nothing here)."""
    impl = impl_for(conn)
    for table in tables:
        impl.refresh_statistics(conn, table)


def fetched_type(dtype: pl.DataType, conn: Connection) -> pl.DataType:
    """What the driver hands back for a column we want as ``dtype`` (SQLite: dates and
    instants as text, booleans as integers). Build a batch's frame with these, then turn
    its columns into ``dtype`` with ``from_fetched``."""
    return impl_for(conn).fetched_type(dtype)


def from_fetched(name: str, dtype: pl.DataType, conn: Connection) -> pl.Expr:
    """Column ``name``, fetched as ``fetched_type``, typed as ``dtype`` (whole column)."""
    return impl_for(conn).from_fetched(name, dtype)


def driver_batches(
    conn: Connection,
    sql: str,
    params: Sequence[Any] = (),
    *,
    batch_size: int,
    server_side: bool = False,
) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of driver SQL (``?`` placeholders), as the driver's own tuples, ``batch_size`` at
    a time, inside ``conn``'s transaction.

    The driver's cursor, not SQLAlchemy's result: at a million rows, a ``Row`` object per
    row is a fifth of the read. ``server_side`` streams from PostgreSQL with a named cursor
    (memory holds one batch); SQLite's cursor always steps through the table.
    """
    impl = impl_for(conn)
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = impl.cursor(raw, server_side=server_side)
    try:
        cursor.execute(impl.driver_sql(sql), tuple(params))
        while batch := cursor.fetchmany(batch_size):
            yield batch
    finally:
        cursor.close()


def read_frame(
    conn: Connection,
    statement: Any,
    schema: dict[str, pl.DataType],
    *,
    batch_size: int = 100_000,
) -> pl.DataFrame:
    """Run ``statement`` (Core select, or driver SQL text with ``?`` placeholders given as
    ``(sql, params)``) and return its rows as a frame with exactly ``schema``.

    Rows are fetched in batches and turned into columns batch by batch, so millions of rows
    never sit in memory as Python tuples all at once. Dates and booleans come back typed on
    both databases.
    """
    if not isinstance(statement, tuple):
        # Core statements go through SQLAlchemy's result processing, which already types
        # dates on SQLite; only driver SQL needs the conversions below.
        result = conn.execute(statement)
        frames = []
        while batch := result.fetchmany(batch_size):
            frames.append(pl.DataFrame(batch, schema=schema, orient="row"))
        return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    impl = impl_for(conn)
    sql, params = statement
    fetched = {name: impl.fetched_type(dtype) for name, dtype in schema.items()}
    frames = [
        pl.DataFrame(batch, schema=fetched, orient="row")
        for batch in driver_batches(conn, sql, params, batch_size=batch_size)
    ]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=fetched)
    return frame.select(impl.from_fetched(n, d).alias(n) for n, d in schema.items())
