-- Extract cs2_arrears: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_id AS TEXT)      AS case_id,
  CAST(owed_to AS TEXT)      AS owed_to,
  CAST(amount_pence AS TEXT) AS amount_pence
FROM cs2_arrears
