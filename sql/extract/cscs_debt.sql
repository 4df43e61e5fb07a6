-- Extract cscs_debt: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_no AS TEXT)  AS case_no,
  CAST(creditor AS TEXT) AS creditor,
  CAST(balance AS TEXT)  AS balance
FROM cscs_debt
