-- Extract cscs_case: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(case_no AS TEXT)       AS case_no,
  CAST(eff_date AS TEXT)      AS eff_date,
  CAST(liab_end_date AS TEXT) AS liab_end_date,
  CAST(pwc_client_no AS TEXT) AS pwc_client_no,
  CAST(nrp_client_no AS TEXT) AS nrp_client_no,
  CAST(dv_ind AS TEXT)        AS dv_ind,
  CAST(stop_act_ind AS TEXT)  AS stop_act_ind,
  CAST(enf_code AS TEXT)      AS enf_code
FROM cscs_case
