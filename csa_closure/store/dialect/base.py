"""The shared half of the dialect seam: what both databases do alike, and the lookup.

Each database is one subclass of ``DialectImpl`` (``sqlite.py``, ``postgresql.py``),
registered under its SQLAlchemy dialect name the way alembic registers its ``impl``
classes. ``impl_for`` finds the one for a connection, engine or dialect. A method here is
the behaviour both share; a subclass overrides only where its database differs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import polars as pl
from sqlalchemy import JSON, Boolean, Date, Table
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.sql.dml import Insert

# rows written to each table in the current transaction, for the run's chunk log
# (csa_closure.store.runs counts statements; the COPY paths, which bypass them, note here)
WRITTEN_KEY = "csa_closure.written"


def note_written(conn: Connection, table: str, rows: int) -> None:
    written = conn.info.setdefault(WRITTEN_KEY, {})
    written[table] = written.get(table, 0) + rows


def execute_many(conn: Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
    """Run driver-level ``sql`` (``?`` placeholders) once per row; return rows affected.

    Hot paths use this instead of Core statements with dicts: one tuple a row, no per-row
    statement processing. Values must already be driver values (see ``driver_frame``).
    """
    if not rows:
        return 0
    result = conn.exec_driver_sql(impl_for(conn).driver_sql(sql), list(rows))
    return int(result.rowcount)


@dataclass(frozen=True)
class FrameUpdate:
    """Set ``table``'s columns from ``frame``, one row per ``key``; ``guards`` maps a frame
    column to the table column it must still equal; ``increment`` names counters to add one
    to on every row changed."""

    table: Table
    frame: pl.DataFrame
    key: str
    guards: dict[str, str]
    increment: Sequence[str]

    @property
    def settable(self) -> list[str]:
        """The frame's columns that are set (neither the key nor a guard)."""
        return [c for c in self.frame.columns if c != self.key and c not in self.guards]


class DialectImpl:
    """One database's answers to the questions the stages must never ask themselves."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, DialectImpl]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        DialectImpl._registry[cls.name] = cls()

    # --- statements ----------------------------------------------------------------------

    def insert(self, table: Table) -> Insert:
        """The dialect's INSERT, which knows ON CONFLICT."""
        raise NotImplementedError

    def driver_sql(self, sql: str) -> str:
        """Driver SQL written with ``?`` placeholders, as this driver wants it."""
        return sql

    # --- values --------------------------------------------------------------------------

    def bind_instant(self, value: datetime) -> datetime:
        """A UTC instant as ``UtcDateTime`` hands it to SQLAlchemy's own type."""
        return value

    def driver_instant(self, value: datetime) -> Any:
        """A UTC instant as the driver stores it."""
        return value

    def driver_value(self, value: Any) -> Any:
        """One parameter as the driver stores it."""
        if isinstance(value, datetime):
            return self.driver_instant(value.astimezone(UTC))
        if isinstance(value, bool):
            return self.driver_boolean(value)
        if isinstance(value, date):
            return self.driver_date(value)
        if isinstance(value, dict | list):
            return json.dumps(value, sort_keys=True)
        return value

    def driver_boolean(self, value: bool) -> Any:
        return value

    def driver_date(self, value: date) -> Any:
        return value

    def instant_column(self, expr: pl.Expr) -> pl.Expr:
        """A naive-UTC datetime column as the driver stores instants."""
        return expr

    def date_column(self, expr: pl.Expr) -> pl.Expr:
        return expr

    def boolean_column(self, expr: pl.Expr) -> pl.Expr:
        return expr

    def driver_frame(self, table: Table, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with its columns turned into what the driver stores for ``table``
        (whole-column conversions, not per row)."""
        from csa_closure.store.schema import UtcDateTime  # schema binds instants through here

        exprs = []
        for name in frame.columns:
            column = table.c[name]
            dtype = frame.schema[name]
            expr = pl.col(name)
            if isinstance(column.type, JSON):
                if isinstance(dtype, pl.Struct):
                    expr = expr.struct.json_encode()
                elif dtype != pl.String:
                    # wrap any other column (lists of structs, numbers) in a struct to encode
                    # it in one pass, then take the wrapper off again
                    expr = (
                        pl.struct(expr.alias("v"))
                        .struct.json_encode()
                        .str.strip_prefix('{"v":')
                        .str.strip_suffix("}")
                    )
            elif isinstance(column.type, UtcDateTime):
                if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
                    expr = self.instant_column(
                        expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
                    )
            elif isinstance(column.type, Date) and dtype == pl.Date:
                expr = self.date_column(expr)
            elif isinstance(column.type, Boolean) and dtype == pl.Boolean:
                expr = self.boolean_column(expr)
            exprs.append(expr.alias(name))
        return frame.select(exprs)

    def fetched_type(self, dtype: pl.DataType) -> pl.DataType:
        """What the driver hands back for a column we want as ``dtype``."""
        return dtype

    def from_fetched(self, name: str, dtype: pl.DataType) -> pl.Expr:
        """Column ``name``, fetched as ``fetched_type``, typed as ``dtype``."""
        return pl.col(name)

    # --- bulk writes ---------------------------------------------------------------------

    def insert_tuples(
        self, conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """Insert rows (non-empty) already in driver values."""
        raise NotImplementedError

    def insert_driver_frame(self, conn: Connection, table: str, frame: pl.DataFrame) -> None:
        """Insert a frame (non-empty) already in driver values (``driver_frame``)."""
        self.insert_tuples(conn, table, frame.columns, list(frame.iter_rows()))

    def update_from_frame(self, conn: Connection, update: FrameUpdate) -> int:
        """Apply ``update`` (a non-empty frame); return the rows changed."""
        raise NotImplementedError

    def refresh_statistics(self, conn: Connection, table: str) -> None:
        """Let the planner see a table that just grew (nothing to do unless overridden)."""

    # --- reads and transactions ----------------------------------------------------------

    def cursor(self, raw: Any, *, server_side: bool) -> Any:
        """A driver cursor; ``server_side`` asks for one that streams, where there is one."""
        return raw.cursor()

    def consistent_read(self, conn: Connection) -> AbstractContextManager[Connection]:
        """``conn`` in one read transaction that sees a single state of the whole database."""
        raise NotImplementedError

    def read_only_source(self, conn: Connection) -> AbstractContextManager[Connection]:
        """``conn`` set up to read a source database without writing to it."""
        raise NotImplementedError

    @contextmanager
    def schema_upgrade(self, conn: Connection) -> Iterator[Connection]:
        """``conn`` in the one transaction a schema upgrade runs in (committed at the end)."""
        with conn.begin():
            yield conn


def impl_for(bind: Connection | Engine | Dialect) -> DialectImpl:
    """The implementation for a connection's, engine's or dialect's database."""
    dialect = bind if isinstance(bind, Dialect) else bind.dialect
    try:
        return DialectImpl._registry[dialect.name]
    except KeyError:
        raise ValueError(f"no dialect implementation for {dialect.name!r}") from None
