"""normalise(): one model across CSCS and CS2, and every bad row held with a reason."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest

from csa_closure.errors import InputError
from csa_closure.legacy.contract import CONTROL_TABLE, TABLES
from csa_closure.legacy.extract import LegacyExtract
from csa_closure.legacy.normalise import (
    CASE_SCHEMA,
    PARTY_SCHEMA,
    QUARANTINE_SCHEMA,
    NormalisedBook,
    fingerprint,
    normalise,
    parse_control,
)
from csa_closure.legacy.reasons import DESCRIPTIONS, Reason

AS_AT = "2019-03-31"


def client(no: str, **values: Any) -> dict[str, Any]:
    row = {
        "client_no": no,
        "surname": "SMITH",
        "forenames": "ANN",
        "dob": "01/02/1970",
        "nino": "AB123456C",
        "addr_1": "1 HIGH STREET",
        "addr_2": "LEEDS",
        "addr_3": "WEST YORKSHIRE",
        "addr_4": None,
        "addr_5": "",
        "postcode": "LS1 1AA",
        "addr_verified": "01/01/2018",
        "dod": None,
        "emp_code": "E",
    }
    row.update(values)
    return row


def cscs_case(no: str, pwc: str = "P000000001", nrp: str = "P000000002", **values: Any):
    row = {
        "case_no": no,
        "eff_date": "05/04/1995",
        "liab_end_date": "01/01/2000",
        "pwc_client_no": pwc,
        "nrp_client_no": nrp,
        "dv_ind": "N",
        "stop_act_ind": "N",
        "enf_code": "",
    }
    row.update(values)
    return row


def party(pid: int, **values: Any) -> dict[str, Any]:
    row = {
        "party_id": str(pid),
        "family_name": "Jones",
        "given_names": "Bob",
        "birth_date": "1970-02-01",
        "nino": None,
        "address_line_1": "2 Low Road",
        "address_line_2": "Leeds",
        "address_line_3": None,
        "address_line_4": None,
        "address_line_5": None,
        "postcode": "LS2 2BB",
        "address_verified_on": None,
        "deceased_on": None,
        "employment": "BENEFITS",
    }
    row.update(values)
    return row


def cs2_case(cid: int, ref: str, pwc: int = 1, nrp: int = 2, **values: Any) -> dict[str, Any]:
    row = {
        "case_id": str(cid),
        "case_ref": ref,
        "scheme": "2003",
        "effective_date": "2005-01-01",
        "liability_end_date": None,
        "pwc_party_id": str(pwc),
        "nrp_party_id": str(nrp),
        "dv_marker": "0",
        "stop_acting": "1",
        "enforcement": None,
    }
    row.update(values)
    return row


def extract(control: dict[str, tuple[int, int, int]] | None = None, **rows: list) -> LegacyExtract:
    """An extract from rows given per table; control totals default to what the rows hold
    only when given explicitly (tests of the invariant compute their own)."""
    tables = {}
    for table, columns in TABLES.items():
        data = rows.get(table, [])
        tables[table] = pl.DataFrame(
            [{c: (None if r.get(c) is None else str(r[c])) for c in columns} for r in data],
            schema=dict.fromkeys(columns, pl.String),
            orient="row",
        )
    if CONTROL_TABLE not in rows:
        control = control or {}
        tables[CONTROL_TABLE] = pl.DataFrame(
            [
                {
                    "system": system,
                    "case_count": str(control.get(system, (0, 0, 0))[0]),
                    "pwc_arrears_pence": str(control.get(system, (0, 0, 0))[1]),
                    "sos_arrears_pence": str(control.get(system, (0, 0, 0))[2]),
                    "as_at": AS_AT,
                }
                for system in ("CSCS", "CS2")
            ],
            schema=dict.fromkeys(TABLES[CONTROL_TABLE], pl.String),
        )
    return LegacyExtract(tables=tables, source="test", dialect="sqlite")


def reasons_of(book: NormalisedBook, case_ref: str, kind: str = "case") -> list[dict]:
    held = book.quarantine.filter((pl.col("case_ref") == case_ref) & (pl.col("item_kind") == kind))
    assert held.height == 1, f"{case_ref} is not held as {kind}: {book.quarantine}"
    return held["reasons"][0].to_list()


def codes_of(book: NormalisedBook, case_ref: str, kind: str = "case") -> set[str]:
    return {r["code"] for r in reasons_of(book, case_ref, kind)}


def two_clients() -> list[dict[str, Any]]:
    return [client("P000000001"), client("P000000002", surname="BROWN", emp_code="S")]


# --- a clean book --------------------------------------------------------------------


def test_clean_cases_of_both_systems_load_into_one_model() -> None:
    book = normalise(
        extract(
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001", enf_code="DEO", dv_ind="Y")],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "1234.56"},
                {"case_no": "C000000001", "creditor": "SOS", "balance": "0.00"},
            ],
            cscs_payment=[
                {"case_no": "C000000001", "pay_date": "01/03/2019", "amount": "10.00"},
                {"case_no": "C000000001", "pay_date": "01/03/2019", "amount": "-2.50"},
                {"case_no": "C000000001", "pay_date": "02/03/2019", "amount": "0"},
            ],
            cs2_party=[party(1), party(2, employment="EMPLOYED", nino="ab 12 34 56 c")],
            cs2_case=[cs2_case(7, "S000000007", scheme="1993", enforcement="CHARGING_ORDER")],
            cs2_arrears=[{"case_id": "7", "owed_to": "PWC", "amount_pence": "500"}],
        )
    )
    assert book.quarantine.height == 0
    cases = {row["case_ref"]: row for row in book.cases.iter_rows(named=True)}
    assert cases["C000000001"] == {
        **cases["C000000001"],
        "source_system": "CSCS",
        "source_case_key": "C000000001",
        "scheme": "1993",
        "effective_date": date(1995, 4, 5),
        "liability_end_date": date(2000, 1, 1),
        "pwc_party_ref": "CSCS:P000000001",
        "nrp_party_ref": "CSCS:P000000002",
        "dv_marker": True,
        "stop_acting": False,
        "enforcement_code": "DEO",
    }
    assert cases["S000000007"]["source_case_key"] == "7"
    assert cases["S000000007"]["scheme"] == "1993"
    assert cases["S000000007"]["pwc_party_ref"] == "CS2:1"
    assert cases["S000000007"]["stop_acting"] is True
    assert cases["S000000007"]["liability_end_date"] is None
    assert cases["S000000007"]["enforcement_code"] == "CHARGING_ORDER"
    assert book.debts.rows() == [
        ("C000000001", "CSCS", "PWC", 123456),
        ("C000000001", "CSCS", "SOS", 0),
        ("S000000007", "CS2", "PWC", 500),
    ]
    assert book.payment_days.rows() == [
        ("C000000001", date(2019, 3, 1), 2, 1, 750),
        ("C000000001", date(2019, 3, 2), 1, 0, 0),
    ]
    parties = {row["party_ref"]: row for row in book.parties.iter_rows(named=True)}
    assert set(parties) == {"CSCS:P000000001", "CSCS:P000000002", "CS2:1", "CS2:2"}
    assert parties["CSCS:P000000002"]["employment"] == "SELF_EMPLOYED"
    assert parties["CSCS:P000000001"]["address_line_4"] is None
    assert parties["CSCS:P000000001"]["address_line_5"] is None  # '' means nothing
    assert parties["CSCS:P000000001"]["birth_date"] == date(1970, 2, 1)
    assert parties["CSCS:P000000001"]["address_verified_on"] == date(2018, 1, 1)
    assert parties["CS2:2"]["nino"] == "AB123456C"
    assert parties["CS2:1"]["nino"] is None
    assert book.cases.schema == pl.Schema(CASE_SCHEMA)
    assert book.parties.schema == pl.Schema(PARTY_SCHEMA)
    assert book.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    assert book.debts.schema["balance_pence"] == pl.Int64


def test_only_parties_of_loaded_cases_are_loaded() -> None:
    book = normalise(
        extract(
            cscs_client=[*two_clients(), client("P000000003"), client("P000000004")],
            cscs_case=[
                cscs_case("C000000001"),
                cscs_case("C000000002", "P000000003", "P000000004", eff_date=None),
            ],
        )
    )
    assert book.parties["party_ref"].to_list() == ["CSCS:P000000001", "CSCS:P000000002"]


# --- money -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pence"),
    [
        ("1234.56", 123456),
        ("12", 1200),
        ("0.5", 50),
        ("0.05", 5),
        ("007.10", 710),
        ("-0.00", 0),
        ("0", 0),
        ("99999999.99", 9999999999),
    ],
)
def test_cscs_pounds_are_read_as_exact_pence(text: str, pence: int) -> None:
    book = normalise(
        extract(
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001")],
            cscs_debt=[{"case_no": "C000000001", "creditor": "PWC", "balance": text}],
        )
    )
    assert book.debts["balance_pence"].to_list() == [pence]


@pytest.mark.parametrize(
    ("system", "text", "code"),
    [
        ("CSCS", "1,234.56", Reason.BAD_AMOUNT),
        ("CSCS", "£12.00", Reason.BAD_AMOUNT),
        ("CSCS", "1.234", Reason.BAD_AMOUNT),
        ("CSCS", ".5", Reason.BAD_AMOUNT),
        ("CSCS", "+1.00", Reason.BAD_AMOUNT),
        ("CSCS", " 12.00", Reason.BAD_AMOUNT),
        ("CSCS", "12.", Reason.BAD_AMOUNT),
        ("CSCS", "1e3", Reason.BAD_AMOUNT),
        ("CSCS", "N/A", Reason.BAD_AMOUNT),
        ("CSCS", "", Reason.MISSING_VALUE),
        ("CSCS", None, Reason.MISSING_VALUE),
        ("CSCS", "-12.00", Reason.CREDIT_BALANCE),
        ("CS2", "12.5", Reason.BAD_AMOUNT),
        ("CS2", "abc", Reason.BAD_AMOUNT),
        ("CS2", "", Reason.BAD_AMOUNT),  # CS2 is typed: only NULL means nothing
        ("CS2", None, Reason.MISSING_VALUE),
        ("CS2", "-5", Reason.CREDIT_BALANCE),
    ],
)
def test_unreadable_and_credit_balances_quarantine_the_case(
    system: str, text: str | None, code: Reason
) -> None:
    if system == "CSCS":
        rows = {
            "cscs_client": two_clients(),
            "cscs_case": [cscs_case("C000000001")],
            "cscs_debt": [
                {"case_no": "C000000001", "creditor": "PWC", "balance": text},
                {"case_no": "C000000001", "creditor": "SOS", "balance": "10.00"},
            ],
        }
        ref = "C000000001"
    else:
        rows = {
            "cs2_party": [party(1), party(2)],
            "cs2_case": [cs2_case(5, "S000000005")],
            "cs2_arrears": [
                {"case_id": "5", "owed_to": "PWC", "amount_pence": text},
                {"case_id": "5", "owed_to": "SOS", "amount_pence": "1000"},
            ],
        }
        ref = "S000000005"
    book = normalise(extract(**rows))
    assert codes_of(book, ref) == {code.value}
    held = book.quarantine.row(0, named=True)
    # Unreadable counts as zero (as the legacy total counts it); a credit counts as it is.
    expected_pwc = {"-12.00": -1200, "-5": -5}.get(text or "", 0)
    assert (held["pwc_pence"], held["sos_pence"]) == (expected_pwc, 1000)
    assert held["row_count"] == 3
    assert book.cases.height == 0
    assert book.debts.height == 0


def test_payment_amounts_and_dates_are_checked_too() -> None:
    book = normalise(
        extract(
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001"), cscs_case("C000000002"), cscs_case("C000000003")],
            cscs_payment=[
                {"case_no": "C000000001", "pay_date": "01/03/2019", "amount": "ten"},
                {"case_no": "C000000002", "pay_date": "30/02/2019", "amount": "1.00"},
                {"case_no": "C000000003", "pay_date": None, "amount": "1.00"},
            ],
        )
    )
    assert codes_of(book, "C000000001") == {"BAD_AMOUNT"}
    assert codes_of(book, "C000000002") == {"BAD_DATE"}
    assert codes_of(book, "C000000003") == {"MISSING_VALUE"}
    assert reasons_of(book, "C000000002")[0]["table"] == "cscs_payment"
    assert reasons_of(book, "C000000002")[0]["field"] == "pay_date"


# --- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("eff", "codes"),
    [
        ("29/02/2008", set()),
        ("31/03/2019", set()),  # on the as-at date: not in the future
        ("01/04/2019", {"FUTURE_EFFECTIVE_DATE"}),
        ("31/02/2009", {"BAD_DATE"}),
        ("29/02/2011", {"BAD_DATE"}),
        ("00/00/0000", {"BAD_DATE"}),
        ("1/2/2009", {"BAD_DATE"}),
        ("2009-02-01", {"BAD_DATE"}),
        ("01/02/09", {"BAD_DATE"}),
        ("", {"MISSING_VALUE"}),
        (None, {"MISSING_VALUE"}),
    ],
)
def test_cscs_effective_dates_are_strict(eff: str | None, codes: set[str]) -> None:
    book = normalise(
        extract(cscs_client=two_clients(), cscs_case=[cscs_case("C000000001", eff_date=eff)])
    )
    if codes:
        assert codes_of(book, "C000000001") == codes
    else:
        assert book.cases["effective_date"].to_list() == [
            date(int(eff[6:]), int(eff[3:5]), int(eff[:2]))  # type: ignore[index]
        ]


@pytest.mark.parametrize(
    ("column", "value", "codes"),
    [
        ("effective_date", "2009-02-31", {"BAD_DATE"}),
        ("effective_date", "31/12/2009", {"BAD_DATE"}),
        ("effective_date", "", {"BAD_DATE"}),  # typed: '' is not NULL
        ("effective_date", "2019-04-01", {"FUTURE_EFFECTIVE_DATE"}),
        ("liability_end_date", "2010-13-01", {"BAD_DATE"}),
        ("liability_end_date", "2020-01-01", set()),  # ends after as-at: ongoing, fine
    ],
)
def test_cs2_dates_are_strict_iso(column: str, value: str, codes: set[str]) -> None:
    book = normalise(
        extract(
            cs2_party=[party(1), party(2)], cs2_case=[cs2_case(5, "S000000005", **{column: value})]
        )
    )
    if codes:
        assert codes_of(book, "S000000005") == codes
    else:
        assert book.cases.height == 1


# --- every reason code ---------------------------------------------------------------


def test_each_case_problem_has_its_reason_code() -> None:
    book = normalise(
        extract(
            cscs_client=[*two_clients(), client("P000000003", emp_code="Z")],
            cscs_case=[
                cscs_case("C000000001", pwc=None),
                cscs_case("C000000002", nrp=""),
                cscs_case("C000000003", nrp="P000000099"),
                cscs_case("C000000004", nrp="P000000001"),
                cscs_case("C000000005", dv_ind="X"),
                cscs_case("C000000006", stop_act_ind=None),
                cscs_case("C000000007", enf_code="CHARGING_ORDER"),
                cscs_case("C000000008", nrp="P000000003"),
                cscs_case("C12"),
            ],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "5.00"},
                {"case_no": "C000000009", "creditor": "PWC", "balance": "1.00"},
                {"case_no": "C000000009", "creditor": "PWC", "balance": "2.00"},
                {"case_no": "C000000010", "creditor": "pwc", "balance": "2.00"},
                {"case_no": "C000000011", "creditor": None, "balance": "2.00"},
            ],
            cs2_party=[party(1), party(2)],
            cs2_case=[
                cs2_case(1, "S000000001", scheme="1999"),
                cs2_case(2, None),
                cs2_case(3, "S000000003", dv_marker="2"),
                cs2_case(4, "S000000004", enforcement="CO"),
            ],
        )
    )
    expected = {
        "C000000001": {"MISSING_VALUE"},
        "C000000002": {"MISSING_VALUE"},
        "C000000003": {"UNKNOWN_PARTY"},
        "C000000004": {"SAME_PARTY"},
        "C000000005": {"UNKNOWN_CODE"},
        "C000000006": {"MISSING_VALUE"},
        "C000000007": {"UNKNOWN_CODE"},
        "C000000008": {"UNKNOWN_CODE"},
        "C12": {"BAD_REFERENCE"},
        "S000000001": {"UNKNOWN_CODE"},
        "CS2#2": {"MISSING_VALUE"},
        "S000000003": {"UNKNOWN_CODE"},
        "S000000004": {"UNKNOWN_CODE"},
    }
    for ref, codes in expected.items():
        assert codes_of(book, ref) == codes, ref
    assert codes_of(book, "C000000009", "orphan_debt") == {"ORPHAN_DEBT"}
    assert book.cases.height == 0


def test_duplicate_and_bad_creditor_rows_hold_the_case() -> None:
    book = normalise(
        extract(
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001"), cscs_case("C000000002"), cscs_case("C000000003")],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "1.00"},
                {"case_no": "C000000001", "creditor": "PWC", "balance": "2.00"},
                {"case_no": "C000000001", "creditor": "SOS", "balance": "4.00"},
                {"case_no": "C000000002", "creditor": "pwc", "balance": "8.00"},
                {"case_no": "C000000003", "creditor": "", "balance": "16.00"},
            ],
        )
    )
    duplicate = reasons_of(book, "C000000001")
    assert [r["code"] for r in duplicate] == ["DUPLICATE_DEBT"]
    assert duplicate[0]["detail"] == "2 rows for creditor PWC"
    held = book.quarantine.filter(pl.col("case_ref") == "C000000001").row(0, named=True)
    assert (held["pwc_pence"], held["sos_pence"], held["row_count"]) == (300, 400, 4)
    assert codes_of(book, "C000000002") == {"UNKNOWN_CODE"}
    assert codes_of(book, "C000000003") == {"MISSING_VALUE"}
    # A row owed to neither creditor is in neither creditor's total.
    second = book.quarantine.filter(pl.col("case_ref") == "C000000002").row(0, named=True)
    assert (second["pwc_pence"], second["sos_pence"]) == (0, 0)


def test_orphan_rows_are_held_on_their_own_under_the_reference_they_carry() -> None:
    book = normalise(
        extract(
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001")],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "1.00"},
                {"case_no": "C000000777", "creditor": "PWC", "balance": "3.00"},
                {"case_no": "C000000777", "creditor": "SOS", "balance": "N/A"},
                {"case_no": None, "creditor": "SOS", "balance": "5.00"},
            ],
            cscs_payment=[
                {"case_no": "C000000778", "pay_date": "01/01/2019", "amount": "1.00"},
                {"case_no": "C000000778", "pay_date": "bad", "amount": "1.00"},
            ],
            cs2_party=[party(1), party(2)],
            cs2_case=[cs2_case(1, "S000000001")],
            cs2_arrears=[{"case_id": "99", "owed_to": "SOS", "amount_pence": "700"}],
            cs2_payment=[{"case_id": "abc", "received_on": "2019-01-01", "amount_pence": "1"}],
        )
    )
    assert book.cases["case_ref"].to_list() == ["C000000001", "S000000001"]
    items = {
        (r["source_system"], r["case_ref"], r["item_kind"]): r
        for r in book.quarantine.iter_rows(named=True)
    }
    assert set(items) == {
        ("CSCS", "C000000777", "orphan_debt"),
        ("CSCS", "(missing)", "orphan_debt"),
        ("CSCS", "C000000778", "orphan_payment"),
        ("CS2", "CS2#99", "orphan_debt"),
        ("CS2", "CS2#abc", "orphan_payment"),
    }
    orphan = items[("CSCS", "C000000777", "orphan_debt")]
    assert (orphan["pwc_pence"], orphan["sos_pence"], orphan["row_count"]) == (300, 0, 2)
    assert orphan["reasons"][0]["code"] == "ORPHAN_DEBT"
    assert items[("CSCS", "(missing)", "orphan_debt")]["sos_pence"] == 500
    assert items[("CSCS", "C000000778", "orphan_payment")]["row_count"] == 2
    assert items[("CS2", "CS2#99", "orphan_debt")]["sos_pence"] == 700
    assert items[("CS2", "CS2#99", "orphan_debt")]["reasons"][0]["detail"] == (
        "1 cs2_arrears row(s) for case_id (99), which is not in cs2_case"
    )


def test_a_bad_party_holds_every_case_that_points_at_it() -> None:
    book = normalise(
        extract(
            cscs_client=[*two_clients(), client("P000000003", dob="31/02/1970")],
            cscs_case=[
                cscs_case("C000000001", nrp="P000000003"),
                cscs_case("C000000002", pwc="P000000003"),
                cscs_case("C000000003"),
            ],
            cscs_debt=[{"case_no": "C000000001", "creditor": "SOS", "balance": "7.00"}],
        )
    )
    assert book.cases["case_ref"].to_list() == ["C000000003"]
    first = reasons_of(book, "C000000001")
    assert first == [
        {
            "code": "BAD_DATE",
            "table": "cscs_client",
            "field": "dob",
            "detail": "NRP party: dob of CSCS:P000000003 is not a real calendar date",
        }
    ]
    assert reasons_of(book, "C000000002")[0]["detail"].startswith("PWC party: dob of ")
    assert book.quarantine.filter(pl.col("case_ref") == "C000000001")["sos_pence"].to_list() == [
        700
    ]
    assert "CSCS:P000000003" not in book.parties["party_ref"].to_list()


def test_details_never_quote_personal_data() -> None:
    """A name typed into a date field, a bad date of birth, a bad employment code: the
    details say what is wrong and where, never the value from a party column."""
    book = normalise(
        extract(
            cscs_client=[
                client("P000000001", dob="Annie Smith", addr_verified="12 Acacia Avenue"),
                client("P000000002", dod="31/02/2011", emp_code="Brown"),
            ],
            cscs_case=[
                cscs_case("C000000001", eff_date="MARY JONES", liab_end_date="31/02/2010"),
                cscs_case("C000000002", nrp="Peter Piper"),
                cscs_case("C000000003"),
            ],
            cscs_debt=[{"case_no": "C000000003", "creditor": "PWC", "balance": "ANNIE SMITH"}],
            cscs_payment=[{"case_no": "Smith", "pay_date": "01/01/2010", "amount": "1.00"}],
            cs2_party=[party(1, birth_date="1970-02-30"), party(2, employment="Jones Ltd")],
            cs2_case=[cs2_case(1, "S000000001", effective_date="Bob Jones")],
        )
    )
    details = [r["detail"] for reasons in book.quarantine["reasons"].to_list() for r in reasons]
    text = " | ".join(details)
    for personal in (
        "Annie",
        "Smith",
        "Acacia",
        "31/02/2011",
        "Brown",
        "Mary",
        "MARY",
        "Jones",
        "JONES",
        "ANNIE",
        "SMITH",
        "Peter",
        "1970-02-30",
    ):
        assert personal not in text
    # Case values that look like dates or codes are quoted, to help the operator.
    assert "(31/02/2010)" in text
    assert "(value not shown)" in text
    assert {r["field"] for reasons in book.quarantine["reasons"].to_list() for r in reasons} >= {
        "dob",
        "addr_verified",
        "dod",
        "emp_code",
        "eff_date",
        "birth_date",
        "employment",
        "effective_date",
    }


# --- the invariant ---------------------------------------------------------------------


def test_control_equals_loaded_plus_quarantined_per_system_and_creditor() -> None:
    book = normalise(
        extract(
            control={"CSCS": (3, 100 + 200 + 400 - 50, 1000), "CS2": (1, 0, 999)},
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001"), cscs_case("C000000002", dv_ind="?")],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "1.00"},
                {"case_no": "C000000001", "creditor": "SOS", "balance": "10.00"},
                {"case_no": "C000000002", "creditor": "PWC", "balance": "2.00"},
                {"case_no": "C000000002", "creditor": "PWC", "balance": "junk"},
                {"case_no": "C000000003", "creditor": "PWC", "balance": "4.00"},
                {"case_no": "C000000004", "creditor": "PWC", "balance": "-0.50"},
            ],
            cs2_party=[party(1), party(2)],
            cs2_case=[cs2_case(1, "S000000001")],
            cs2_arrears=[{"case_id": "1", "owed_to": "SOS", "amount_pence": "999"}],
        )
    )
    rec = book.reconciliation()
    assert rec["difference_pence"].to_list() == [0] * 6
    assert rec.filter(pl.col("source_system") == "CSCS").rows() == [
        ("CSCS", "PWC", 650, 100, 550, 0),
        ("CSCS", "SOS", 1000, 1000, 0, 0),
        ("CSCS", "UNREADABLE", 0, 0, 0, 0),
    ]


def test_every_pence_of_a_row_with_an_unreadable_creditor_is_in_the_proof() -> None:
    # empty, lower-case and unknown creditors: the control counts them under neither creditor
    book = normalise(
        extract(
            control={"CSCS": (2, 100, 0), "CS2": (1, 0, 0)},
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001"), cscs_case("C000000002")],
            cscs_debt=[
                {"case_no": "C000000001", "creditor": "PWC", "balance": "1.00"},
                {"case_no": "C000000002", "creditor": None, "balance": "2.00"},
                {"case_no": "C000000002", "creditor": "pwc", "balance": "3.00"},
                {"case_no": "C000000009", "creditor": "XYZ", "balance": "4.00"},  # orphan
                {"case_no": "C000000002", "creditor": "sos", "balance": "junk"},  # unreadable
            ],
            cs2_party=[party(1), party(2)],
            cs2_case=[cs2_case(1, "S000000001")],
            cs2_arrears=[{"case_id": "1", "owed_to": "S0S", "amount_pence": "999"}],
        )
    )
    rec = {(r[0], r[1]): r[2:] for r in book.reconciliation().rows()}
    # (control, loaded, quarantined, difference): 2.00 + 3.00 + 4.00 and CS2's 999 held
    assert rec[("CSCS", "UNREADABLE")] == (900, 0, 900, 0)
    assert rec[("CS2", "UNREADABLE")] == (999, 0, 999, 0)
    assert rec[("CSCS", "PWC")] == (100, 100, 0, 0)
    held = book.quarantine.filter(pl.col("source_system") == "CSCS")
    assert sorted(held.select("case_ref", "unreadable_pence").rows()) == [
        ("C000000002", 500),
        ("C000000009", 400),
    ]


def test_long_case_references_are_never_cut_into_one() -> None:
    long_a, long_b = "C" + "1" * 40 + "A", "C" + "1" * 40 + "B"  # the same first 32 characters
    book = normalise(
        extract(
            control={"CSCS": (0, 300, 0), "CS2": (1, 0, 0)},
            cscs_client=two_clients(),
            cscs_case=[],
            cscs_debt=[
                {"case_no": long_a, "creditor": "PWC", "balance": "1.00"},
                {"case_no": long_b, "creditor": "PWC", "balance": "2.00"},
            ],
            cs2_party=[party(1), party(2)],
            cs2_case=[cs2_case(1, "S000000001")],
            cs2_arrears=[],
        )
    )
    refs = book.quarantine.filter(pl.col("source_system") == "CSCS")["case_ref"].to_list()
    assert len(refs) == 2 and len(set(refs)) == 2
    assert all(len(r) <= 32 and r.startswith("C" + "1" * 22 + "~") for r in refs)
    assert sorted(book.quarantine["pwc_pence"].to_list()) == [100, 200]


def test_a_control_mismatch_shows_as_a_difference() -> None:
    book = normalise(
        extract(
            control={"CSCS": (1, 101, 0)},
            cscs_client=two_clients(),
            cscs_case=[cscs_case("C000000001")],
            cscs_debt=[{"case_no": "C000000001", "creditor": "PWC", "balance": "1.00"}],
        )
    )
    rec = book.reconciliation().filter(pl.col("creditor") == "PWC")
    assert rec["difference_pence"].to_list() == [1, 0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "exactly one row for system CSCS"),
        ([("CSCS", "1", "0", "0", AS_AT)], "exactly one row for system CS2"),
        ([("CSCS", "x", "0", "0", AS_AT), ("CS2", "1", "0", "0", AS_AT)], "case_count"),
        ([("CSCS", "1", "1.5", "0", AS_AT), ("CS2", "1", "0", "0", AS_AT)], "pwc_arrears"),
        ([("CSCS", "1", "0", "0", "31/03/2019"), ("CS2", "1", "0", "0", AS_AT)], "as_at"),
    ],
)
def test_bad_control_rows_are_refused(rows: list[tuple], message: str) -> None:
    raw = pl.DataFrame(rows, schema=dict.fromkeys(TABLES[CONTROL_TABLE], pl.String), orient="row")
    with pytest.raises(InputError, match=message):
        parse_control(raw)


# --- fingerprints -------------------------------------------------------------------------


def test_fingerprints_are_stable_sha256_over_normalised_values() -> None:
    frame = pl.DataFrame(
        {
            "a": ["x|y", None, "back\\slash"],
            "d": [date(2019, 3, 31), None, date(2000, 2, 29)],
            "b": [True, False, None],
            "n": [1, None, -5],
        }
    )
    got = fingerprint(frame, ["a", "d", "b", "n"]).to_list()
    # Fixed values: the fingerprint must not change with polars versions or refactoring.
    import hashlib

    expected = [
        hashlib.sha256(text.encode()).hexdigest()
        for text in (
            "v1|x\\|y|2019-03-31|1|1",
            "v1|\\N|\\N|0|\\N",
            "v1|back\\\\slash|2000-02-29|\\N|-5",
        )
    ]
    assert got == expected


def test_case_fingerprint_changes_with_any_debt_or_payment() -> None:
    def book(balance: str, amount: str) -> NormalisedBook:
        return normalise(
            extract(
                cscs_client=two_clients(),
                cscs_case=[cscs_case("C000000001")],
                cscs_debt=[{"case_no": "C000000001", "creditor": "PWC", "balance": balance}],
                cscs_payment=[
                    {"case_no": "C000000001", "pay_date": "01/01/2010", "amount": amount}
                ],
            )
        )

    base = book("1.00", "2.00").cases["source_fingerprint"][0]
    assert book("1.00", "2.00").cases["source_fingerprint"][0] == base
    assert book("1.01", "2.00").cases["source_fingerprint"][0] != base
    assert book("1.00", "2.01").cases["source_fingerprint"][0] != base
    assert len(base) == 64


def test_every_reason_code_has_a_description() -> None:
    assert set(DESCRIPTIONS) == set(Reason)
    assert all(Reason(code).description for code in Reason)
