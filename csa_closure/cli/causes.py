"""The real cause of a failure to reach the store or write a file, in one line.

Each cause has its own message naming the path or host (never a row's data: the driver's own
text is only shown with -vv) and a documented exit code (``ExitCode`` in errors.py):

- the --db URL is not one we can use: BAD_INPUT;
- the store cannot be opened (no such database, nothing listening on the port, an unknown
  host, a refused login, a SQLite path whose folder does not exist, a file that is not
  SQLite, a read-only store): DATABASE_UNAVAILABLE;
- a working connection was lost (the server stopped or restarted): CONNECTION_LOST; that
  message is used only when this process had connected before;
- a file could not be written (a full disk, a read-only or forbidden folder):
  WRITE_FAILED.
"""

from __future__ import annotations

import errno
from pathlib import Path

import click
from sqlalchemy.engine import make_url

from csa_closure.errors import ExitCode
from csa_closure.store import engine as store_engine

_SQLITE_NOT_A_DATABASE = ("file is not a database", "file is encrypted or is not a database")


class CauseError(click.ClickException):
    """A one-line cause with its own exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.exit_code = code  # type: ignore[misc]  # click reads it per instance


def _where(url: str) -> tuple[str, str]:
    """(backend, where): the SQLite file, or host:port/database for PostgreSQL."""
    parsed = make_url(store_engine.normalise_url(url))
    if parsed.get_backend_name() == "sqlite":
        return "sqlite", str(parsed.database or "")
    port = parsed.port or 5432
    return "postgresql", f"{parsed.host or 'localhost'}:{port}/{parsed.database or ''}"


def database_cause(exc: BaseException, url: str) -> click.ClickException:
    """What went wrong reaching the store at ``url``, as the operator can act on it."""
    text = str(getattr(exc, "orig", exc) or exc).lower()
    backend, where = _where(url)
    unavailable = ExitCode.DATABASE_UNAVAILABLE
    if backend == "sqlite":
        folder = Path(where).parent
        if any(s in text for s in _SQLITE_NOT_A_DATABASE):
            return CauseError(f"{where} is not a SQLite database: check --db", unavailable)
        if "disk is full" in text or "disk i/o error" in text:
            return CauseError(
                f"the disk holding the store {where} is full (or failing): nothing more "
                "was written; free space and run the command again",
                ExitCode.WRITE_FAILED,
            )
        if "readonly database" in text or "read-only" in text:
            return CauseError(
                f"the store {where} is read-only for this user: check its permissions",
                unavailable,
            )
        if "unable to open database file" in text:
            if not folder.is_dir():
                return CauseError(
                    f"the folder {folder} (of the store in --db) does not exist: check the "
                    "path, or create the folder",
                    unavailable,
                )
            return CauseError(f"cannot open the store {where}: check its permissions", unavailable)
    else:
        if "does not exist" in text and "database" in text:
            return CauseError(
                f"there is no database {where.rsplit('/', 1)[1]!r} on {where.rsplit('/', 1)[0]}:"
                " check the name in --db, or create it",
                unavailable,
            )
        if "password authentication failed" in text or (
            "role" in text and "does not exist" in text
        ):
            return CauseError(
                f"PostgreSQL at {where} refused the login: check the user and password in --db",
                unavailable,
            )
        if "could not translate host name" in text or "name or service not known" in text:
            return CauseError(f"the host in --db ({where}) is unknown: check it", unavailable)
        if not store_engine.connected_before(url) and (
            "connection refused" in text or "timeout" in text or "could not connect" in text
        ):
            return CauseError(
                f"nothing is accepting connections at {where.rsplit('/', 1)[0]}: is "
                "PostgreSQL running there, and is the port in --db right?",
                unavailable,
            )
    if store_engine.connected_before(url):
        return CauseError(
            "lost the connection to the database (stopped, restarted or unreachable). Work "
            "committed before it stands and re-running the command is safe once the database "
            "is back (details with -vv).",
            ExitCode.CONNECTION_LOST,
        )
    return CauseError(
        f"could not open the store at {where} (details with -vv): check --db", unavailable
    )


def file_cause(exc: OSError) -> click.ClickException | None:
    """A failed write named by its cause and file, or None if it is not one we know."""
    name = exc.filename or "a file"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return CauseError(
            f"the disk is full writing {name}: nothing after the last completed step was "
            "kept; free space and run the command again",
            ExitCode.WRITE_FAILED,
        )
    if exc.errno == errno.EROFS:
        return CauseError(
            f"cannot write {name}: its file system is read-only; choose another folder",
            ExitCode.WRITE_FAILED,
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return CauseError(
            f"cannot write {name}: permission denied; choose a folder you may write to",
            ExitCode.WRITE_FAILED,
        )
    return None
