"""Features: the facts about each debt, for the as-of date D, that conditions are written over.

``compute_features(debts, as_of, params)`` takes one row per debt (the input contract below,
exactly what the store provides) and returns the input columns, ``as_of``, and every derived
feature, computed vectorised in polars. D is always passed in; nothing reads the clock.

A few features depend on rule parameters (the paying window, the address window, recovery
rates, the cost of collection). Evaluation (``decide``, ``collectability``, ``check_rules``,
``simulate``, ``explain_debt``) recomputes those from the input columns with the rule set's
own parameters (``bind_features``), so a frame computed with one rule set can never be
evaluated with another's parameters by mistake.

The catalogue below (``FEATURES``) is the documentation: rules/README.md repeats it for policy
staff, and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

import polars as pl

from csa_closure.domain.states import CREDITORS
from csa_closure.policy import calendar
from csa_closure.policy.conditions.ast import ValueType
from csa_closure.policy.errors import FeatureInputError, PolicyInternalError
from csa_closure.policy.params import BASIS_POINTS, ParamType

EMPLOYMENTS = ("EMPLOYED", "SELF_EMPLOYED", "BENEFITS", "UNKNOWN")
SOURCE_SYSTEMS = ("CSCS", "CS2")


class FeatureType(StrEnum):
    INTEGER = "integer"
    BOOLEAN = "boolean"
    TEXT = "text"
    DATE = "date"  # shown by explain; not usable in conditions (use the derived features)


_POLARS_TYPE = {
    FeatureType.INTEGER: pl.Int64,
    FeatureType.BOOLEAN: pl.Boolean,
    FeatureType.TEXT: pl.String,
    FeatureType.DATE: pl.Date,
}


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    meaning: str
    parameters: tuple[str, ...] = ()  # the parameters it is computed with

    @property
    def value_type(self) -> ValueType:
        return ValueType(self.type.value)


@dataclass(frozen=True)
class InputColumn:
    name: str
    type: FeatureType
    nullable: bool
    meaning: str


# --- the input contract -----------------------------------------------------------------------

INPUT_COLUMNS: tuple[InputColumn, ...] = (
    InputColumn("debt_id", FeatureType.INTEGER, False, "the debt's id in the store (unique)"),
    InputColumn("case_ref", FeatureType.TEXT, False, "the case reference"),
    InputColumn("source_system", FeatureType.TEXT, False, "CSCS or CS2"),
    InputColumn("scheme", FeatureType.TEXT, False, "the statutory scheme: 1993 or 2003"),
    InputColumn("creditor", FeatureType.TEXT, False, "PWC or SOS"),
    InputColumn("balance_pence", FeatureType.INTEGER, False, "the balance owed, in pence"),
    InputColumn("effective_date", FeatureType.DATE, False, "the case's effective date"),
    InputColumn("liability_end_date", FeatureType.DATE, True, "NULL = no end date"),
    InputColumn("enforcement_code", FeatureType.TEXT, True, "NULL = none recorded"),
    InputColumn("stop_acting", FeatureType.BOOLEAN, False, "the PWC asked the agency to stop"),
    InputColumn("dv_marker", FeatureType.BOOLEAN, False, "domestic violence marker on the case"),
    InputColumn("pwc_deceased_on", FeatureType.DATE, True, "the PWC's date of death"),
    InputColumn("nrp_deceased_on", FeatureType.DATE, True, "the NRP's date of death"),
    InputColumn("nrp_has_nino", FeatureType.BOOLEAN, False, "a NINO is held for the NRP"),
    InputColumn("nrp_address_verified_on", FeatureType.DATE, True, "NRP address last confirmed"),
    InputColumn("nrp_employment", FeatureType.TEXT, False, ", ".join(EMPLOYMENTS)),
    InputColumn(
        "last_positive_payment_on",
        FeatureType.DATE,
        True,
        "the latest day with a payment > 0 on or before D; NULL if none",
    ),
)
_INPUT = {c.name: c for c in INPUT_COLUMNS}

# --- parameters the features are computed with --------------------------------------------------

PAYING_WINDOW = "paying_window_months"
ADDRESS_WINDOW = "address_confirmed_within_years"
COLLECTION_COST = "collection_cost_per_debt_pence"
RATE_PARAMETERS: dict[str, str] = {
    "EMPLOYED": "recovery_rate_employed",
    "SELF_EMPLOYED": "recovery_rate_self_employed",
    "BENEFITS": "recovery_rate_benefits",
    "UNKNOWN": "recovery_rate_unknown",
}

# Every rule set must declare these, with these types: features are computed with them.
FEATURE_PARAMETERS: dict[str, ParamType] = {
    PAYING_WINDOW: ParamType.MONTHS,
    ADDRESS_WINDOW: ParamType.YEARS,
    **dict.fromkeys(RATE_PARAMETERS.values(), ParamType.RATE),
    COLLECTION_COST: ParamType.PENCE,
}

# --- the catalogue --------------------------------------------------------------------------------

FEATURES: tuple[Feature, ...] = (
    Feature("balance_pence", FeatureType.INTEGER, "The debt's balance in pence, as pulled."),
    Feature("creditor", FeatureType.TEXT, "Who the debt is owed to: 'PWC' or 'SOS'."),
    Feature("source_system", FeatureType.TEXT, "The legacy system: 'CSCS' or 'CS2'."),
    Feature("scheme", FeatureType.TEXT, "The statutory scheme: '1993' or '2003'."),
    Feature(
        "case_age_years",
        FeatureType.INTEGER,
        "Whole calendar years from the effective date to D: the largest N with the effective "
        "date on or before D minus N calendar years (month ends clamped). 'Ten years or older' "
        "is case_age_years >= 10. Negative if the effective date is after D.",
    ),
    Feature(
        "liability_ongoing",
        FeatureType.BOOLEAN,
        "No liability end date, or the end date is after D (ending on D is not ongoing).",
    ),
    Feature(
        "paying",
        FeatureType.BOOLEAN,
        "A payment of more than zero dated on or after D minus paying_window_months calendar "
        "months and not after D.",
        (PAYING_WINDOW,),
    ),
    Feature(
        "days_since_last_payment",
        FeatureType.INTEGER,
        "Days from the last payment of more than zero (on or before D) to D; 0 if paid on D; "
        "NULL if there is none.",
    ),
    Feature(
        "enforcement_active",
        FeatureType.BOOLEAN,
        "An enforcement code is recorded on the case (enforcement_code is not NULL).",
    ),
    Feature(
        "enforcement_code", FeatureType.TEXT, "The enforcement code as recorded; NULL if none."
    ),
    Feature("pwc_deceased", FeatureType.BOOLEAN, "The PWC's date of death is on or before D."),
    Feature("nrp_deceased", FeatureType.BOOLEAN, "The NRP's date of death is on or before D."),
    Feature("stop_acting", FeatureType.BOOLEAN, "The PWC asked the agency to stop acting."),
    Feature("dv_marker", FeatureType.BOOLEAN, "A domestic violence marker is on the case."),
    Feature(
        "nrp_has_nino", FeatureType.BOOLEAN, "A National Insurance number is held for the NRP."
    ),
    Feature(
        "nrp_address_confirmed",
        FeatureType.BOOLEAN,
        "The NRP's address was confirmed on or after D minus address_confirmed_within_years "
        "calendar years, and not after D (a confirmation dated after D is ignored, like a "
        "payment after D, so a decision for D can be reproduced later).",
        (ADDRESS_WINDOW,),
    ),
    Feature(
        "nrp_traceable",
        FeatureType.BOOLEAN,
        "nrp_has_nino OR nrp_address_confirmed.",
        (ADDRESS_WINDOW,),
    ),
    Feature(
        "nrp_untraceable",
        FeatureType.BOOLEAN,
        "NOT nrp_traceable: no NINO and no address confirmed within the window.",
        (ADDRESS_WINDOW,),
    ),
    Feature(
        "nrp_employment",
        FeatureType.TEXT,
        "The NRP's employment: 'EMPLOYED', 'SELF_EMPLOYED', 'BENEFITS' or 'UNKNOWN'.",
    ),
    Feature(
        "recovery_rate_bp",
        FeatureType.INTEGER,
        "The recovery rate for the NRP's employment, in basis points (0.60 is 6000).",
        tuple(RATE_PARAMETERS.values()),
    ),
    Feature(
        "expected_yield_pence",
        FeatureType.INTEGER,
        "floor(balance_pence x recovery_rate_bp / 10000), in integer arithmetic (rounded "
        "down to the penny).",
        tuple(RATE_PARAMETERS.values()),
    ),
    Feature(
        "collection_cost_pence",
        FeatureType.INTEGER,
        "The cost of collecting one debt: collection_cost_per_debt_pence.",
        (COLLECTION_COST,),
    ),
)
FEATURES_BY_NAME: dict[str, Feature] = {f.name: f for f in FEATURES}
CONDITION_TYPES: dict[str, ValueType] = {f.name: f.value_type for f in FEATURES}
PARAMETER_FEATURES = tuple(f.name for f in FEATURES if f.parameters)

# Columns of the features frame that a condition cannot use, and why.
NOT_IN_CONDITIONS: dict[str, str] = {
    "debt_id": "identifies a debt; rules decide on facts, not on which debt it is",
    "case_ref": "identifies a case; rules decide on facts, not on which case it is",
    "as_of": "is a date; conditions use features computed for the as-of date",
    "effective_date": "is a date; use case_age_years",
    "liability_end_date": "is a date; use liability_ongoing",
    "pwc_deceased_on": "is a date; use pwc_deceased",
    "nrp_deceased_on": "is a date; use nrp_deceased",
    "nrp_address_verified_on": "is a date; use nrp_address_confirmed or nrp_traceable",
    "last_positive_payment_on": "is a date; use paying or days_since_last_payment",
}

# The columns of compute_features' result, in order.
OUTPUT_COLUMNS: tuple[str, ...] = (
    *(c.name for c in INPUT_COLUMNS),
    "as_of",
    *(f.name for f in FEATURES if f.name not in _INPUT),
)


FEATURES_SCHEMA: dict[str, Any] = {
    **{c.name: _POLARS_TYPE[c.type] for c in INPUT_COLUMNS},
    "as_of": pl.Date,
    **{f.name: _POLARS_TYPE[f.type] for f in FEATURES if f.name not in _INPUT},
}


@dataclass(frozen=True)
class FeatureParameters:
    """The parameter values features are computed with (rates in basis points)."""

    paying_window_months: int
    address_confirmed_within_years: int
    recovery_rate_bp: tuple[tuple[str, int], ...]  # (employment, basis points)
    collection_cost_pence: int

    @classmethod
    def from_values(cls, values: Mapping[str, int | bool]) -> FeatureParameters:
        return cls(
            paying_window_months=int(values[PAYING_WINDOW]),
            address_confirmed_within_years=int(values[ADDRESS_WINDOW]),
            recovery_rate_bp=tuple(
                (employment, int(values[name])) for employment, name in RATE_PARAMETERS.items()
            ),
            collection_cost_pence=int(values[COLLECTION_COST]),
        )


class HasFeatureParameters(Protocol):
    def feature_parameters(self) -> FeatureParameters: ...


def _feature_parameters(params: FeatureParameters | HasFeatureParameters) -> FeatureParameters:
    if isinstance(params, FeatureParameters):
        return params
    return params.feature_parameters()


# --- computing features ---------------------------------------------------------------------------


def compute_features(
    debts: pl.DataFrame,
    as_of: date,
    params: FeatureParameters | HasFeatureParameters,
) -> pl.DataFrame:
    """The features of every debt for the as-of date ``as_of``: the input columns, ``as_of``,
    and every feature in ``FEATURES``, one row per debt in the input order.

    ``params`` is a ``RuleSet`` or ``FeatureParameters``. Raises ``FeatureInputError`` if the
    input breaks the contract (missing column, wrong type, NULL where not allowed, an unknown
    code, a negative balance, a duplicate debt id, a last payment after D).
    """
    if not isinstance(as_of, date):
        raise TypeError("as_of must be a datetime.date")
    inputs = _validated_inputs(debts, as_of)
    base = inputs.with_columns(_base_features(as_of))
    return _with_parameter_features(base, as_of, _feature_parameters(params)).select(OUTPUT_COLUMNS)


def bind_features(
    features: pl.DataFrame, params: FeatureParameters | HasFeatureParameters
) -> pl.DataFrame:
    """``features`` with every parameter-dependent feature recomputed with ``params``."""
    missing = [c for c in OUTPUT_COLUMNS if c not in features.columns]
    if missing:
        raise FeatureInputError(
            "the features frame lacks columns " + ", ".join(missing) + ": make it with "
            "compute_features"
        )
    if features.height == 0:
        return features
    as_of_values = features["as_of"].unique()
    if as_of_values.len() != 1 or as_of_values[0] is None:
        raise FeatureInputError("the features frame must be computed for exactly one as-of date")
    return _with_parameter_features(features, as_of_values[0], _feature_parameters(params))


def _validated_inputs(debts: pl.DataFrame, as_of: date) -> pl.DataFrame:
    missing = [c.name for c in INPUT_COLUMNS if c.name not in debts.columns]
    if missing:
        raise FeatureInputError("the debts frame lacks columns: " + ", ".join(missing))
    frame = debts.select([_typed(debts, c) for c in INPUT_COLUMNS])
    if frame.height == 0:
        return frame
    checks: list[tuple[str, pl.Expr]] = [
        (f"{c.name} is NULL", pl.col(c.name).is_null()) for c in INPUT_COLUMNS if not c.nullable
    ]
    checks += [
        ("creditor is not PWC or SOS", ~pl.col("creditor").is_in(CREDITORS)),
        ("source_system is not CSCS or CS2", ~pl.col("source_system").is_in(SOURCE_SYSTEMS)),
        (
            "nrp_employment is not " + ", ".join(EMPLOYMENTS),
            ~pl.col("nrp_employment").is_in(EMPLOYMENTS),
        ),
        ("balance_pence is negative", pl.col("balance_pence") < 0),
        (
            "last_positive_payment_on is after the as-of date (the store must compute it for D)",
            pl.col("last_positive_payment_on") > pl.lit(as_of),
        ),
        ("debt_id is not unique", pl.col("debt_id").is_duplicated()),
    ]
    flags = frame.select(
        [
            pl.col("debt_id"),
            *[expr.fill_null(False).alias(f"_check_{i}") for i, (_, expr) in enumerate(checks)],
        ]
    )
    counts = flags.select(pl.col(f"_check_{i}").sum() for i in range(len(checks))).row(0)
    problems = []
    for i, ((what, _), count) in enumerate(zip(checks, counts, strict=True)):
        if count:
            ids = flags.filter(pl.col(f"_check_{i}"))["debt_id"].head(5).to_list()
            problems.append(f"{what} for {count} debts (debt_id {', '.join(map(str, ids))}...)")
    if problems:
        raise FeatureInputError("the debts frame breaks the input contract: " + "; ".join(problems))
    return frame


def _typed(debts: pl.DataFrame, column: InputColumn) -> pl.Expr:
    wanted = _POLARS_TYPE[column.type]
    got = debts.schema[column.name]
    expr = pl.col(column.name)
    if got == wanted:
        return expr
    safe = (
        got == pl.Null
        or (wanted == pl.Int64 and got.is_integer())
        or (wanted == pl.String and isinstance(got, pl.Categorical | pl.Enum))
    )
    if not safe:
        raise FeatureInputError(f"column {column.name} is {got}, expected {wanted}")
    return expr.cast(wanted, strict=True)


def _base_features(as_of: date) -> list[pl.Expr]:
    d = pl.lit(as_of, dtype=pl.Date)
    return [
        d.alias("as_of"),
        case_age_years_expr(pl.col("effective_date"), as_of).alias("case_age_years"),
        (pl.col("liability_end_date").is_null() | (pl.col("liability_end_date") > d)).alias(
            "liability_ongoing"
        ),
        (d - pl.col("last_positive_payment_on"))
        .dt.total_days()
        .cast(pl.Int64)
        .alias("days_since_last_payment"),
        pl.col("enforcement_code").is_not_null().alias("enforcement_active"),
        _on_or_before(pl.col("pwc_deceased_on"), d).alias("pwc_deceased"),
        _on_or_before(pl.col("nrp_deceased_on"), d).alias("nrp_deceased"),
    ]


def _on_or_before(column: pl.Expr, d: pl.Expr) -> pl.Expr:
    return (column <= d).fill_null(False)


def case_age_years_expr(effective_date: pl.Expr, as_of: date) -> pl.Expr:
    """``calendar.whole_years(effective_date, as_of)``, vectorised.

    The anniversary of the effective date in its own year is D's month and day, clamped to
    28 February in a common year when D is 29 February; the age is the difference of years,
    less one if the effective date falls after that anniversary.
    """
    years = pl.lit(as_of.year, dtype=pl.Int64) - effective_date.dt.year().cast(pl.Int64)
    if (as_of.month, as_of.day) == (2, 29):
        anniversary_day = pl.when(effective_date.dt.is_leap_year()).then(29).otherwise(28)
    else:
        anniversary_day = pl.lit(as_of.day)
    month = effective_date.dt.month()
    after = (month > as_of.month) | (
        (month == as_of.month) & (effective_date.dt.day() > anniversary_day)
    )
    return years - after.cast(pl.Int64)


def offset_date(as_of: date, *, months: int = 0, years: int = 0) -> date:
    """``as_of`` minus calendar months/years, by polars' calendar-aware offset (month ends
    clamped), checked against the plain-Python calendar rule."""
    total = months + 12 * years
    by_polars = pl.select(pl.lit(as_of, dtype=pl.Date).dt.offset_by(f"-{total}mo")).item()
    if by_polars != calendar.minus_months(as_of, total):
        raise PolicyInternalError(f"calendar offsets disagree for {as_of} minus {total} months")
    return by_polars  # type: ignore[no-any-return]


def _with_parameter_features(
    frame: pl.DataFrame, as_of: date, fp: FeatureParameters
) -> pl.DataFrame:
    d = pl.lit(as_of, dtype=pl.Date)
    paying_from = pl.lit(offset_date(as_of, months=fp.paying_window_months), dtype=pl.Date)
    address_from = pl.lit(
        offset_date(as_of, years=fp.address_confirmed_within_years), dtype=pl.Date
    )
    last_paid = pl.col("last_positive_payment_on")
    verified = pl.col("nrp_address_verified_on")
    confirmed = ((verified >= address_from) & (verified <= d)).fill_null(False)
    traceable = pl.col("nrp_has_nino") | confirmed
    rate = pl.col("nrp_employment").replace_strict(dict(fp.recovery_rate_bp), return_dtype=pl.Int64)
    return frame.with_columns(
        ((last_paid >= paying_from) & (last_paid <= d)).fill_null(False).alias("paying"),
        confirmed.alias("nrp_address_confirmed"),
        traceable.alias("nrp_traceable"),
        (~traceable).alias("nrp_untraceable"),
        rate.alias("recovery_rate_bp"),
        ((pl.col("balance_pence") * rate) // BASIS_POINTS).alias("expected_yield_pence"),
        pl.lit(fp.collection_cost_pence, dtype=pl.Int64).alias("collection_cost_pence"),
    )


# --- the reference: one debt at a time, in plain Python -----------------------------------------


def reference_features(
    row: Mapping[str, Any], as_of: date, fp: FeatureParameters
) -> dict[str, Any]:
    """The derived features of one input row, computed in plain Python from the policy's
    definitions (the specification ``compute_features`` is tested against)."""
    paying_from = calendar.minus_months(as_of, fp.paying_window_months)
    address_from = calendar.minus_years(as_of, fp.address_confirmed_within_years)
    last_paid = row["last_positive_payment_on"]
    verified = row["nrp_address_verified_on"]
    confirmed = verified is not None and address_from <= verified <= as_of
    traceable = bool(row["nrp_has_nino"]) or confirmed
    rate = dict(fp.recovery_rate_bp)[row["nrp_employment"]]
    end = row["liability_end_date"]
    return {
        "as_of": as_of,
        "case_age_years": calendar.whole_years(row["effective_date"], as_of),
        "liability_ongoing": end is None or end > as_of,
        "paying": last_paid is not None and paying_from <= last_paid <= as_of,
        "days_since_last_payment": None if last_paid is None else (as_of - last_paid).days,
        "enforcement_active": row["enforcement_code"] is not None,
        "pwc_deceased": row["pwc_deceased_on"] is not None and row["pwc_deceased_on"] <= as_of,
        "nrp_deceased": row["nrp_deceased_on"] is not None and row["nrp_deceased_on"] <= as_of,
        "nrp_address_confirmed": confirmed,
        "nrp_traceable": traceable,
        "nrp_untraceable": not traceable,
        "recovery_rate_bp": rate,
        "expected_yield_pence": row["balance_pence"] * rate // BASIS_POINTS,
        "collection_cost_pence": fp.collection_cost_pence,
    }
