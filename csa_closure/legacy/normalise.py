"""Turn the two legacy systems' text into one model, and hold back every bad row.

``normalise(extract)`` is pure polars over whole columns. Each system is first renamed to
common column names (``contract.SystemSpec``), then parsed and checked with the system's own
conventions (CSCS: DD/MM/YYYY, pounds as text, Y/N; CS2: ISO dates, integer pence, 0/1).

Quarantine rules (the contract's):

- every problem becomes an *issue* ``{code, table, field, detail}`` against one case row
  (a bad party row is an issue of every case that points at it, in that role);
- a case with any issue is quarantined whole: the case row, all its debt rows and payment
  rows go into one quarantine item (``item_kind='case'``, ``row_count`` = those rows; party
  rows are shared between cases and are not counted) and none of it is loaded; its parties
  are loaded only if a loaded case points at them too;
- a debt or payment row whose case does not exist is held on its own, grouped by the case
  reference it carries (``orphan_debt`` / ``orphan_payment``; CS2 rows as ``CS2#<case_id>``);
- held pence are the readable balances of the held debt rows per creditor, summed; an
  unreadable balance counts as zero, exactly as the legacy control total counts it, so that
  ``extract_control = loaded + quarantined`` holds to the penny per system and creditor;
- a debt row whose creditor cannot be read (empty, lower-case, unknown) is counted by neither
  control total: its readable balance is summed from the rows into a third bucket
  (``UNREADABLE``: ``control.unreadable_arrears_pence`` against the items'
  ``unreadable_pence``), so every pence of every row is inside the proof;
- a reference longer than the quarantine column is filed under its first characters and a
  digest of the whole (``~`` and 8 hex digits), so two long references never merge.

Money is parsed from text to integer pence without floats. CSCS pounds must be written
``-?digits`` with an optional ``.`` and one or two decimal places: ``1234.56``, ``-12.00``,
``12`` (= 1200p) and ``0.5`` (= 50p) are read; ``1,234.56``, ``£12``, ``1.234``, ``.5``,
``+1`` and surrounding spaces are not (BAD_AMOUNT: never a guess). CS2 pence must be
``-?digits``. Dates must have the exact shape (``DD/MM/YYYY`` or ``YYYY-MM-DD``) and exist.

Details never quote a value from a party table (names, dates of birth, NINOs, addresses,
and by rule every other party column too); values from case, debt and payment columns are
quoted only when they look like codes, dates or amounts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from csa_closure.domain.reconciliation import source_equation
from csa_closure.domain.states import CREDITORS
from csa_closure.errors import InputError
from csa_closure.legacy.contract import (
    CONTROL_TABLE,
    CREDITOR_BUCKETS,
    SPECS,
    SYSTEMS,
    SystemSpec,
)
from csa_closure.legacy.extract import LegacyExtract
from csa_closure.legacy.reasons import (
    ITEM_CASE,
    ITEM_ORPHAN_DEBT,
    ITEM_ORPHAN_PAYMENT,
    Reason,
)

MISSING_REF = "(missing)"
REF_MAX = 32  # quarantine.case_ref is String(32)
FINGERPRINT_VERSION = "v1"

REASON_DTYPE = pl.Struct(
    {"code": pl.String, "table": pl.String, "field": pl.String, "detail": pl.String}
)

PARTY_SCHEMA: dict[str, pl.DataType] = {
    "party_ref": pl.String(),
    "source_system": pl.String(),
    "family_name": pl.String(),
    "given_names": pl.String(),
    "birth_date": pl.Date(),
    "nino": pl.String(),
    "address_line_1": pl.String(),
    "address_line_2": pl.String(),
    "address_line_3": pl.String(),
    "address_line_4": pl.String(),
    "address_line_5": pl.String(),
    "postcode": pl.String(),
    "address_verified_on": pl.Date(),
    "deceased_on": pl.Date(),
    "employment": pl.String(),
    "source_fingerprint": pl.String(),
}
CASE_SCHEMA: dict[str, pl.DataType] = {
    "case_ref": pl.String(),
    "source_system": pl.String(),
    "source_case_key": pl.String(),
    "scheme": pl.String(),
    "effective_date": pl.Date(),
    "liability_end_date": pl.Date(),
    "pwc_party_ref": pl.String(),
    "nrp_party_ref": pl.String(),
    "dv_marker": pl.Boolean(),
    "stop_acting": pl.Boolean(),
    "enforcement_code": pl.String(),
    "source_fingerprint": pl.String(),
}
DEBT_SCHEMA: dict[str, pl.DataType] = {
    "case_ref": pl.String(),
    "source_system": pl.String(),
    "creditor": pl.String(),
    "balance_pence": pl.Int64(),
}
PAYMENT_DAY_SCHEMA: dict[str, pl.DataType] = {
    "case_ref": pl.String(),
    "paid_on": pl.Date(),
    "payment_count": pl.Int32(),
    "positive_count": pl.Int32(),
    "amount_pence": pl.Int64(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_system": pl.String(),
    "case_ref": pl.String(),
    "item_kind": pl.String(),
    "pwc_pence": pl.Int64(),
    "sos_pence": pl.Int64(),
    "unreadable_pence": pl.Int64(),
    "row_count": pl.Int32(),
    "reasons": pl.List(REASON_DTYPE),
}
CONTROL_SCHEMA: dict[str, pl.DataType] = {
    "source_system": pl.String(),
    "case_count": pl.Int64(),
    "pwc_arrears_pence": pl.Int64(),
    "sos_arrears_pence": pl.Int64(),
    "as_at": pl.Date(),
    "unreadable_arrears_pence": pl.Int64(),
}
ISSUE_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "code": pl.String(),
    "table": pl.String(),
    "field": pl.String(),
    "detail": pl.String(),
}

# A value is quoted only when it cannot be personal data: dates and amounts made of digits
# and punctuation, or short upper-case codes and keys. CSCS holds names in capitals, so a
# word like SMITH in a code column would be quoted; that is a code column's rubbish, not a
# party column's value, and is as far as the rule goes. Party columns are never quoted.
_SHOWN_NUMBER = r"^[0-9/.,:£ +-]{1,20}$"
_SHOWN_CODE = r"^[A-Z0-9_#-]{1,20}$"


@dataclass(frozen=True)
class NormalisedBook:
    """One model across both systems, plus everything held back and the control totals.

    Frames follow the working store's tables (without ``pulled_run_id``): ``parties``,
    ``cases``, ``debts`` (``balance_pence`` = the pulled balance), ``payment_days`` and
    ``quarantine`` (``reasons`` a list of ``{code, table, field, detail}``). ``control`` has
    one row per system from ``extract_control``.
    """

    parties: pl.DataFrame
    cases: pl.DataFrame
    debts: pl.DataFrame
    payment_days: pl.DataFrame
    quarantine: pl.DataFrame
    control: pl.DataFrame
    source_counts: dict[str, int] = field(default_factory=dict)

    def reconciliation(self) -> pl.DataFrame:
        """Per system and creditor: control pence, loaded, quarantined and the difference
        (``control - loaded - quarantined``; zero when nothing was lost)."""
        rows = []
        for system in self.control["source_system"].to_list():
            ctrl = self.control.filter(pl.col("source_system") == system)
            for creditor in CREDITOR_BUCKETS:
                control_pence = int(ctrl[f"{creditor.lower()}_arrears_pence"].sum())
                loaded = int(
                    self.debts.filter(
                        (pl.col("source_system") == system) & (pl.col("creditor") == creditor)
                    )["balance_pence"].sum()
                )
                held = int(
                    self.quarantine.filter(pl.col("source_system") == system)[
                        f"{creditor.lower()}_pence"
                    ].sum()
                )
                rows.append(
                    {
                        "source_system": system,
                        "creditor": creditor,
                        "control_pence": control_pence,
                        "loaded_pence": loaded,
                        "quarantined_pence": held,
                        "difference_pence": source_equation(
                            source=control_pence, drift=0, loaded=loaded, quarantined=held
                        ).difference_pence,
                    }
                )
        return pl.DataFrame(
            rows,
            schema={
                "source_system": pl.String,
                "creditor": pl.String,
                "control_pence": pl.Int64,
                "loaded_pence": pl.Int64,
                "quarantined_pence": pl.Int64,
                "difference_pence": pl.Int64,
            },
            orient="row",
        )


def normalise(extract: LegacyExtract) -> NormalisedBook:
    """Normalise the systems read into ``extract`` and quarantine every bad row (see the
    module doc). ``control`` holds the extract_control rows of those systems."""
    control = parse_control(extract.control, extract.systems).with_columns(
        pl.Series(
            "unreadable_arrears_pence",
            [_unreadable_source(SPECS[s], extract[SPECS[s].debt_table]) for s in extract.systems],
            dtype=pl.Int64,
        )
    )
    books = [
        _normalise_system(SPECS[system], extract, _as_at(control, system))
        for system in extract.systems
    ]
    return NormalisedBook(
        parties=_concat([b.parties for b in books], PARTY_SCHEMA).sort("party_ref"),
        cases=_concat([b.cases for b in books], CASE_SCHEMA).sort("case_ref"),
        debts=_concat([b.debts for b in books], DEBT_SCHEMA).sort("case_ref", "creditor"),
        payment_days=_concat([b.payment_days for b in books], PAYMENT_DAY_SCHEMA).sort(
            "case_ref", "paid_on"
        ),
        quarantine=_concat([b.quarantine for b in books], QUARANTINE_SCHEMA).sort(
            "source_system", "item_kind", "case_ref"
        ),
        control=control,
        source_counts=dict(extract.row_counts),
    )


def _fit_refs(refs: pl.Series) -> pl.Series:
    too_long = refs.str.len_chars() > REF_MAX
    if not too_long.any():
        return refs
    keep = REF_MAX - 9
    return pl.Series(
        refs.name,
        [
            ref
            if ref is None or len(ref) <= REF_MAX
            else f"{ref[:keep]}~{hashlib.sha256(ref.encode()).hexdigest()[:8]}"
            for ref in refs.to_list()
        ],
        dtype=pl.String,
    )


def fit_ref(ref: pl.Expr) -> pl.Expr:
    """``ref`` made to fit the quarantine column without two references becoming one: a
    longer one is its first characters, ``~`` and 8 hex digits of its SHA-256."""
    return ref.map_batches(_fit_refs, return_dtype=pl.String, is_elementwise=True)


# --- control totals -------------------------------------------------------------------


def parse_control(raw: pl.DataFrame, systems: Sequence[str] = SYSTEMS) -> pl.DataFrame:
    """``extract_control`` as typed rows, one per system; refuses a missing or bad row.

    The control totals are the yardstick of the whole pull, so a problem here is an input
    error for the operator, not something to quarantine.
    """
    rows = []
    for system in systems:
        found = raw.filter(pl.col("system") == system)
        if found.height != 1:
            raise InputError(
                f"{CONTROL_TABLE} must have exactly one row for system {system} "
                f"(found {found.height})"
            )
        row = found.row(0, named=True)
        values: dict[str, object] = {"source_system": system}
        for column in ("case_count", "pwc_arrears_pence", "sos_arrears_pence"):
            values[column] = _control_int(row[column], system, column)
        values["as_at"] = _control_date(row["as_at"], system)
        values["unreadable_arrears_pence"] = 0  # summed from the debt rows by normalise
        rows.append(values)
    return pl.DataFrame(rows, schema=CONTROL_SCHEMA, orient="row")


def _unreadable_source(spec: SystemSpec, raw: pl.DataFrame) -> int:
    """The readable pence of ``spec``'s debt rows whose creditor cannot be read, summed
    straight from the source rows (the control totals count them under neither creditor)."""
    cols = spec.debt_cols
    rows = raw.rename({legacy: name for name, legacy in cols.items()}).filter(
        ~pl.col("creditor").is_in(list(CREDITORS)).fill_null(False)
    )
    return int(rows.select(_parse_pence(spec, "amount").fill_null(0).sum()).item() or 0)


def _control_int(text: str | None, system: str, column: str) -> int:
    if text is None or not text.lstrip("-").isdigit() or not text.isascii():
        raise InputError(f"{CONTROL_TABLE}.{column} for system {system} is not a whole number")
    return int(text)


def _control_date(text: str | None, system: str) -> date:
    try:
        if text is None or len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(
            f"{CONTROL_TABLE}.as_at for system {system} is not a date written YYYY-MM-DD"
        ) from None


def _as_at(control: pl.DataFrame, system: str) -> date:
    value = control.filter(pl.col("source_system") == system)["as_at"][0]
    assert isinstance(value, date)
    return value


# --- one system -----------------------------------------------------------------------


@dataclass(frozen=True)
class _SystemBook:
    parties: pl.DataFrame
    cases: pl.DataFrame
    debts: pl.DataFrame
    payment_days: pl.DataFrame
    quarantine: pl.DataFrame


def _normalise_system(spec: SystemSpec, extract: LegacyExtract, as_at: date) -> _SystemBook:
    parties, party_issues = _parse_parties(spec, extract[spec.party_table])
    cases, case_issues = _parse_cases(spec, extract[spec.case_table], parties, as_at)
    case_index = _case_index(cases)
    debts, debt_issues, orphan_debts = _parse_debts(spec, extract[spec.debt_table], case_index)
    payments, payment_issues, orphan_payments = _parse_payments(
        spec, extract[spec.payment_table], case_index
    )
    issues = pl.concat(
        [
            case_issues,
            _party_issues_for_cases(spec, cases, party_issues),
            debt_issues,
            payment_issues,
        ]
    )
    bad_rows = issues.select("row").unique()
    bad = pl.col("row").is_in(bad_rows["row"].implode())

    good_cases = cases.filter(~bad)
    good_debts = debts.filter(~bad)
    good_payments = payments.filter(~bad)
    quarantine = pl.concat(
        [
            _case_items(spec, cases.filter(bad), debts.filter(bad), payments.filter(bad), issues),
            orphan_debts,
            orphan_payments,
        ]
    )
    return _SystemBook(
        parties=_loaded_parties(spec, parties, good_cases),
        cases=_loaded_cases(spec, good_cases, good_debts, good_payments),
        debts=good_debts.select(
            pl.col("case_ref"),
            pl.lit(spec.name).alias("source_system"),
            pl.col("creditor"),
            pl.col("pence").alias("balance_pence"),
        ),
        payment_days=_payment_days(good_payments),
        quarantine=quarantine,
    )


# --- parsing helpers (expressions over a text column) ---------------------------------


def _blank(spec: SystemSpec, column: str) -> pl.Expr:
    c = pl.col(column)
    if spec.blank_is_null:
        return c.is_null() | (c.str.strip_chars() == "")
    return c.is_null()


def _parse_date(spec: SystemSpec, column: str) -> pl.Expr:
    """The date, or null when blank, misshapen or not a real calendar date."""
    c = pl.col(column)
    return (
        pl.when(c.str.contains(spec.date_pattern))
        .then(c.str.strptime(pl.Date, spec.date_format, strict=False))
        .otherwise(None)
    )


def _date_problem(spec: SystemSpec, column: str) -> pl.Expr:
    """Why a non-blank value is not a date (null when it is one or is blank)."""
    c = pl.col(column)
    return (
        pl.when(_blank(spec, column))
        .then(None)
        .when(~c.str.contains(spec.date_pattern))
        .then(pl.lit(f"is not a date written {spec.date_shape}"))
        .when(c.str.strptime(pl.Date, spec.date_format, strict=False).is_null())
        .then(pl.lit("is not a real calendar date"))
        .otherwise(None)
    )


def _parse_pence(spec: SystemSpec, column: str) -> pl.Expr:
    """Integer pence from the system's money text; null when blank or unreadable."""
    c = pl.col(column)
    if not spec.money_in_pounds:
        return pl.when(c.str.contains(r"^-?[0-9]{1,15}$")).then(c.cast(pl.Int64, strict=False))
    whole = c.str.extract(r"^-?([0-9]{1,13})(?:\.[0-9]{1,2})?$", 1)
    fraction = c.str.extract(r"^-?[0-9]{1,13}\.([0-9]{1,2})$", 1).fill_null("").str.pad_end(2, "0")
    magnitude = whole.cast(pl.Int64) * 100 + fraction.cast(pl.Int64)
    return pl.when(whole.is_not_null()).then(
        pl.when(c.str.starts_with("-")).then(-magnitude).otherwise(magnitude)
    )


def _shown(column: str, *, number: bool = False) -> pl.Expr:
    """`` (value)`` when the value is safe to show (see ``_SHOWN_*``), else a neutral note."""
    c = pl.col(column)
    return (
        pl.when(c.is_null())
        .then(pl.lit(" (NULL)"))
        .when(c.str.contains(_SHOWN_NUMBER if number else _SHOWN_CODE))
        .then(pl.concat_str(pl.lit(" ("), c, pl.lit(")")))
        .otherwise(pl.lit(" (value not shown)"))
    )


def _clean_text(column: str) -> pl.Expr:
    """Trimmed text, with empty meaning unknown (NULL)."""
    c = pl.col(column).str.strip_chars()
    return pl.when(c == "").then(None).otherwise(c)


def _issues(
    frame: pl.DataFrame,
    mask: pl.Expr,
    *,
    code: Reason,
    table: str,
    field: str,
    detail: pl.Expr,
    key: str = "row",
) -> pl.DataFrame:
    return frame.filter(mask).select(
        pl.col(key).alias("row" if key == "row" else key),
        pl.lit(code.value).alias("code"),
        pl.lit(table).alias("table"),
        pl.lit(field).alias("field"),
        detail.alias("detail"),
    )


@dataclass
class _IssueList:
    """The issues found in one table's ``rows``, check by check, in the order reported."""

    rows: pl.DataFrame
    table: str
    cols: dict[str, str]  # our column name -> the legacy one
    found: list[pl.DataFrame] = field(default_factory=list)

    def add(self, mask: pl.Expr, code: Reason, name: str, detail: pl.Expr) -> None:
        self.found.append(
            _issues(
                self.rows, mask, code=code, table=self.table, field=self.cols[name], detail=detail
            )
        )

    def add_amount_checks(self, spec: SystemSpec) -> None:
        """An ``amount`` column (parsed into ``pence``) that is empty, or not money."""
        legacy = self.cols["amount"]
        self.add(
            _blank(spec, "amount"), Reason.MISSING_VALUE, "amount", pl.lit(f"{legacy} is empty")
        )
        money = "pounds like 1234.56" if spec.money_in_pounds else "whole pence"
        self.add(
            ~_blank(spec, "amount") & pl.col("pence").is_null(),
            Reason.BAD_AMOUNT,
            "amount",
            pl.concat_str(pl.lit(f"{legacy} is not {money}"), _shown("amount", number=True)),
        )

    def frame(self) -> pl.DataFrame:
        return pl.concat(self.found)


# --- parties --------------------------------------------------------------------------

_PARTY_TEXT = (
    "family_name",
    "given_names",
    "address_line_1",
    "address_line_2",
    "address_line_3",
    "address_line_4",
    "address_line_5",
    "postcode",
)
_PARTY_DATES = ("birth_date", "address_verified_on", "deceased_on")


def _party_key_pattern(spec: SystemSpec) -> str:
    return r"^P[0-9]{9}$" if spec.money_in_pounds else r"^[0-9]{1,18}$"


def _parse_parties(spec: SystemSpec, raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed parties keyed by their legacy key, and their problems keyed the same way."""
    cols = spec.party_cols
    common = raw.rename({legacy: name for name, legacy in cols.items()})
    table = spec.party_table
    employment_map = spec.employment_codes
    parsed = common.with_columns(
        *[_clean_text(name).alias(name) for name in _PARTY_TEXT],
        pl.col("nino").str.replace_all(" ", "").str.to_uppercase().alias("nino_clean"),
        *[_parse_date(spec, name).alias(f"{name}_value") for name in _PARTY_DATES],
        *[_date_problem(spec, name).alias(f"{name}_problem") for name in _PARTY_DATES],
        pl.col("employment")
        .replace_strict(employment_map, default=None, return_dtype=pl.String)
        .alias("employment_value"),
        pl.col("key").count().over("key").alias("key_rows"),
    ).with_columns(
        pl.when(pl.col("nino_clean") == "").then(None).otherwise(pl.col("nino_clean")).alias("nino")
    )
    ref = pl.concat_str(pl.lit(f"{spec.name}:"), pl.col("key"))
    issues = [
        _issues(
            parsed,
            pl.col(f"{name}_problem").is_not_null(),
            key="key",
            code=Reason.BAD_DATE,
            table=table,
            field=cols[name],
            detail=pl.concat_str(
                pl.lit(f"{cols[name]} of "), ref, pl.lit(" "), pl.col(f"{name}_problem")
            ),
        )
        for name in _PARTY_DATES
    ]
    issues.append(
        _issues(
            parsed,
            _blank(spec, "employment"),
            key="key",
            code=Reason.MISSING_VALUE,
            table=table,
            field=cols["employment"],
            detail=pl.concat_str(pl.lit(f"{cols['employment']} of "), ref, pl.lit(" is empty")),
        )
    )
    issues.append(
        _issues(
            parsed,
            ~_blank(spec, "employment") & pl.col("employment_value").is_null(),
            key="key",
            code=Reason.UNKNOWN_CODE,
            table=table,
            field=cols["employment"],
            detail=pl.concat_str(
                pl.lit(f"{cols['employment']} of "),
                ref,
                pl.lit(" is not one of " + "/".join(employment_map)),
            ),
        )
    )
    issues.append(
        _issues(
            parsed,
            ~pl.col("key").str.contains(_party_key_pattern(spec)) | (pl.col("key_rows") > 1),
            key="key",
            code=Reason.BAD_REFERENCE,
            table=table,
            field=cols["key"],
            detail=pl.concat_str(
                pl.lit(f"{cols['key']} "),
                pl.col("key"),
                pl.lit(" is malformed or not unique"),
            ),
        )
    )
    party_issues = pl.concat(issues).filter(pl.col("key").is_not_null())
    typed = parsed.filter(pl.col("key").is_not_null()).select(
        pl.col("key"),
        *[pl.col(name) for name in ("family_name", "given_names")],
        pl.col("birth_date_value").alias("birth_date"),
        pl.col("nino"),
        *[pl.col(f"address_line_{i}") for i in range(1, 6)],
        pl.col("postcode"),
        pl.col("address_verified_on_value").alias("address_verified_on"),
        pl.col("deceased_on_value").alias("deceased_on"),
        pl.col("employment_value").alias("employment"),
    )
    return typed, party_issues


def _party_issues_for_cases(
    spec: SystemSpec, cases: pl.DataFrame, party_issues: pl.DataFrame
) -> pl.DataFrame:
    """A bad party row is an issue of every case that points at it, named by role."""
    out = []
    for role in ("pwc", "nrp"):
        out.append(
            cases.select("row", pl.col(f"{role}_key").alias("key"))
            .join(party_issues, on="key", how="inner")
            .select(
                "row",
                "code",
                "table",
                "field",
                pl.concat_str(pl.lit(f"{role.upper()} party: "), pl.col("detail")).alias("detail"),
            )
        )
    return pl.concat(out)


def _loaded_parties(
    spec: SystemSpec, parties: pl.DataFrame, good_cases: pl.DataFrame
) -> pl.DataFrame:
    used = pl.concat([good_cases["pwc_key"], good_cases["nrp_key"]]).unique().implode()
    frame = (
        parties.filter(pl.col("key").is_in(used))
        .unique(subset="key", keep="first")
        .with_columns(
            pl.concat_str(pl.lit(f"{spec.name}:"), pl.col("key")).alias("party_ref"),
            pl.lit(spec.name).alias("source_system"),
        )
    )
    fields = [c for c in PARTY_SCHEMA if c != "source_fingerprint"]
    frame = frame.select(fields)
    return frame.with_columns(fingerprint(frame, fields).alias("source_fingerprint"))


# --- cases ----------------------------------------------------------------------------


def _parse_cases(
    spec: SystemSpec, raw: pl.DataFrame, parties: pl.DataFrame, as_at: date
) -> tuple[pl.DataFrame, pl.DataFrame]:
    cols = spec.case_cols
    table = spec.case_table
    common = raw.rename({legacy: name for name, legacy in cols.items() if name != "ref"})
    if "ref" in cols and cols["ref"] == cols["key"]:
        common = common.with_columns(pl.col("key").alias("ref"))
    else:
        common = common.rename({cols["ref"]: "ref"})
    if "scheme" not in common.columns:
        common = common.with_columns(pl.lit("1993").alias("scheme"))  # CSCS ran the 1993 scheme
    party_keys = parties["key"].unique().implode()
    flags = {spec.flag_true: True, spec.flag_false: False}
    cases = (
        common.with_row_index("row")
        .with_columns(
            _parse_date(spec, "effective_date").alias("eff"),
            _date_problem(spec, "effective_date").alias("eff_problem"),
            _parse_date(spec, "liability_end_date").alias("end"),
            _date_problem(spec, "liability_end_date").alias("end_problem"),
            pl.col("dv_marker")
            .replace_strict(flags, default=None, return_dtype=pl.Boolean)
            .alias("dv"),
            pl.col("stop_acting")
            .replace_strict(flags, default=None, return_dtype=pl.Boolean)
            .alias("stop"),
            pl.when(_blank(spec, "enforcement"))
            .then(None)
            .otherwise(pl.col("enforcement"))
            .alias("enf"),
            pl.col("pwc_key").is_in(party_keys).alias("pwc_known"),
            pl.col("nrp_key").is_in(party_keys).alias("nrp_known"),
            pl.col("ref").count().over("ref").alias("ref_rows"),
            pl.col("key").count().over("key").alias("key_rows"),
            _case_quarantine_ref(spec).alias("qref"),
        )
        .with_columns(
            # CSCS case_no is the case reference; CS2 cases are referred to by case_ref.
            pl.col("ref").alias("case_ref"),
        )
    )
    return cases, _case_issues(spec, cases, table, as_at)


def _case_quarantine_ref(spec: SystemSpec) -> pl.Expr:
    """The reference a held case is filed under: its case reference, or for a CS2 case
    without one ``CS2#<case_id>``; never longer than the quarantine column."""
    ref = pl.col("ref")
    blank = _blank(spec, "ref")
    if spec.money_in_pounds:
        fallback = pl.lit(MISSING_REF)
    else:
        fallback = pl.concat_str(pl.lit(f"{spec.name}#"), pl.col("key").fill_null(MISSING_REF))
    return fit_ref(pl.when(blank).then(fallback).otherwise(ref))


def _case_issues(spec: SystemSpec, cases: pl.DataFrame, table: str, as_at: date) -> pl.DataFrame:
    cols = spec.case_cols
    issues = _IssueList(cases, table, cols)
    add = issues.add

    def text(*parts: str | pl.Expr) -> pl.Expr:
        return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])

    ref_col = cols["ref"]
    add(_blank(spec, "ref"), Reason.MISSING_VALUE, "ref", text(f"{ref_col} is empty"))
    add(
        ~_blank(spec, "ref")
        & (~pl.col("ref").str.contains(spec.case_ref_pattern) | (pl.col("ref_rows") > 1)),
        Reason.BAD_REFERENCE,
        "ref",
        text(
            f"{ref_col} is not unique or not in the format ", spec.case_ref_pattern, _shown("ref")
        ),
    )
    if cols["key"] != ref_col:
        add(
            pl.col("key_rows") > 1,
            Reason.BAD_REFERENCE,
            "key",
            text(f"{cols['key']} is not unique"),
        )
    if "scheme" in cols:
        add(_blank(spec, "scheme"), Reason.MISSING_VALUE, "scheme", text("scheme is empty"))
        add(
            ~_blank(spec, "scheme") & ~pl.col("scheme").is_in(["1993", "2003"]),
            Reason.UNKNOWN_CODE,
            "scheme",
            text("scheme is not 1993 or 2003", _shown("scheme")),
        )
    eff = cols["effective_date"]
    add(
        _blank(spec, "effective_date"),
        Reason.MISSING_VALUE,
        "effective_date",
        text(f"{eff} is empty"),
    )
    add(
        pl.col("eff_problem").is_not_null(),
        Reason.BAD_DATE,
        "effective_date",
        text(f"{eff} ", pl.col("eff_problem"), _shown("effective_date", number=True)),
    )
    add(
        pl.col("eff") > pl.lit(as_at),
        Reason.FUTURE_EFFECTIVE_DATE,
        "effective_date",
        text(
            f"{eff} ",
            pl.col("eff").dt.to_string("%Y-%m-%d"),
            f" is after the as-at date {as_at.isoformat()}",
        ),
    )
    end = cols["liability_end_date"]
    add(
        pl.col("end_problem").is_not_null(),
        Reason.BAD_DATE,
        "liability_end_date",
        text(f"{end} ", pl.col("end_problem"), _shown("liability_end_date", number=True)),
    )
    for role in ("pwc", "nrp"):
        name = cols[f"{role}_key"]
        key = f"{role}_key"
        add(_blank(spec, key), Reason.MISSING_VALUE, key, text(f"{name} is empty"))
        add(
            ~_blank(spec, key) & ~pl.col(f"{role}_known"),
            Reason.UNKNOWN_PARTY,
            key,
            text(f"{name}", _shown(key), f" is not in {spec.party_table}"),
        )
    add(
        ~_blank(spec, "pwc_key") & (pl.col("pwc_key") == pl.col("nrp_key")),
        Reason.SAME_PARTY,
        "nrp_key",
        text(f"{cols['pwc_key']} and {cols['nrp_key']} name the same party"),
    )
    for flag, parsed in (("dv_marker", "dv"), ("stop_acting", "stop")):
        name = cols[flag]
        add(_blank(spec, flag), Reason.MISSING_VALUE, flag, text(f"{name} is empty"))
        add(
            ~_blank(spec, flag) & pl.col(parsed).is_null(),
            Reason.UNKNOWN_CODE,
            flag,
            text(f"{name} is not {spec.flag_true} or {spec.flag_false}", _shown(flag)),
        )
    add(
        pl.col("enf").is_not_null() & ~pl.col("enf").is_in(list(spec.enforcement_codes)),
        Reason.UNKNOWN_CODE,
        "enforcement",
        text(
            f"{cols['enforcement']} is not one of {'/'.join(spec.enforcement_codes)}",
            _shown("enforcement"),
        ),
    )
    return issues.frame()


def _case_index(cases: pl.DataFrame) -> pl.DataFrame:
    """Case key -> the case row and reference its debt and payment rows belong to.

    Unique per key: should a replica hold one key twice (both rows are quarantined as
    BAD_REFERENCE), each debt row still belongs to exactly one case row, so no penny is
    counted twice.
    """
    return (
        cases.filter(pl.col("key").is_not_null())
        .group_by("key")
        .agg(pl.col("row").min())
        .join(cases.select("row", "case_ref"), on="row", how="left")
    )


# --- debts and payments ---------------------------------------------------------------


def _orphan_ref(spec: SystemSpec) -> pl.Expr:
    key = pl.col("case_key")
    if spec.money_in_pounds:
        ref = pl.when(_blank(spec, "case_key")).then(pl.lit(MISSING_REF)).otherwise(key)
    else:
        ref = pl.concat_str(pl.lit(f"{spec.name}#"), key.fill_null(MISSING_REF))
    return fit_ref(ref)


def _parse_debts(
    spec: SystemSpec, raw: pl.DataFrame, case_index: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    cols = spec.debt_cols
    table = spec.debt_table
    debts = (
        _with_case(raw, cols, case_index)
        .with_columns(
            _parse_pence(spec, "amount").alias("pence"),
            pl.col("creditor").is_in(list(CREDITORS)).fill_null(False).alias("creditor_ok"),
        )
        .with_columns(
            # What the held rows are worth per creditor: readable balances, unreadable = 0.
            pl.when(pl.col("creditor") == "PWC")
            .then(pl.col("pence").fill_null(0))
            .otherwise(0)
            .alias("pwc"),
            pl.when(pl.col("creditor") == "SOS")
            .then(pl.col("pence").fill_null(0))
            .otherwise(0)
            .alias("sos"),
            pl.when(pl.col("creditor_ok"))
            .then(0)
            .otherwise(pl.col("pence").fill_null(0))
            .alias("unreadable"),
        )
    )
    debts, orphans = _split_orphans(spec, debts, ITEM_ORPHAN_DEBT, Reason.ORPHAN_DEBT, table, cols)
    debts = debts.with_columns(pl.len().over("row", "creditor").alias("same_creditor_rows"))
    issues = _IssueList(debts, table, cols)
    add = issues.add

    add(
        _blank(spec, "creditor"),
        Reason.MISSING_VALUE,
        "creditor",
        pl.lit(f"{cols['creditor']} is empty"),
    )
    add(
        ~_blank(spec, "creditor") & ~pl.col("creditor_ok"),
        Reason.UNKNOWN_CODE,
        "creditor",
        pl.concat_str(pl.lit(f"{cols['creditor']} is not PWC or SOS"), _shown("creditor")),
    )
    add(
        pl.col("creditor_ok") & (pl.col("same_creditor_rows") > 1),
        Reason.DUPLICATE_DEBT,
        "creditor",
        pl.concat_str(
            pl.col("same_creditor_rows").cast(pl.String),
            pl.lit(" rows for creditor "),
            pl.col("creditor"),
        ),
    )
    issues.add_amount_checks(spec)
    add(
        pl.col("pence") < 0,
        Reason.CREDIT_BALANCE,
        "amount",
        pl.concat_str(
            pl.lit(f"{cols['amount']} is a credit balance"), _shown("amount", number=True)
        ),
    )
    # Duplicate rows raise one issue per row; keep one per case, creditor and code.
    return debts, issues.frame().unique(maintain_order=True), orphans


def _parse_payments(
    spec: SystemSpec, raw: pl.DataFrame, case_index: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    cols = spec.payment_cols
    table = spec.payment_table
    payments = _with_case(raw, cols, case_index).with_columns(
        _parse_date(spec, "paid_on").alias("paid"),
        _date_problem(spec, "paid_on").alias("paid_problem"),
        _parse_pence(spec, "amount").alias("pence"),
        pl.lit(0, dtype=pl.Int64).alias("pwc"),
        pl.lit(0, dtype=pl.Int64).alias("sos"),
        pl.lit(0, dtype=pl.Int64).alias("unreadable"),
    )
    payments, orphans = _split_orphans(
        spec, payments, ITEM_ORPHAN_PAYMENT, Reason.ORPHAN_PAYMENT, table, cols
    )
    issues = _IssueList(payments, table, cols)
    add = issues.add

    add(
        _blank(spec, "paid_on"),
        Reason.MISSING_VALUE,
        "paid_on",
        pl.lit(f"{cols['paid_on']} is empty"),
    )
    add(
        pl.col("paid_problem").is_not_null(),
        Reason.BAD_DATE,
        "paid_on",
        pl.concat_str(
            pl.lit(f"{cols['paid_on']} "), pl.col("paid_problem"), _shown("paid_on", number=True)
        ),
    )
    issues.add_amount_checks(spec)
    return payments, issues.frame().unique(maintain_order=True), orphans


def _with_case(raw: pl.DataFrame, cols: dict[str, str], case_index: pl.DataFrame) -> pl.DataFrame:
    """Legacy rows under our column names, with their case's ``row`` (null: no such case)."""
    return raw.rename({legacy: name for name, legacy in cols.items()}).join(
        case_index, left_on="case_key", right_on="key", how="left"
    )


def _split_orphans(
    spec: SystemSpec,
    rows: pl.DataFrame,
    kind: str,
    code: Reason,
    table: str,
    cols: dict[str, str],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The rows of known cases, and the orphans (rows of no case) as quarantine items."""
    orphans = _orphan_items(
        spec, rows.filter(pl.col("row").is_null()), kind, code, table, cols["case_key"]
    )
    return rows.filter(pl.col("row").is_not_null()), orphans


def _orphan_items(
    spec: SystemSpec,
    rows: pl.DataFrame,
    kind: str,
    code: Reason,
    table: str,
    key_column: str,
) -> pl.DataFrame:
    """Rows whose case does not exist, one item per case reference they carry."""
    case_table = spec.case_table
    return (
        rows.with_columns(_orphan_ref(spec).alias("case_ref"))
        .group_by("case_ref")
        .agg(
            pl.col("pwc").sum().cast(pl.Int64).alias("pwc_pence"),
            pl.col("sos").sum().cast(pl.Int64).alias("sos_pence"),
            pl.col("unreadable").sum().cast(pl.Int64).alias("unreadable_pence"),
            pl.len().cast(pl.Int32).alias("row_count"),
            pl.col("case_key").first().alias("case_key"),
        )
        .select(
            pl.lit(spec.name).alias("source_system"),
            "case_ref",
            pl.lit(kind).alias("item_kind"),
            "pwc_pence",
            "sos_pence",
            "unreadable_pence",
            "row_count",
            pl.concat_list(
                pl.struct(
                    pl.lit(code.value).alias("code"),
                    pl.lit(table).alias("table"),
                    pl.lit(key_column).alias("field"),
                    pl.concat_str(
                        pl.col("row_count").cast(pl.String),
                        pl.lit(f" {table} row(s) for {key_column}"),
                        _shown("case_key"),
                        pl.lit(f", which is not in {case_table}"),
                    ).alias("detail"),
                )
            ).alias("reasons"),
        )
    )


# --- quarantine items for cases -------------------------------------------------------


def _case_items(
    spec: SystemSpec,
    bad_cases: pl.DataFrame,
    bad_debts: pl.DataFrame,
    bad_payments: pl.DataFrame,
    issues: pl.DataFrame,
) -> pl.DataFrame:
    """One item per held case reference: every reason, the held pence and row count."""
    refs = bad_cases.select("row", "qref")
    rows_held = pl.concat(
        [
            refs.select(
                "qref",
                pl.lit(0, dtype=pl.Int64).alias("pwc"),
                pl.lit(0, dtype=pl.Int64).alias("sos"),
                pl.lit(0, dtype=pl.Int64).alias("unreadable"),
            ),
            *(
                held.join(refs, on="row").select(
                    "qref", *(pl.col(c).cast(pl.Int64) for c in ("pwc", "sos", "unreadable"))
                )
                for held in (bad_debts, bad_payments)
            ),
        ]
    )
    money = rows_held.group_by("qref").agg(
        pl.col("pwc").sum().alias("pwc_pence"),
        pl.col("sos").sum().alias("sos_pence"),
        pl.col("unreadable").sum().alias("unreadable_pence"),
        pl.len().cast(pl.Int32).alias("row_count"),
    )
    reasons = (
        issues.join(refs, on="row")
        .select("qref", "code", "table", "field", "detail")
        .unique()
        .sort("qref", "code", "table", "field", "detail")
        .group_by("qref", maintain_order=True)
        .agg(pl.struct("code", "table", "field", "detail").alias("reasons"))
    )
    return money.join(reasons, on="qref", how="left").select(
        pl.lit(spec.name).alias("source_system"),
        pl.col("qref").alias("case_ref"),
        pl.lit(ITEM_CASE).alias("item_kind"),
        "pwc_pence",
        "sos_pence",
        "unreadable_pence",
        "row_count",
        pl.col("reasons").cast(pl.List(REASON_DTYPE)),
    )


# --- what is loaded -------------------------------------------------------------------


def _loaded_cases(
    spec: SystemSpec, cases: pl.DataFrame, debts: pl.DataFrame, payments: pl.DataFrame
) -> pl.DataFrame:
    debt_text = (
        debts.sort("row", "creditor")
        .group_by("row", maintain_order=True)
        .agg(
            pl.concat_str("creditor", pl.lit("="), pl.col("pence").cast(pl.String))
            .str.join(";")
            .alias("debt_text")
        )
    )
    payment_text = (
        payments.select(
            "row",
            pl.concat_str(
                pl.col("paid").dt.to_string("%Y-%m-%d"),
                pl.lit("="),
                pl.col("pence").cast(pl.String),
            ).alias("entry"),
        )
        .sort("row", "entry")
        .group_by("row", maintain_order=True)
        .agg(pl.col("entry").str.join(";").alias("payment_text"))
    )
    frame = cases.select(
        "row",
        pl.col("case_ref"),
        pl.lit(spec.name).alias("source_system"),
        pl.col("key").alias("source_case_key"),
        pl.col("scheme"),
        pl.col("eff").alias("effective_date"),
        pl.col("end").alias("liability_end_date"),
        pl.concat_str(pl.lit(f"{spec.name}:"), pl.col("pwc_key")).alias("pwc_party_ref"),
        pl.concat_str(pl.lit(f"{spec.name}:"), pl.col("nrp_key")).alias("nrp_party_ref"),
        pl.col("dv").alias("dv_marker"),
        pl.col("stop").alias("stop_acting"),
        pl.col("enf").alias("enforcement_code"),
    )
    frame = frame.join(debt_text, on="row", how="left").join(payment_text, on="row", how="left")
    fields = [c for c in CASE_SCHEMA if c != "source_fingerprint"]
    fingerprinted = frame.with_columns(
        fingerprint(frame, [*fields, "debt_text", "payment_text"]).alias("source_fingerprint")
    )
    return fingerprinted.select(list(CASE_SCHEMA))


def _payment_days(payments: pl.DataFrame) -> pl.DataFrame:
    return (
        payments.group_by("case_ref", pl.col("paid").alias("paid_on"))
        .agg(
            pl.len().cast(pl.Int32).alias("payment_count"),
            (pl.col("pence") > 0).sum().cast(pl.Int32).alias("positive_count"),
            pl.col("pence").sum().cast(pl.Int64).alias("amount_pence"),
        )
        .select(list(PAYMENT_DAY_SCHEMA))
    )


# --- fingerprints ---------------------------------------------------------------------


def _canonical_field(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A field as unambiguous text: NULL is ``\\N``; ``\\`` and ``|`` are escaped."""
    if dtype == pl.Date:
        text = expr.dt.to_string("%Y-%m-%d")
    elif dtype == pl.Boolean:
        text = pl.when(expr).then(pl.lit("1")).otherwise(pl.lit("0"))
    else:
        text = expr.cast(pl.String)
    escaped = text.str.replace_all("\\", "\\\\", literal=True).str.replace_all(
        "|", "\\|", literal=True
    )
    return pl.when(expr.is_null()).then(pl.lit("\\N")).otherwise(escaped)


FINGERPRINT_CHUNK = 100_000


def fingerprint(frame: pl.DataFrame, fields: list[str]) -> pl.Series:
    """sha256 hex of each row's canonical text over ``fields`` (version-prefixed).

    Taken with hashlib, not polars' own hash, so it is the same under every polars
    version; the one Python step per row is a hash call (a few seconds at 1.3M rows). Done
    in chunks so that only one chunk's canonical text is ever held as Python strings.
    """
    canonical = pl.concat_str(
        [pl.lit(FINGERPRINT_VERSION)]
        + [_canonical_field(pl.col(name), frame.schema[name]) for name in fields],
        separator="|",
    ).alias("canonical")
    chunks = [
        pl.Series(
            "source_fingerprint",
            [
                hashlib.sha256(text.encode("utf-8")).hexdigest()
                for text in chunk.select(canonical)["canonical"]
            ],
            dtype=pl.String,
        )
        for chunk in frame.select(fields).iter_slices(FINGERPRINT_CHUNK)
    ]
    if not chunks:
        return pl.Series("source_fingerprint", [], dtype=pl.String)
    return pl.concat(chunks, rechunk=True)


def _concat(frames: list[pl.DataFrame], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    cast = [
        frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
        for frame in frames
    ]
    if not cast:
        return pl.DataFrame(schema=schema)
    return pl.concat(cast)
