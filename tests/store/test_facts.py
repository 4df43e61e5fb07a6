"""The facts read for the policy: typed the same on SQLite and PostgreSQL, no personal data."""

from __future__ import annotations

from datetime import date

import polars as pl

from csa_closure.context import Context
from csa_closure.stages.facts import FACT_SCHEMA, debt_facts
from tests.support.builders import BookBuilder


def test_facts_are_typed_and_payments_after_the_as_of_date_are_ignored(ctx: Context) -> None:
    book = BookBuilder(ctx)
    dead = book.party(deceased_on=date(2018, 1, 1), nino=None, employment="BENEFITS")
    case = book.case("C000000007", nrp=dead, dv_marker=True, liability_end_date=None)
    book.debt(case, "PWC", 12_345)
    book.debt(case, "SOS", 0, state="closed")
    book.payment(case, date(2019, 1, 10), 1_000)
    book.payment(case, date(2019, 2, 1), -500)  # a reversal is not a payment
    book.payment(case, date(2019, 4, 1), 1_000)  # after the as-of date: ignored
    with ctx.engine.connect() as conn:
        facts = debt_facts(conn, ctx.as_of)
        pulled = debt_facts(conn, ctx.as_of, states=["pulled"])
    assert facts.schema == pl.Schema(FACT_SCHEMA)
    pwc = facts.filter(pl.col("creditor") == "PWC").row(0, named=True)
    assert pwc["balance_pence"] == 12_345
    assert pwc["last_positive_payment_on"] == date(2019, 1, 10)
    assert pwc["nrp_deceased_on"] == date(2018, 1, 1)
    assert pwc["nrp_has_nino"] is False
    assert pwc["nrp_employment"] == "BENEFITS"
    assert pwc["dv_marker"] is True and pwc["stop_acting"] is False
    assert pwc["liability_end_date"] is None
    assert pwc["effective_date"] == date(2005, 6, 1)
    assert pulled["creditor"].to_list() == ["PWC"]
    # a selection still sees its own payments (only the selected cases' are aggregated)
    assert pulled["last_positive_payment_on"].to_list() == [date(2019, 1, 10)]
    assert not any("name" in c or "address_line" in c or c == "nino" for c in facts.columns)
