"""SQLite: the single-file store for one operator and the tests.

Dates and instants are ISO text (in SQLAlchemy's own layout, microseconds always written,
so text order is time order), booleans 0/1, JSON text. Bulk writes are one ``executemany``,
which is fast in process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import polars as pl
from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert

from csa_closure.store.dialect.base import DialectImpl, FrameUpdate, execute_many

_INSTANT_TEXT = "%Y-%m-%d %H:%M:%S.%f"


class SQLiteImpl(DialectImpl):
    name = "sqlite"

    def insert(self, table: Table) -> Insert:
        return sqlite.insert(table)

    def bind_instant(self, value: datetime) -> datetime:
        return value.replace(tzinfo=None)  # SQLite keeps no zone

    def driver_instant(self, value: datetime) -> Any:
        return value.strftime(_INSTANT_TEXT)

    def driver_boolean(self, value: bool) -> Any:
        return int(value)

    def driver_date(self, value: date) -> Any:
        return value.isoformat()

    def instant_column(self, expr: pl.Expr) -> pl.Expr:
        return expr.dt.to_string("%Y-%m-%d %H:%M:%S.%6f")

    def date_column(self, expr: pl.Expr) -> pl.Expr:
        return expr.dt.to_string("%Y-%m-%d")

    def boolean_column(self, expr: pl.Expr) -> pl.Expr:
        return expr.cast(pl.Int8)

    def fetched_type(self, dtype: pl.DataType) -> pl.DataType:
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return pl.String()
        if dtype == pl.Boolean:
            return pl.Int64()
        return dtype

    def from_fetched(self, name: str, dtype: pl.DataType) -> pl.Expr:
        expr = pl.col(name)
        if dtype == pl.Date:
            # SQLAlchemy stores SQLite dates as YYYY-MM-DD text
            return expr.str.to_date("%Y-%m-%d")
        if isinstance(dtype, pl.Datetime):
            return expr.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_zone="UTC")
        if dtype == pl.Boolean:
            return expr.cast(pl.Boolean)
        return expr

    def insert_tuples(
        self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        # (counted for the run's log by the statement listener in store/runs.py)

    def update_from_frame(self, conn: Connection, update: FrameUpdate) -> int:
        """One ``executemany`` of UPDATE by primary key."""
        table, frame, key, guards = update.table, update.frame, update.key, update.guards
        settable = update.settable
        assignments = [
            *(f"{c} = ?" for c in settable),
            *(f"{c} = {c} + 1" for c in update.increment),
        ]
        sql = f"UPDATE {table.name} SET {', '.join(assignments)} WHERE {key} = ?" + "".join(
            f" AND {col} = ?" for col in guards.values()
        )
        prepared = self.driver_frame(table, frame.select(*settable, key))
        params = prepared.with_columns(frame.select(list(guards)))
        return execute_many(conn, sql, list(params.iter_rows()))

    @contextmanager
    def consistent_read(self, conn: Connection) -> Iterator[Connection]:
        """An explicit BEGIN, whose read snapshot WAL keeps while writers carry on; rolled
        back at the end."""
        conn.exec_driver_sql("BEGIN")
        try:
            yield conn
        finally:
            conn.rollback()

    @contextmanager
    def read_only_source(self, conn: Connection) -> Iterator[Connection]:
        """The caller opened the file read-only; nothing to set."""
        yield conn

    @contextmanager
    def schema_upgrade(self, conn: Connection) -> Iterator[Connection]:
        """SQLite alters a table by rebuilding it (batch mode): dropping the old copy must not
        be refused by, or cascade to, the rows that refer to it. Foreign keys are switched off
        for the upgrade (only possible outside a transaction) and checked in full before it
        commits instead."""
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.commit()
        try:
            with conn.begin():
                yield conn
                _refuse_broken_references(conn)
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            conn.commit()


def _refuse_broken_references(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise RuntimeError(
            f"the upgrade would leave {len(broken)} rows referring to rows that do not exist "
            f"(in {', '.join(tables)}); it was rolled back"
        )
