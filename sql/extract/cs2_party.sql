-- Extract cs2_party: every contract column as text, so SQLite and PostgreSQL give the same
-- form (a SQLite INTEGER or DATE column can hold any text). Read by csa_closure.legacy.
SELECT
  CAST(party_id AS TEXT)            AS party_id,
  CAST(family_name AS TEXT)         AS family_name,
  CAST(given_names AS TEXT)         AS given_names,
  CAST(birth_date AS TEXT)          AS birth_date,
  CAST(nino AS TEXT)                AS nino,
  CAST(address_line_1 AS TEXT)      AS address_line_1,
  CAST(address_line_2 AS TEXT)      AS address_line_2,
  CAST(address_line_3 AS TEXT)      AS address_line_3,
  CAST(address_line_4 AS TEXT)      AS address_line_4,
  CAST(address_line_5 AS TEXT)      AS address_line_5,
  CAST(postcode AS TEXT)            AS postcode,
  CAST(address_verified_on AS TEXT) AS address_verified_on,
  CAST(deceased_on AS TEXT)         AS deceased_on,
  CAST(employment AS TEXT)          AS employment
FROM cs2_party
