"""CSV cells a spreadsheet shows as text: the one home of the formula-injection rule.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage return
as a formula (OWASP "CSV Injection"). Every CSV the project writes (print files, rejects files,
``--format csv`` output, the ledger) passes its text cells through :func:`safe_cell` (one
value) or :func:`safe_text` (a polars column), which put a single quote in front of such a
value, so the spreadsheet shows it as the text it is. A plain number (``-1234``, ``+12.50``) is
not a formula and is left as it is, so amounts in pence stay numbers. Numbers, dates and other
non-text values are never changed.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")
_FORMULA_FRAME = "^[=+\\-@\\t\\r]"
_NUMBER_FRAME = "^" + _NUMBER.pattern + "$"


def safe_cell(value: Any) -> Any:
    """``value`` as a CSV cell: text that a spreadsheet would run gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: list[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


def safe_text(column: pl.Expr) -> pl.Expr:
    """:func:`safe_cell` over a string column (null stays null)."""
    return (
        pl.when(column.str.contains(_FORMULA_FRAME) & ~column.str.contains(_NUMBER_FRAME))
        .then(pl.lit("'") + column)
        .otherwise(column)
    )


def safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every string column of ``frame`` through :func:`safe_text` (others as they are)."""
    return frame.with_columns(
        safe_text(pl.col(name)).alias(name)
        for name, dtype in frame.schema.items()
        if dtype == pl.String
    )
