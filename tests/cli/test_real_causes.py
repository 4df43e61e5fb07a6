"""The real cause in one line: each way of pointing at a store or a folder that cannot work
gets its own message (the path or host, no personal data) and documented exit code; read-only
commands never create a store file; "lost the connection" only for a connection that worked."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy.exc
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from csa_closure.cli import causes, cli
from csa_closure.errors import ExitCode
from csa_closure.store import engine as store_engine
from tests.conftest import _pg_server_url


def _run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args])


def _one_line(result: Result) -> str:
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_wrong_url_is_bad_input() -> None:
    result = _run("mysql://someone@db.example/book", "report", "runs")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "unsupported database 'mysql'" in _one_line(result)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://bob:s3cret-pw@db.example:54x32/book",  # does not parse
        "postgresql+psycopg2://bob:s3cret-pw@db.example/book",  # parses, wrong driver
    ],
)
def test_a_wrong_url_never_shows_its_password(url: str) -> None:
    result = _run(url, "report", "runs")
    assert result.exit_code == ExitCode.BAD_INPUT
    line = _one_line(result)
    assert "s3cret-pw" not in line
    assert "bob:***@db.example" in line


def test_a_sqlite_path_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    store = tmp_path / "no-such-folder" / "store.db"
    for args in (["report", "runs"], ["db", "upgrade"], ["db", "status"]):
        result = _run(f"sqlite:///{store}", *args)
        assert result.exit_code == ExitCode.DATABASE_UNAVAILABLE, (args, result.output)
        assert f"the folder {store.parent} does not exist" in _one_line(result)
    assert not store.parent.exists()


def test_read_only_commands_never_create_a_store_file(tmp_path: Path) -> None:
    store = tmp_path / "typo.db"
    for args in (["report", "runs"], ["db", "status"], ["quarantine", "list"], ["assess"]):
        result = _run(f"sqlite:///{store}", *args)
        assert result.exit_code == ExitCode.SCHEMA_NOT_CURRENT, (args, result.output)
        assert f"there is no working store at {store}" in _one_line(result)
        assert not store.exists()
    made = _run(f"sqlite:///{store}", "db", "upgrade")  # the one command that makes one
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_bytes(b"these are an operator's notes, not a database\n" * 100)
    result = _run(f"sqlite:///{notes}", "report", "runs")
    assert result.exit_code == ExitCode.DATABASE_UNAVAILABLE, result.output
    assert f"{notes} is not a SQLite database" in _one_line(result)


def test_a_closed_port_is_not_a_lost_connection() -> None:
    result = _run("postgresql+psycopg://postgres@127.0.0.1:1/test", "report", "runs")
    assert result.exit_code == ExitCode.DATABASE_UNAVAILABLE, result.output
    line = _one_line(result)
    assert "nothing is accepting connections at 127.0.0.1:1" in line
    assert "lost the connection" not in line


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_named() -> None:
    server = make_url(_pg_server_url() or "")
    missing = server.set(database="csa_closure_no_such_db").render_as_string(hide_password=False)
    result = _run(missing, "report", "runs")
    assert result.exit_code == ExitCode.DATABASE_UNAVAILABLE, result.output
    assert "there is no database 'csa_closure_no_such_db'" in _one_line(result)


def test_lost_the_connection_only_after_a_connection_worked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dropped = sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly")
    )
    url = "postgresql+psycopg://postgres@db.example:5432/book"
    monkeypatch.setattr(store_engine, "_connected", set())
    never = causes.database_cause(dropped, url)
    assert never.exit_code == ExitCode.DATABASE_UNAVAILABLE
    assert "could not open the store at db.example:5432/book" in never.message
    monkeypatch.setattr(store_engine, "_connected", {store_engine.redacted(url)})
    lost = causes.database_cause(dropped, url)
    assert lost.exit_code == ExitCode.CONNECTION_LOST
    assert "lost the connection" in lost.message


@pytest.mark.parametrize(
    ("code", "says"),
    [
        (errno.ENOSPC, "the disk is full writing"),
        (errno.EROFS, "its file system is read-only"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_file_that_cannot_be_written_names_the_cause_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, says: str
) -> None:
    # the OS error injected at the write (the test machine runs as root, and has no small
    # file system to fill)
    out = tmp_path / "out" / "legacy.db"
    out.parent.mkdir()

    def refuse(path: str) -> None:
        raise OSError(code, os.strerror(code), path)

    monkeypatch.setattr("csa_closure.simulation.legacy.create_owner_only", refuse)
    result = CliRunner().invoke(
        cli, ["sample", "legacy", "--cases", "10", "--seed", "1", "--out", str(out)]
    )
    assert result.exit_code == ExitCode.WRITE_FAILED, result.output
    line = _one_line(result)
    assert says in line and str(out) in line


def test_sample_legacy_writes_its_replica_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        for name in ("legacy.db", "legacy.sql"):
            out = tmp_path / name
            result = CliRunner().invoke(
                cli, ["sample", "legacy", "--cases", "10", "--seed", "1", "--out", str(out)]
            )
            assert result.exit_code == 0, result.output
            assert stat.S_IMODE(out.stat().st_mode) == 0o600, name
    finally:
        os.umask(old)
