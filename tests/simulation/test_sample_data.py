"""sample_data/legacy_sample.sql: what the generator makes now, and it covers everything."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from csa_closure.legacy.extract import read_legacy
from csa_closure.legacy.normalise import normalise
from csa_closure.simulation.legacy import (
    DIRTY_KIND_NAMES,
    build_legacy_book,
    generate_legacy,
    load_legacy_sql,
    render_legacy_sql,
)

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data" / "legacy_sample.sql"
# How sample_data/README.md says the file was made.
CASES, SEED = 400, 20190331


def test_the_committed_sample_is_what_the_generator_makes_now() -> None:
    expected = render_legacy_sql(build_legacy_book(CASES, SEED, ensure_coverage=True))
    committed = SAMPLE.read_text(encoding="utf-8")
    assert committed == expected, (
        "sample_data/legacy_sample.sql is stale: regenerate it as sample_data/README.md says"
    )


def test_the_sample_loads_and_covers_every_dirty_kind_in_both_systems(tmp_path: Path) -> None:
    database = tmp_path / "legacy.db"
    counts = load_legacy_sql(SAMPLE, database)
    assert counts["cscs_case"] + counts["cs2_case"] == CASES
    book = build_legacy_book(CASES, SEED, ensure_coverage=True)
    for system in ("CSCS", "CS2"):
        planted = book.planted.filter(pl.col("source_system") == system)
        assert set(planted["kind"].to_list()) == set(DIRTY_KIND_NAMES), system
    pulled = normalise(read_legacy(str(database)))
    assert pulled.reconciliation()["difference_pence"].to_list() == [0] * 6
    held = pulled.quarantine.select("source_system", "case_ref", "item_kind").unique()
    assert (
        held.join(book.planted, on=["source_system", "case_ref", "item_kind"], how="anti").height
        == 0
    )
    assert (
        book.planted.join(held, on=["source_system", "case_ref", "item_kind"], how="anti").height
        == 0
    )
    assert (
        book.coverage.join(pulled.cases, on=["source_system", "case_ref"], how="anti").height == 0
    )


def test_the_dump_loads_into_the_same_replica_as_a_direct_sqlite_write(tmp_path: Path) -> None:
    direct = tmp_path / "direct.db"
    dumped = tmp_path / "dump.sql"
    loaded = tmp_path / "loaded.db"
    generate_legacy(str(direct), 150, 4, dirty_rate=0.03, ensure_coverage=False)
    generate_legacy(str(dumped), 150, 4, dirty_rate=0.03, ensure_coverage=False)
    load_legacy_sql(dumped, loaded)
    left, right = read_legacy(str(direct)), read_legacy(str(loaded))
    for table in left.tables:
        assert left[table].equals(right[table]), table
