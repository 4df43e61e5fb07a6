-- Extract cs2_case: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_id AS TEXT)            AS case_id,
  CAST(case_ref AS TEXT)           AS case_ref,
  CAST(scheme AS TEXT)             AS scheme,
  CAST(effective_date AS TEXT)     AS effective_date,
  CAST(liability_end_date AS TEXT) AS liability_end_date,
  CAST(pwc_party_id AS TEXT)       AS pwc_party_id,
  CAST(nrp_party_id AS TEXT)       AS nrp_party_id,
  CAST(dv_marker AS TEXT)          AS dv_marker,
  CAST(stop_acting AS TEXT)        AS stop_acting,
  CAST(enforcement AS TEXT)        AS enforcement
FROM cs2_case
