"""The write-off notice rule, written once and read by the letters stage and resolve."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from csa_closure.domain.notice import owed_write_off_notice
from csa_closure.letters.due import DUE_INPUT_SCHEMA, letters_due
from csa_closure.stages.resolve import ready_to_write_off

D = date(2026, 6, 1)

# creditor, outcome, pwc died, nrp died -> owed to PWC, owed to NRP
CASES = [
    ("PWC", "write_off_notice", None, None, True, True),
    ("SOS", "write_off_notice", None, None, False, True),
    ("PWC", "write_off_silent", None, None, False, False),
    ("PWC", None, None, None, True, True),
    ("PWC", "write_off_notice", date(2026, 6, 1), None, False, True),  # died on D
    ("PWC", "write_off_notice", date(2026, 6, 2), None, True, True),  # died after D
    ("PWC", "write_off_notice", None, date(2025, 1, 1), True, False),
]


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"debt_id": i, "creditor": c, "outcome": o, "pwc_deceased_on": p, "nrp_deceased_on": n}
            for i, (c, o, p, n, _, _) in enumerate(CASES)
        ],
        schema={
            "debt_id": pl.Int64,
            "creditor": pl.String,
            "outcome": pl.String,
            "pwc_deceased_on": pl.Date,
            "nrp_deceased_on": pl.Date,
        },
    )


def test_who_is_owed_a_write_off_notice() -> None:
    owed = _frame().select(
        owed_write_off_notice("PWC", D).alias("pwc"), owed_write_off_notice("NRP", D).alias("nrp")
    )
    assert owed.rows() == [(pwc, nrp) for *_, pwc, nrp in CASES]
    with pytest.raises(ValueError, match="PWC or the NRP"):
        owed_write_off_notice("SOS", D)


def test_letters_and_resolve_read_the_same_rule() -> None:
    frame = _frame()
    debts = frame.with_columns(
        pl.col("debt_id").cast(pl.String).alias("case_ref"),
        pl.lit("write_off_pending").alias("state"),
        pl.lit(None, pl.String).alias("response"),
        pl.lit(None, pl.Date).alias("reminder_due"),
        pl.lit(None, pl.Date).alias("response_deadline"),
        pl.lit("P1").alias("pwc_party_ref"),
        pl.lit("P2").alias("nrp_party_ref"),
    ).select(list(DUE_INPUT_SCHEMA))
    due = letters_due(debts, D)
    built = {(r["debt_id"], r["recipient"]) for r in due.to_dicts()}
    # a debt whose every due notice was sent (and only those) is ready to write off
    told = frame.with_columns(
        pl.struct("debt_id")
        .map_elements(lambda r: (r["debt_id"], "PWC") in built, pl.Boolean)
        .alias("pwc_told"),
        pl.struct("debt_id")
        .map_elements(lambda r: (r["debt_id"], "NRP") in built, pl.Boolean)
        .alias("nrp_told"),
        pl.lit("NO_RESPONSE").alias("reason"),
    )
    assert told.select(ready_to_write_off(D)).to_series().all()
    # and one notice fewer than the rule asks for holds each notified debt back
    untold = told.with_columns(pl.lit(False).alias("nrp_told"))
    held = untold.select(ready_to_write_off(D)).to_series().to_list()
    assert held == [not nrp for *_, _pwc, nrp in CASES]
