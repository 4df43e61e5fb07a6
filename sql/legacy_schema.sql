-- The legacy CSA replica's schema: CSCS (1993 scheme) and CS2 (2003 scheme) tables and the
-- extract control totals, copied verbatim from the legacy-CSA contract. The toolkit reads
-- these tables and never writes to them; the sample generator creates them for tests/demos.
-- Do not edit: the legacy systems fix the table and column names.

-- CSCS tables
CREATE TABLE cscs_client (
  client_no     TEXT PRIMARY KEY,  -- 'P' + 9 digits
  surname       TEXT,
  forenames     TEXT,
  dob           TEXT,              -- DD/MM/YYYY
  nino          TEXT,              -- National Insurance number; NULL or '' when unknown
  addr_1        TEXT, addr_2 TEXT, addr_3 TEXT, addr_4 TEXT, addr_5 TEXT,
  postcode      TEXT,
  addr_verified TEXT,              -- DD/MM/YYYY the address was last confirmed; NULL/'' never
  dod           TEXT,              -- date of death DD/MM/YYYY; NULL/'' when not known deceased
  emp_code      TEXT               -- 'E' employed, 'S' self-employed, 'B' on benefits, 'U' unknown
);
CREATE TABLE cscs_case (
  case_no       TEXT PRIMARY KEY,  -- 'C' + 9 digits
  eff_date      TEXT,              -- effective date of the first assessment, DD/MM/YYYY
  liab_end_date TEXT,              -- date the ongoing liability ended; NULL/'' = still ongoing
  pwc_client_no TEXT,              -- person with care (receiving parent) -> cscs_client
  nrp_client_no TEXT,              -- non-resident (paying) parent -> cscs_client
  dv_ind        TEXT,              -- 'Y'/'N' domestic violence (good cause) marker
  stop_act_ind  TEXT,              -- 'Y'/'N' person with care asked the agency to stop acting
  enf_code      TEXT               -- enforcement in force: NULL/'' none, 'DEO', 'LO', 'CO', 'BAIL'
);
CREATE TABLE cscs_debt (           -- one row per case and creditor
  case_no       TEXT,              -- -> cscs_case
  creditor      TEXT,              -- 'PWC' owed to the person with care, 'SOS' owed to the Secretary of State
  balance       TEXT               -- pounds, e.g. '1234.56'; a leading '-' is a credit balance
);
CREATE TABLE cscs_payment (
  case_no       TEXT,
  pay_date      TEXT,              -- DD/MM/YYYY
  amount        TEXT               -- pounds
);

-- CS2 tables
CREATE TABLE cs2_party (
  party_id            INTEGER PRIMARY KEY,
  family_name         TEXT,
  given_names         TEXT,
  birth_date          DATE,
  nino                TEXT,
  address_line_1      TEXT, address_line_2 TEXT, address_line_3 TEXT,
  address_line_4      TEXT, address_line_5 TEXT,
  postcode            TEXT,
  address_verified_on DATE,
  deceased_on         DATE,
  employment          TEXT         -- 'EMPLOYED', 'SELF_EMPLOYED', 'BENEFITS', 'UNKNOWN'
);
CREATE TABLE cs2_case (
  case_id             INTEGER PRIMARY KEY,
  case_ref            TEXT UNIQUE, -- 'S' + 9 digits
  scheme              TEXT,        -- '2003', or '1993' for a converted 1993-scheme case
  effective_date      DATE,
  liability_end_date  DATE,        -- NULL = liability still ongoing
  pwc_party_id        INTEGER,     -- -> cs2_party
  nrp_party_id        INTEGER,     -- -> cs2_party
  dv_marker           INTEGER,     -- 0/1
  stop_acting         INTEGER,     -- 0/1
  enforcement         TEXT         -- NULL none, 'DEO', 'LO', 'CHARGING_ORDER', 'COMMITTAL'
);
CREATE TABLE cs2_arrears (         -- one row per case and creditor
  case_id             INTEGER,
  owed_to             TEXT,        -- 'PWC' or 'SOS'
  amount_pence        INTEGER      -- negative = credit balance
);
CREATE TABLE cs2_payment (
  case_id             INTEGER,
  received_on         DATE,
  amount_pence        INTEGER
);

-- Control totals
CREATE TABLE extract_control (     -- written by the legacy side when the replica was taken
  system            TEXT PRIMARY KEY,  -- 'CSCS' or 'CS2'
  case_count        INTEGER,           -- rows in cscs_case / cs2_case
  pwc_arrears_pence INTEGER,           -- sum of all PWC debt rows, as the legacy system sees it
  sos_arrears_pence INTEGER,           -- sum of all SOS debt rows
  as_at             DATE
);
