-- Extract cs2_payment: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_id AS TEXT)      AS case_id,
  CAST(received_on AS TEXT)  AS received_on,
  CAST(amount_pence AS TEXT) AS amount_pence
FROM cs2_payment
