"""The legacy replica's tables and each system's conventions, as the contract fixes them.

One place for the names: the reader, the normaliser and the sample generator all use these.
The DDL itself is ``sql/legacy_schema.sql`` (verbatim from the contract); the extraction
queries are ``sql/extract/<table>.sql``.
"""

from __future__ import annotations

from dataclasses import dataclass

from csa_closure.domain.states import CREDITORS

CSCS = "CSCS"
CS2 = "CS2"
SYSTEMS = (CSCS, CS2)
CONTROL_TABLE = "extract_control"

# Every contract table with its columns, in contract order.
TABLES: dict[str, tuple[str, ...]] = {
    "cscs_client": (
        "client_no", "surname", "forenames", "dob", "nino",
        "addr_1", "addr_2", "addr_3", "addr_4", "addr_5",
        "postcode", "addr_verified", "dod", "emp_code",
    ),
    "cscs_case": (
        "case_no", "eff_date", "liab_end_date", "pwc_client_no", "nrp_client_no",
        "dv_ind", "stop_act_ind", "enf_code",
    ),
    "cscs_debt": ("case_no", "creditor", "balance"),
    "cscs_payment": ("case_no", "pay_date", "amount"),
    "cs2_party": (
        "party_id", "family_name", "given_names", "birth_date", "nino",
        "address_line_1", "address_line_2", "address_line_3", "address_line_4",
        "address_line_5", "postcode", "address_verified_on", "deceased_on", "employment",
    ),
    "cs2_case": (
        "case_id", "case_ref", "scheme", "effective_date", "liability_end_date",
        "pwc_party_id", "nrp_party_id", "dv_marker", "stop_acting", "enforcement",
    ),
    "cs2_arrears": ("case_id", "owed_to", "amount_pence"),
    "cs2_payment": ("case_id", "received_on", "amount_pence"),
    CONTROL_TABLE: ("system", "case_count", "pwc_arrears_pence", "sos_arrears_pence", "as_at"),
}  # fmt: skip

EMPLOYMENTS = ("EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN")
# The reconciliation's bucket for debt rows whose creditor cannot be read (empty, lower-case,
# or not a creditor code): the legacy control totals count them under neither creditor, so
# their pence are reconciled here, source (summed from the rows) = quarantined.
UNREADABLE_CREDITOR = "UNREADABLE"
# every pence of the source is in exactly one of these, per system
CREDITOR_BUCKETS = (*CREDITORS, UNREADABLE_CREDITOR)


@dataclass(frozen=True)
class SystemSpec:
    """How one legacy system spells things. ``*_cols`` map the common name to its column."""

    name: str
    party_table: str
    case_table: str
    debt_table: str
    payment_table: str
    party_cols: dict[str, str]
    case_cols: dict[str, str]
    debt_cols: dict[str, str]
    payment_cols: dict[str, str]
    date_pattern: str  # the exact shape of a date, checked before parsing
    date_format: str  # strptime format
    date_shape: str  # how operators read the format
    money_in_pounds: bool  # CSCS: '1234.56' pounds as text; CS2: integer pence
    flag_true: str
    flag_false: str
    # CSCS writes "nothing" as NULL or ''; CS2 is typed and only NULL means nothing.
    blank_is_null: bool
    employment_codes: dict[str, str]
    enforcement_codes: tuple[str, ...]
    case_ref_pattern: str


_PARTY_COMMON = (
    "key", "family_name", "given_names", "birth_date", "nino",
    "address_line_1", "address_line_2", "address_line_3", "address_line_4",
    "address_line_5", "postcode", "address_verified_on", "deceased_on", "employment",
)  # fmt: skip

CSCS_SPEC = SystemSpec(
    name=CSCS,
    party_table="cscs_client",
    case_table="cscs_case",
    debt_table="cscs_debt",
    payment_table="cscs_payment",
    party_cols=dict(zip(_PARTY_COMMON, TABLES["cscs_client"], strict=True)),
    case_cols={
        "key": "case_no",
        "ref": "case_no",
        "effective_date": "eff_date",
        "liability_end_date": "liab_end_date",
        "pwc_key": "pwc_client_no",
        "nrp_key": "nrp_client_no",
        "dv_marker": "dv_ind",
        "stop_acting": "stop_act_ind",
        "enforcement": "enf_code",
    },
    debt_cols={"case_key": "case_no", "creditor": "creditor", "amount": "balance"},
    payment_cols={"case_key": "case_no", "paid_on": "pay_date", "amount": "amount"},
    date_pattern=r"^[0-9]{2}/[0-9]{2}/[0-9]{4}$",
    date_format="%d/%m/%Y",
    date_shape="DD/MM/YYYY",
    money_in_pounds=True,
    flag_true="Y",
    flag_false="N",
    blank_is_null=True,
    employment_codes={"E": "EMPLOYED", "S": "SELF_EMPLOYED", "B": "BENEFITS", "U": "UNKNOWN"},
    enforcement_codes=("DEO", "LO", "CO", "BAIL"),
    case_ref_pattern=r"^C[0-9]{9}$",
)

CS2_SPEC = SystemSpec(
    name=CS2,
    party_table="cs2_party",
    case_table="cs2_case",
    debt_table="cs2_arrears",
    payment_table="cs2_payment",
    party_cols=dict(zip(_PARTY_COMMON, TABLES["cs2_party"], strict=True)),
    case_cols={
        "key": "case_id",
        "ref": "case_ref",
        "scheme": "scheme",
        "effective_date": "effective_date",
        "liability_end_date": "liability_end_date",
        "pwc_key": "pwc_party_id",
        "nrp_key": "nrp_party_id",
        "dv_marker": "dv_marker",
        "stop_acting": "stop_acting",
        "enforcement": "enforcement",
    },
    debt_cols={"case_key": "case_id", "creditor": "owed_to", "amount": "amount_pence"},
    payment_cols={"case_key": "case_id", "paid_on": "received_on", "amount": "amount_pence"},
    date_pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    date_format="%Y-%m-%d",
    date_shape="YYYY-MM-DD",
    money_in_pounds=False,
    flag_true="1",
    flag_false="0",
    blank_is_null=False,
    employment_codes={e: e for e in EMPLOYMENTS},
    enforcement_codes=("DEO", "LO", "CHARGING_ORDER", "COMMITTAL"),
    case_ref_pattern=r"^S[0-9]{9}$",
)

SPECS: dict[str, SystemSpec] = {CSCS: CSCS_SPEC, CS2: CS2_SPEC}
