"""read_legacy(): every contract table as text, from SQLite and PostgreSQL, read-only."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from csa_closure.errors import InputError
from csa_closure.legacy.contract import TABLES
from csa_closure.legacy.extract import extraction_sql, read_legacy
from csa_closure.simulation.legacy import legacy_ddl, sql_statements
from csa_closure.store.engine import make_engine


def _create(
    url: str, drop: str | None = None, without_column: tuple[str, str] | None = None
) -> None:
    """A small replica. SQLite through plain sqlite3 (as a legacy export would be: no WAL)."""
    if url.startswith("sqlite:///"):
        connection = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        _fill(connection.execute, "sqlite", drop, without_column)
        connection.close()
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        _fill(conn.exec_driver_sql, "postgresql", drop, without_column)
    engine.dispose()


ROWS = (
    "INSERT INTO cs2_party (party_id, family_name, birth_date, employment) "
    "VALUES (12, 'Jones', '1970-02-01', 'EMPLOYED')",
    "INSERT INTO cs2_case (case_id, case_ref, scheme, effective_date, pwc_party_id, "
    "nrp_party_id, dv_marker, stop_acting) "
    "VALUES (7, 'S000000007', '2003', '2005-01-02', 12, 13, 0, 1)",
    "INSERT INTO cs2_arrears VALUES (7, 'PWC', 123456789)",
    "INSERT INTO cscs_debt VALUES ('C000000001', 'PWC', '12.50'), ('C000000001', 'SOS', NULL)",
    "INSERT INTO extract_control VALUES ('CSCS', 0, 1250, 0, '2019-03-31'), "
    "('CS2', 1, 123456789, 0, '2019-03-31')",
)


def _fill(
    execute: Callable[[str], object],
    dialect: str,
    drop: str | None,
    without_column: tuple[str, str] | None,
) -> None:
    ddl = legacy_ddl(dialect)
    if without_column:
        table, column = without_column
        start = ddl.index(f"CREATE TABLE {table}")
        ddl = ddl[:start] + ddl[start:].replace(f"  {column} ", f"  renamed_{column} ", 1)
    for statement in [*sql_statements(ddl), *ROWS]:
        execute(statement)
    if drop:
        execute(f"DROP TABLE {drop}")


def test_every_table_is_read_as_text_the_same_on_both_databases(db_url: str) -> None:
    _create(db_url)
    extract = read_legacy(db_url)
    assert list(extract.tables) == list(TABLES)
    for table, frame in extract.tables.items():
        assert frame.columns == list(TABLES[table])
        assert set(frame.dtypes) <= {pl.String}
    assert extract["cs2_case"].row(0) == (
        "7", "S000000007", "2003", "2005-01-02", None, "12", "13", "0", "1", None,
    )  # fmt: skip
    assert extract["cs2_arrears"].rows() == [("7", "PWC", "123456789")]
    assert extract["cscs_debt"].rows() == [
        ("C000000001", "PWC", "12.50"),
        ("C000000001", "SOS", None),
    ]
    assert extract.control.rows() == [
        ("CSCS", "0", "1250", "0", "2019-03-31"),
        ("CS2", "1", "123456789", "0", "2019-03-31"),
    ]
    assert extract.row_counts["cs2_party"] == 1
    assert extract.row_counts["cscs_client"] == 0


def test_sqlite_typed_columns_holding_rubbish_reach_the_normaliser_as_text(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    _create(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO cs2_arrears VALUES (8, 'SOS', 'abc')")
        conn.execute("INSERT INTO cs2_arrears VALUES (9, 'SOS', 12.5)")
        conn.execute("INSERT INTO cs2_payment VALUES ('x', '2009-02-31', 100)")
    extract = read_legacy(str(path))
    assert extract["cs2_arrears"]["amount_pence"].to_list() == ["123456789", "abc", "12.5"]
    assert extract["cs2_payment"].rows() == [("x", "2009-02-31", "100")]


def test_reading_in_small_batches_gives_the_same_frames(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    _create(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO cscs_payment VALUES (?, ?, ?)",
            [(f"C{i:09d}", "01/01/2010", f"{i}.00") for i in range(1, 26)],
        )
    whole = read_legacy(str(path))
    batched = read_legacy(str(path), batch_size=4)
    for table in TABLES:
        assert batched[table].equals(whole[table]), table
    assert batched["cscs_payment"].height == 25


def test_a_sqlite_source_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    _create(f"sqlite:///{path}")
    before = path.read_bytes()
    read_legacy(str(path))
    assert path.read_bytes() == before
    assert not (tmp_path / "legacy.db-wal").exists()


def test_one_system_can_be_read_alone(tmp_path: Path) -> None:
    path = tmp_path / "legacy.db"
    _create(f"sqlite:///{path}")
    extract = read_legacy(str(path), systems=["CS2"])
    assert extract.systems == ("CS2",)
    assert set(extract.tables) == {
        "cs2_party",
        "cs2_case",
        "cs2_arrears",
        "cs2_payment",
        "extract_control",
    }
    with pytest.raises(ValueError, match="systems"):
        read_legacy(str(path), systems=["CS3"])


@pytest.mark.parametrize("table", ["cscs_client", "cs2_payment", "extract_control"])
def test_a_missing_contract_table_is_refused_by_name(db_url: str, table: str) -> None:
    _create(db_url, drop=table)
    with pytest.raises(InputError, match=f"missing contract table\\(s\\): {table}"):
        read_legacy(db_url)


def test_a_missing_contract_column_is_refused_by_name(db_url: str) -> None:
    _create(db_url, without_column=("cs2_case", "enforcement"))
    with pytest.raises(InputError, match="cs2_case is missing contract column\\(s\\): enforcement"):
        read_legacy(db_url)


def test_a_missing_sqlite_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_legacy(str(tmp_path / "nope.db"))
    assert not (tmp_path / "nope.db").exists()


def test_every_extraction_query_selects_every_contract_column_as_text() -> None:
    for table, columns in TABLES.items():
        sql = extraction_sql(table)
        for column in columns:
            assert f"CAST({column} AS TEXT)" in sql
        assert f"FROM {table}" in sql
