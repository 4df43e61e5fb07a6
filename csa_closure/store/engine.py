"""Engine set-up for the working store (and for reading a legacy replica).

SQLite is the embedded, single-operator default: every connection gets WAL, foreign keys and a
busy timeout. PostgreSQL (``postgresql+psycopg://``) is the shared production store.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

from csa_closure.errors import DatabaseUnavailable, SchemaNotCurrent, UsageError


class NoStore(SchemaNotCurrent):
    """A read-only command was pointed at a SQLite store that does not exist (never made)."""


SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL makes NORMAL durable against application crashes (kill -9); only a power loss
    # can lose the last transactions, which a re-run then redoes.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def normalise_url(url: str) -> str:
    """Accept the driver-less PostgreSQL spellings operators type, and plain file paths."""
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url[len("postgres://") :]
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    elif "://" not in url:
        url = f"sqlite:///{url}"
    return url


def create_owner_only(database: str | None) -> None:
    """Create a new SQLite store file readable by its owner only: it will hold parents'
    personal data (its write-ahead log and shared-memory files take the same mode)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # (no directory: SQLite says)
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


# the databases this process has opened a connection to (see connected_before)
_connected: set[str] = set()


def _noting_connections(engine: Engine) -> Engine:
    where = engine.url.render_as_string(hide_password=True)
    event.listen(engine, "connect", lambda _conn, _record: _connected.add(where))
    return engine


def connected_before(url: str) -> bool:
    """True once this process has opened a connection to ``url``: a later connection failure
    is then a lost connection, not a store that was never reachable."""
    return redacted(url) in _connected


def make_engine(url: str, *, echo: bool = False, create: bool = True) -> Engine:
    """An engine for ``url`` with the store's connection settings. With ``create=False`` a
    SQLite store file that does not exist is refused rather than created (read-only use)."""
    url = normalise_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError
        # a URL that does not parse cannot be redacted by SQLAlchemy: mask what looks like
        # user:password@ so a mistyped URL never puts a password in a message
        shown = re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)
        raise UsageError(f"not a database URL: {shown!r} ({exc})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        on_disk = database not in ("", ":memory:") and not database.startswith("file:")
        folder = os.path.dirname(os.path.abspath(database))
        if on_disk and not os.path.isdir(folder):
            raise DatabaseUnavailable(
                f"the folder {folder} does not exist (for the SQLite database {database}): "
                "check the path, or create the folder"
            )
        if not create and on_disk and not os.path.exists(database):
            raise NoStore(
                f"there is no working store at {database}: check --db, or create one "
                "with csa-closure db upgrade"
            )
        if create:
            create_owner_only(database)
        engine = create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return _noting_connections(engine)
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise UsageError(
                f"use the psycopg driver for PostgreSQL: postgresql+psycopg://… "
                f"(got {redacted(url)!r})"
            )
        return _noting_connections(create_engine(parsed, echo=echo, pool_pre_ping=True))
    raise UsageError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def redacted(url: str) -> str:
    """The URL with any password hidden, for messages and run records."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)
