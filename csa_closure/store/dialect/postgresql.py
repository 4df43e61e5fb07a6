"""PostgreSQL (psycopg): the shared production store.

The driver takes dates, instants and booleans natively and wants ``%s`` placeholders. Bulk
writes go through ``COPY ... FROM STDIN``, the fastest path the driver has; the planner is
told when a table has just grown.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from csa_closure.store.dialect.base import DialectImpl, FrameUpdate, note_written


def _copy_in(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Any]) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for row in rows:
            copy.write_row(row)


def _copy_frame(conn: Connection, table: str, frame: pl.DataFrame) -> None:
    """``frame`` (driver values) into ``table`` as COPY's CSV, written by polars a slice at a
    time: no Python step per row. polars writes a null as nothing and every other value that is
    not a number quoted (an empty string as ``""``), which is how COPY's CSV tells them apart
    (and no value can be read as its end-of-data line); instants carry their zone."""
    raw = conn.connection.driver_connection
    assert raw is not None
    statement = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
        for part in frame.iter_slices(COPY_SLICE):
            buffer = io.BytesIO()
            part.write_csv(buffer, include_header=False, quote_style="non_numeric")
            copy.write(buffer.getvalue())


COPY_SLICE = 50_000  # rows formatted at a time


def _note_copied(conn: Connection, table: str, rows: int) -> None:
    """COPY reports no row count to the run's counter (store/runs.py): count the rows here."""
    if not table.startswith("_"):  # a staging table is not the store's
        note_written(conn, table, rows)


class PostgresqlImpl(DialectImpl):
    name = "postgresql"

    def insert(self, table: Table) -> Insert:
        return postgresql.insert(table)

    def instant_column(self, expr: pl.Expr) -> pl.Expr:
        # with its zone: a naive instant would be read in the session's TimeZone (a server set
        # to Europe/London would shift every bulk-written instant by an hour in summer)
        return expr.dt.replace_time_zone("UTC")

    def driver_sql(self, sql: str) -> str:
        # psycopg wants %s, and reads a literal % as a placeholder unless it is doubled
        return sql.replace("%", "%%").replace("?", "%s")

    def insert_tuples(
        self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        _copy_in(conn, table, columns, rows)
        _note_copied(conn, table, len(rows))

    def insert_driver_frame(self, conn: Connection, table: str, frame: pl.DataFrame) -> None:
        _copy_frame(conn, table, frame)
        _note_copied(conn, table, frame.height)

    def update_from_frame(self, conn: Connection, update: FrameUpdate) -> int:
        """``COPY`` into a temporary table, then one ``UPDATE ... FROM``: a statement per row
        would cost a server round of work each, too slow for a million moves."""
        table, frame, key, guards = update.table, update.frame, update.key, update.guards
        settable = update.settable
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
        staged = self.driver_frame(table, frame.select(*settable, key)).with_columns(
            frame.select(list(guards))
        )
        self.insert_driver_frame(conn, temp, staged)
        assignments = [
            *(f"{c} = u.{c}" for c in settable),
            *(f"{c} = t.{c} + 1" for c in update.increment),
        ]
        result = conn.exec_driver_sql(
            f"UPDATE {table.name} AS t SET {', '.join(assignments)} "
            f"FROM {temp} AS u WHERE t.{key} = u.{key}"
            + "".join(f" AND t.{col} = u.{name}" for name, col in guards.items())
        )
        conn.exec_driver_sql(f"DROP TABLE {temp}")
        return int(result.rowcount)

    def refresh_statistics(self, conn: Connection, table: str) -> None:
        # the planner plans from statistics autovacuum refreshes only later; a bulk load
        # followed by joins in the same transaction would be planned for an empty table
        conn.exec_driver_sql(f"ANALYZE {table}")

    def cursor(self, raw: Any, *, server_side: bool) -> Any:
        if server_side:
            return raw.cursor(name="csa_closure_stream")  # a named cursor streams
        return raw.cursor()

    @contextmanager
    def consistent_read(self, conn: Connection) -> Iterator[Connection]:
        """REPEATABLE READ, rolled back at the end: a consistent read never writes."""
        reader = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield reader
        finally:
            reader.rollback()

    @contextmanager
    def read_only_source(self, conn: Connection) -> Iterator[Connection]:
        """One REPEATABLE READ, read-only transaction (every table read from the same
        state), with ISO DateStyle so CAST(date AS TEXT) is YYYY-MM-DD whatever the server's
        default."""
        reader = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        reader.exec_driver_sql("SET DateStyle = 'ISO, YMD'")
        yield reader
