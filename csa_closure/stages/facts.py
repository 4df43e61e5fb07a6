"""The facts the policy decides on, read from the store for an as-of date.

One row per debt, with exactly the input columns ``csa_closure.policy`` documents. Personal
data never leaves the database here: only whether the NRP has a NINO, never the NINO.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.store.dialect import driver_value, read_frame

FACT_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "source_system": pl.String(),
    "scheme": pl.String(),
    "creditor": pl.String(),
    "balance_pence": pl.Int64(),
    "effective_date": pl.Date(),
    "liability_end_date": pl.Date(),
    "enforcement_code": pl.String(),
    "stop_acting": pl.Boolean(),
    "dv_marker": pl.Boolean(),
    "pwc_deceased_on": pl.Date(),
    "nrp_deceased_on": pl.Date(),
    "nrp_has_nino": pl.Boolean(),
    "nrp_address_verified_on": pl.Date(),
    "nrp_employment": pl.String(),
    "last_positive_payment_on": pl.Date(),
    "state": pl.String(),
}

_FACTS_SQL = """
SELECT d.debt_id, d.case_ref, d.source_system, c.scheme, d.creditor,
       d.opening_pence AS balance_pence,
       c.effective_date, c.liability_end_date, c.enforcement_code, c.stop_acting, c.dv_marker,
       pwc.deceased_on AS pwc_deceased_on,
       nrp.deceased_on AS nrp_deceased_on,
       CASE WHEN nrp.nino IS NOT NULL AND nrp.nino <> '' THEN 1 ELSE 0 END AS nrp_has_nino,
       nrp.address_verified_on AS nrp_address_verified_on,
       nrp.employment AS nrp_employment,
       pay.last_positive_payment_on,
       d.state
FROM debts d
JOIN cases c ON c.case_ref = d.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref
LEFT JOIN (
    SELECT case_ref, MAX(paid_on) AS last_positive_payment_on
    FROM payment_days
    WHERE positive_count > 0 AND paid_on <= ? {payments_filter}
    GROUP BY case_ref
) pay ON pay.case_ref = d.case_ref
"""


def debt_facts(
    conn: Connection,
    as_of: date,
    *,
    states: Sequence[str] | None = None,
    case_refs: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Facts for debts in ``states`` (all debts if None), optionally only ``case_refs``."""
    clauses = []
    selection: list[object] = []
    if states is not None:
        clauses.append(f"d.state IN ({', '.join('?' for _ in states)})")
        selection.extend(states)
    if case_refs is not None:
        clauses.append(f"d.case_ref IN ({', '.join('?' for _ in case_refs)})")
        selection.extend(case_refs)
    where = " AND ".join(clauses)
    # aggregate only the payments of the debts asked for, not the whole table
    payments_filter = (
        f"AND case_ref IN (SELECT d.case_ref FROM debts d WHERE {where})" if where else ""
    )
    sql = _FACTS_SQL.format(payments_filter=payments_filter)
    params: list[object] = [driver_value(conn, as_of), *(selection if where else [])]
    if where:
        sql += " WHERE " + where
        params.extend(selection)
    sql += " ORDER BY d.debt_id"
    schema = dict(FACT_SCHEMA)
    frame = read_frame(conn, (sql, params), {**schema, "nrp_has_nino": pl.Int64()})
    return frame.with_columns(pl.col("nrp_has_nino").cast(pl.Boolean))
