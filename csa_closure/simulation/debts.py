"""A synthetic debts frame (the ``compute_features`` input contract), vectorised and
deterministic, for benchmarks and tests of the policy at scale. No personal data: case
references are made up and there are no names or addresses.
"""

from __future__ import annotations

from datetime import date

import polars as pl


def _draw(index: pl.Expr, salt: int, modulus: int) -> pl.Expr:
    """A deterministic pseudo-random integer in [0, modulus) for each row."""
    return (index.hash(seed=salt) % modulus).cast(pl.Int64)


def synthetic_debts(n: int, as_of: date, seed: int = 0) -> pl.DataFrame:
    """``n`` debts (two per case for about a quarter of cases), for the as-of date ``as_of``.

    The mix is loosely shaped on the real book: most balances are small, a few are large;
    about a third of cases have ongoing liability or recent payments; a few parents have died.
    """
    i = pl.int_range(0, n, dtype=pl.Int64)
    d = pl.lit(as_of, dtype=pl.Date)

    def draw(salt: int, modulus: int) -> pl.Expr:
        return _draw(i, seed * 1_000 + salt, modulus)

    def days_before(salt: int, span: int) -> pl.Expr:
        return d - pl.duration(days=draw(salt, span))

    def sometimes(salt: int, percent: int, value: pl.Expr) -> pl.Expr:
        return pl.when(draw(salt, 100) < percent).then(value).otherwise(None)

    # Skewed balances: a quarter tiny, most hundreds to thousands, a tail of tens of thousands.
    band = draw(1, 100)
    balance = (
        pl.when(band < 3)
        .then(0)
        .when(band < 20)
        .then(draw(2, 10_000))
        .when(band < 75)
        .then(draw(3, 200_000))
        .when(band < 96)
        .then(draw(4, 1_500_000))
        .otherwise(draw(5, 5_000_000))
    )
    case_no = i // 4 * 3 + pl.when(i % 4 == 3).then(pl.lit(0)).otherwise(i % 4)
    sos = (i % 4 == 3).alias("sos")
    frame = pl.select(
        i.alias("debt_id") + 1,
        pl.concat_str(pl.lit("C"), (case_no + 100_000_000).cast(pl.String)).alias("case_ref"),
        pl.when(draw(6, 100) < 70)
        .then(pl.lit("CSCS"))
        .otherwise(pl.lit("CS2"))
        .alias("source_system"),
        pl.when(draw(7, 100) < 60).then(pl.lit("1993")).otherwise(pl.lit("2003")).alias("scheme"),
        pl.when(sos).then(pl.lit("SOS")).otherwise(pl.lit("PWC")).alias("creditor"),
        balance.alias("balance_pence"),
        days_before(8, 25 * 365).alias("effective_date"),
        sometimes(9, 85, d - pl.duration(days=draw(10, 3_650) - 30)).alias("liability_end_date"),
        sometimes(11, 4, pl.lit("ENF") + (draw(12, 9) + 1).cast(pl.String)).alias(
            "enforcement_code"
        ),
        (draw(13, 100) < 3).alias("stop_acting"),
        (draw(14, 100) < 2).alias("dv_marker"),
        sometimes(15, 2, days_before(16, 5_000)).alias("pwc_deceased_on"),
        sometimes(17, 3, days_before(18, 5_000)).alias("nrp_deceased_on"),
        (draw(19, 100) < 80).alias("nrp_has_nino"),
        sometimes(20, 60, days_before(21, 3_000)).alias("nrp_address_verified_on"),
        pl.lit(["EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN"])
        .list.get(draw(22, 4))
        .alias("nrp_employment"),
        sometimes(23, 45, days_before(24, 2_000)).alias("last_positive_payment_on"),
    )
    return frame
