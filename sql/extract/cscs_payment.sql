-- Extract cscs_payment: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_no AS TEXT)  AS case_no,
  CAST(pay_date AS TEXT) AS pay_date,
  CAST(amount AS TEXT)   AS amount
FROM cscs_payment
