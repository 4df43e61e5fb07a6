"""Every CSV the project writes shows a formula-like value as text (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csa_closure.cli.output import echo_csv
from csa_closure.csvsafe import safe_cell, safe_frame, safe_text
from csa_closure.stages.intake import REJECTS_COLUMNS, rejects_csv

HOSTILE = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tTab", "\rReturn", "=HYPERLINK(x)"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_formula_like_value_gets_a_leading_quote(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["-1234", "+12.50", "0", "Smith", "a=b", "", "'=x", None, -5, 3])
def test_numbers_and_ordinary_values_are_left_alone(value: object) -> None:
    assert safe_cell(value) == value


@given(st.lists(st.text(alphabet="=+-@\t\r'0123456789.aZ \n", max_size=8), max_size=20))
def test_the_frame_version_is_the_cell_version(values: list[str]) -> None:
    found = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(
        safe_text(pl.col("v")).alias("v")
    )
    assert found["v"].to_list() == [safe_cell(v) for v in values]


def test_a_rejects_file_reads_back_as_text() -> None:
    rejections = pl.DataFrame(
        {
            "row_number": [2, 3],
            "document_id": ["=HYPERLINK(evil)", "D1"],
            "case_ref": ["@SUM(A1)", "C000000001"],
            "reason_code": ["BAD_DOCUMENT_ID", "LATE"],
            "detail": ["-1+1", "too late"],
        }
    ).select(REJECTS_COLUMNS)
    rows = list(csv.DictReader(io.StringIO(rejects_csv(rejections).decode())))
    assert rows[0] == {
        "row_number": "2",
        "document_id": "'=HYPERLINK(evil)",
        "case_ref": "'@SUM(A1)",
        "reason_code": "BAD_DOCUMENT_ID",
        "detail": "'-1+1",
    }
    assert rows[1]["case_ref"] == "C000000001"


def test_csv_output_reads_back_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    echo_csv([{"name": "=2+5", "pence": -1234, "note": "-£12"}], ["name", "pence", "note"])
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert row == {"name": "'=2+5", "pence": "-1234", "note": "'-£12"}


def test_only_string_columns_of_a_frame_change() -> None:
    frame = pl.DataFrame({"n": [-1], "s": ["-x"]})
    assert safe_frame(frame).to_dicts() == [{"n": -1, "s": "'-x"}]
