-- Extract extract_control: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(system AS TEXT)            AS system,
  CAST(case_count AS TEXT)        AS case_count,
  CAST(pwc_arrears_pence AS TEXT) AS pwc_arrears_pence,
  CAST(sos_arrears_pence AS TEXT) AS sos_arrears_pence,
  CAST(as_at AS TEXT)             AS as_at
FROM extract_control
