-- Extract cscs_client: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(client_no AS TEXT)     AS client_no,
  CAST(surname AS TEXT)       AS surname,
  CAST(forenames AS TEXT)     AS forenames,
  CAST(dob AS TEXT)           AS dob,
  CAST(nino AS TEXT)          AS nino,
  CAST(addr_1 AS TEXT)        AS addr_1,
  CAST(addr_2 AS TEXT)        AS addr_2,
  CAST(addr_3 AS TEXT)        AS addr_3,
  CAST(addr_4 AS TEXT)        AS addr_4,
  CAST(addr_5 AS TEXT)        AS addr_5,
  CAST(postcode AS TEXT)      AS postcode,
  CAST(addr_verified AS TEXT) AS addr_verified,
  CAST(dod AS TEXT)           AS dod,
  CAST(emp_code AS TEXT)      AS emp_code
FROM cscs_client
