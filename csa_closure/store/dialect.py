"""The one seam where SQLite and PostgreSQL differ.

Everything dialect-specific the stages need is here: conflict-tolerant inserts, fast bulk
inserts (``executemany`` on SQLite, ``COPY`` on PostgreSQL), driver placeholders, and how
values are handed to the driver. Stages call these and never branch on the dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
from sqlalchemy import JSON, Boolean, Date, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from csa_closure.store.schema import UtcDateTime


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def insert(conn: Connection, table: Table) -> Insert:
    """The dialect's INSERT, which knows ON CONFLICT."""
    if is_sqlite(conn):
        return sqlite.insert(table)
    return postgresql.insert(table)


def insert_ignoring_conflicts(conn: Connection, table: Table) -> Insert:
    """INSERT that skips rows whose key already exists (idempotent re-runs)."""
    return insert(conn, table).on_conflict_do_nothing()  # type: ignore[attr-defined,no-any-return]


def driver_sql(conn: Connection, sql: str) -> str:
    """Write driver SQL with ``?`` placeholders; PostgreSQL's driver wants ``%s`` (and a
    literal ``%`` doubled, or psycopg reads it as a placeholder)."""
    if is_sqlite(conn):
        return sql
    return sql.replace("%", "%%").replace("?", "%s")


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run driver-level ``sql`` (``?`` placeholders) once per row; return rows affected.

    Hot paths use this instead of Core statements with dicts: one tuple a row, no per-row
    statement processing. Values must already be driver values (see ``driver_frame``).
    """
    if not rows:
        return 0
    result = conn.exec_driver_sql(driver_sql(conn, sql), list(rows))
    return int(result.rowcount)


def driver_value(conn: Connection, value: Any) -> Any:
    """One parameter as the driver stores it (SQLite: ISO text for dates and instants, in
    SQLAlchemy's own layout with microseconds always written, so text order is time order)."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f") if is_sqlite(conn) else value
    if isinstance(value, bool) and is_sqlite(conn):
        return int(value)  # SQLite keeps booleans as 0/1
    if isinstance(value, date) and is_sqlite(conn):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def driver_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its columns turned into what the driver stores for ``table``.

    SQLite keeps dates as ISO text (SQLAlchemy's own format) and JSON as text; PostgreSQL
    takes dates and booleans natively. Conversions are whole-column, not per row.
    """
    exprs = []
    for name in frame.columns:
        column = table.c[name]
        dtype = frame.schema[name]
        expr = pl.col(name)
        if isinstance(column.type, JSON):
            if isinstance(dtype, pl.Struct):
                expr = expr.struct.json_encode()
            elif dtype != pl.String:
                # wrap any other column (lists of structs, numbers) in a struct to encode it
                # in one pass, then take the wrapper off again
                expr = (
                    pl.struct(expr.alias("v"))
                    .struct.json_encode()
                    .str.strip_prefix('{"v":')
                    .str.strip_suffix("}")
                )
        elif isinstance(column.type, UtcDateTime):
            if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
                expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                if is_sqlite(conn):
                    expr = expr.dt.to_string("%Y-%m-%d %H:%M:%S.%6f")
        elif isinstance(column.type, Date) and is_sqlite(conn) and dtype == pl.Date:
            expr = expr.dt.to_string("%Y-%m-%d")
        elif isinstance(column.type, Boolean) and is_sqlite(conn) and dtype == pl.Boolean:
            expr = expr.cast(pl.Int8)
        exprs.append(expr.alias(name))
    return frame.select(exprs)


# rows written to each table in the current transaction, for the run's chunk log
# (csa_closure.store.runs counts statements; the COPY paths, which bypass them, note here)
WRITTEN_KEY = "csa_closure.written"


def note_written(conn: Connection, table: str, rows: int) -> None:
    written = conn.info.setdefault(WRITTEN_KEY, {})
    written[table] = written.get(table, 0) + rows


def insert_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> int:
    """Bulk-insert every row of ``frame`` (columns named as in ``table``); return the count.

    SQLite: one ``executemany`` of tuples. PostgreSQL: ``COPY ... FROM STDIN``, the fastest
    path the driver has. Runs inside the caller's transaction either way.
    """
    if frame.height == 0:
        return 0
    prepared = driver_frame(conn, table, frame)
    insert_tuples(conn, table.name, prepared.columns, list(prepared.iter_rows()))
    return prepared.height


def insert_tuples(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows already in driver values (``driver_frame``, ``values_for_driver``):
    one ``executemany`` on SQLite, ``COPY ... FROM STDIN`` on PostgreSQL."""
    if not rows:
        return
    if is_sqlite(conn):
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        return  # (counted for the run's log by the statement listener in store/runs.py)
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(row)
    if not table.startswith("_"):  # a staging table is not the store's
        note_written(conn, table, len(rows))


def insert_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Insert a modest number of rows given as dicts (same keys in every row)."""
    rows = list(rows)
    if not rows:
        return 0
    conn.execute(table.insert(), rows)
    return len(rows)


def values_for_driver(conn: Connection, values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(driver_value(conn, v) for v in values)


@contextmanager
def consistent_read(conn: Connection) -> Iterator[Connection]:
    """``conn`` in one read transaction that sees a single state of the whole database.

    PostgreSQL: REPEATABLE READ. SQLite: an explicit BEGIN, whose read snapshot WAL keeps
    while writers carry on. Rolled back at the end: a consistent read never writes.
    """
    if is_sqlite(conn):
        conn.exec_driver_sql("BEGIN")
        reader = conn
    else:
        reader = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        yield reader
    finally:
        reader.rollback()


@contextmanager
def read_only_source(conn: Connection) -> Iterator[Connection]:
    """``conn`` set up to read a source database (the legacy replica) without writing to it.

    PostgreSQL: one REPEATABLE READ, read-only transaction (every table read from the same
    state), with ISO DateStyle so CAST(date AS TEXT) is YYYY-MM-DD whatever the server's
    default. SQLite: the caller opened the file read-only; nothing to set.
    """
    if is_sqlite(conn):
        yield conn
        return
    reader = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    reader.exec_driver_sql("SET DateStyle = 'ISO, YMD'")
    yield reader


def backend(conn: Connection) -> str:
    """The database's name (``sqlite``, ``postgresql``), for records; never for branching."""
    return str(conn.dialect.name)


def refresh_statistics(conn: Connection, table: str) -> None:
    """Let the planner see a table that just grew by millions of rows.

    PostgreSQL plans from statistics autovacuum refreshes only later; a bulk load followed by
    joins on the same transaction would otherwise be planned for an empty table. SQLite's
    planner needs nothing here.
    """
    if not is_sqlite(conn):
        conn.exec_driver_sql(f"ANALYZE {table}")


def fetched_type(dtype: pl.DataType, conn: Connection) -> pl.DataType:
    """What the driver hands back for a column we want as ``dtype`` (SQLite: dates and
    instants as text, booleans as integers). Build a batch's frame with these, then turn
    its columns into ``dtype`` with ``from_fetched``."""
    if is_sqlite(conn):
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return pl.String()
        if dtype == pl.Boolean:
            return pl.Int64()
    return dtype


def from_fetched(name: str, dtype: pl.DataType, conn: Connection) -> pl.Expr:
    """Column ``name``, fetched as ``fetched_type``, typed as ``dtype`` (whole column)."""
    expr = pl.col(name)
    if not is_sqlite(conn):
        return expr
    if dtype == pl.Date:
        # SQLAlchemy stores SQLite dates as YYYY-MM-DD text
        return expr.str.to_date("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return expr.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_zone="UTC")
    if dtype == pl.Boolean:
        return expr.cast(pl.Boolean)
    return expr


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
    raw = conn.connection.driver_connection
    assert raw is not None
    if server_side and not is_sqlite(conn):
        cursor = raw.cursor(name="csa_closure_stream")  # type: ignore[call-arg]
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(driver_sql(conn, sql), tuple(params))
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
    sql, params = statement
    fetched = {name: fetched_type(dtype, conn) for name, dtype in schema.items()}
    frames = [
        pl.DataFrame(batch, schema=fetched, orient="row")
        for batch in driver_batches(conn, sql, params, batch_size=batch_size)
    ]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=fetched)
    return frame.select(from_fetched(n, d, conn).alias(n) for n, d in schema.items())


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
    PostgreSQL: ``COPY`` into a temporary table, then one ``UPDATE ... FROM``: a statement
    per row would cost a server round of work each, too slow for a million moves.
    """
    if frame.height == 0:
        return 0
    guards = guards or {}
    settable = [c for c in frame.columns if c != key and c not in guards]
    if is_sqlite(conn):
        assignments = [*(f"{c} = ?" for c in settable), *(f"{c} = {c} + 1" for c in increment)]
        sql = f"UPDATE {table.name} SET {', '.join(assignments)} WHERE {key} = ?" + "".join(
            f" AND {col} = ?" for col in guards.values()
        )
        prepared = driver_frame(conn, table, frame.select(*settable, key))
        params = prepared.with_columns(frame.select(list(guards)))
        return execute_many(conn, sql, list(params.iter_rows()))
    temp = f"_update_{table.name}"
    column_types = {
        name: table.c[guards.get(name, name)].type.compile(dialect=conn.dialect)
        for name in frame.columns
    }
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {temp}")
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE {temp} ("
        + ", ".join(f"{name} {kind}" for name, kind in column_types.items())
        + ") ON COMMIT DROP"
    )
    staged = driver_frame(conn, table, frame.select(*settable, key)).with_columns(
        frame.select(list(guards))
    )
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {temp} ({', '.join(staged.columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in staged.iter_rows():
            copy.write_row(row)
    result = conn.exec_driver_sql(
        f"UPDATE {table.name} AS t SET "
        + ", ".join([*(f"{c} = u.{c}" for c in settable), *(f"{c} = t.{c} + 1" for c in increment)])
        + " "
        f"FROM {temp} AS u WHERE t.{key} = u.{key}"
        + "".join(f" AND t.{col} = u.{name}" for name, col in guards.items())
    )
    conn.exec_driver_sql(f"DROP TABLE {temp}")
    return int(result.rowcount)
