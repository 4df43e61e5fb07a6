"""Print files streamed from frames (``write_print_frames``) are ``write_print_batch``'s files
byte for byte, however the letters are chunked, with the same owner-only, write-once rules."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csa_closure.channels import PrintBatchConflict, write_print_batch, write_print_frames
from csa_closure.letters import LettersConfig
from csa_closure.letters.compose import LETTER_FRAME_SCHEMA, compose_frame
from tests.letters.test_letters_compose_frame import BUNDLED, OTHER, _prepared, _row, letters


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o000)
    yield
    os.umask(old)


def _composed(
    generated: list[dict[str, Any]], config: LettersConfig
) -> tuple[list[Any], pl.DataFrame]:
    """The letters prepare_letter composes, and the same letters composed as a frame."""
    prepared = [_prepared(x, config) for x in generated]
    frame = compose_frame(
        pl.DataFrame([_row(x) for x in generated], schema=LETTER_FRAME_SCHEMA), config
    )
    keep = [p is not None for p in prepared]
    return [p for p in prepared if p is not None], frame.filter(pl.Series(keep, dtype=pl.Boolean))


def _chunks(frame: pl.DataFrame, cuts: list[int]) -> Iterator[pl.DataFrame]:
    start = 0
    for cut in sorted({min(c, frame.height) for c in cuts} | {frame.height}):
        yield frame.slice(start, cut - start)
        start = cut


def _contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(letters, min_size=1, max_size=40),
    st.sampled_from([BUNDLED, OTHER]),
    st.lists(st.integers(0, 40), max_size=5),
    st.sampled_from([100_000, 1, 4]),
)
def test_the_streamed_files_are_write_print_batchs_byte_for_byte(
    tmp_path_factory: pytest.TempPathFactory,
    generated: list[dict[str, Any]],
    config: LettersConfig,
    cuts: list[int],
    max_rows: int,
) -> None:
    prepared, frame = _composed(generated, config)
    base = tmp_path_factory.mktemp("print")
    expected = write_print_batch(base / "letters", 9, prepared, config, max_rows=max_rows)
    found = write_print_frames(base / "frames", 9, _chunks(frame, cuts), config, max_rows=max_rows)
    assert _contents(found.directory) == _contents(expected.directory)
    assert found.files == expected.files and found.manifest_sha256 == expected.manifest_sha256
    assert found.written and found.references == expected.references


def _batch(n: int = 12) -> tuple[list[Any], pl.DataFrame]:
    generated = [
        {
            "reference": f"csa-{i:020x}",
            "kind": [
                ("representation", "PWC"),
                ("write_off_notice", "NRP"),
                ("write_off_notice", "PWC"),
            ][i % 3],
            "party": {
                "given_names": f"Parent{i}",
                "family_name": "Example, Jr",
                "address_line_1": f'{i} "The" Street',
                "address_line_2": None if i % 2 else "Upper, Flat",
                "address_line_3": "Testtown",
                "address_line_4": None,
                "address_line_5": None,
                "postcode": "m1 1ae",
            },
            "deceased_on": None,
            "case_ref": f"C{i:09d}",
            "amount_pence": 123_456 * i,
            "letter_date": date(2019, 4, 1),
            "decision_date": date(2019, 3, 1),
            "response_deadline": None,
            "first_letter_date": None,
        }
        for i in range(n)
    ]
    return _composed(generated, BUNDLED)


def test_writing_the_same_frames_again_writes_nothing(tmp_path: Path) -> None:
    _, frame = _batch()
    first = write_print_frames(tmp_path, 7, [frame.head(5), frame.tail(7)], BUNDLED)
    assert first.written and first.row_count == 12
    assert stat.S_IMODE(first.directory.stat().st_mode) == 0o700
    for path in first.directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in first.directory.iterdir()}
    again = write_print_frames(tmp_path, 7, [frame], BUNDLED)
    assert not again.written and again.manifest_sha256 == first.manifest_sha256
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in first.directory.iterdir()}
    assert after == before


def test_a_crash_before_the_manifest_is_finished_on_the_rerun(tmp_path: Path) -> None:
    _, frame = _batch()
    first = write_print_frames(tmp_path, 7, [frame], BUNDLED)
    (first.directory / "manifest.json").unlink()
    (first.directory / first.files[0].name).unlink()
    again = write_print_frames(tmp_path, 7, [frame], BUNDLED)
    assert again.written and again.manifest_sha256 == first.manifest_sha256


def test_a_different_file_in_the_same_place_is_refused(tmp_path: Path) -> None:
    _, frame = _batch()
    first = write_print_frames(tmp_path, 7, [frame], BUNDLED)
    before = _contents(first.directory)
    changed = frame.with_columns(pl.lit("£0.01").alias("amount"))
    with pytest.raises(PrintBatchConflict, match="differs"):
        write_print_frames(tmp_path, 7, [changed], BUNDLED)
    assert _contents(first.directory) == before  # nothing overwritten, no temporary left


def test_a_failure_part_way_leaves_nothing(tmp_path: Path) -> None:
    _, frame = _batch()

    def frames() -> Iterator[pl.DataFrame]:
        yield frame.head(6)
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        write_print_frames(tmp_path / "out", 7, frames(), BUNDLED)
    assert list((tmp_path / "out").iterdir()) == []  # not even the batch's directory


def test_bad_letters_are_refused_and_nothing_is_left(tmp_path: Path) -> None:
    _, frame = _batch()
    with pytest.raises(ValueError, match="twice"):
        write_print_frames(tmp_path, 1, [frame, frame.head(1)], BUNDLED)
    with pytest.raises(ValueError, match="3 to 7 lines"):
        short = frame.with_columns(
            pl.lit(None, pl.String).alias(f"address_line_{n}") for n in (3, 4)
        )
        write_print_frames(tmp_path, 1, [short], BUNDLED)
    with pytest.raises(ValueError, match="no value for placeholder amount_owed"):
        write_print_frames(
            tmp_path, 1, [frame.with_columns(pl.lit(None, pl.String).alias("amount"))], BUNDLED
        )
    with pytest.raises(ValueError, match="batch id"):
        write_print_frames(tmp_path, "../x", [frame], BUNDLED)
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_files_are_removed(tmp_path: Path) -> None:
    _, frame = _batch()
    directory = tmp_path / "batch-7"
    os.mkdir(directory, 0o700)
    dead = directory / ".batch-7-2a9bda12-8b25-4cc8-a508-9e1f2d6700f7.999999999.tmp"
    dead.write_bytes(b"half a file")
    alive = directory / f".batch-7-x.{os.getppid()}.tmp"
    alive.write_bytes(b"another writer's")
    write_print_frames(tmp_path, 7, [frame], BUNDLED)
    assert not dead.exists() and alive.exists()


def test_an_empty_batch_writes_just_a_manifest(tmp_path: Path) -> None:
    _, frame = _batch()
    batch = write_print_frames(tmp_path, 3, [frame.clear()], BUNDLED)
    assert batch.files == () and batch.row_count == 0
    assert [p.name for p in batch.directory.iterdir()] == ["manifest.json"]
