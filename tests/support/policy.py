"""Helpers for the policy tests (no tests here): debts frames built from a baseline debt.

The baseline is a PWC debt that reaches the catch-all row (``representation``): £2,000.00
owed, a case effective long ago whose liability ended years before D, no payments, no
enforcement, both parents alive, an employed NRP with a NINO.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from csa_closure.policy import RuleSet, compute_features, decide, load_rule_set
from csa_closure.policy.features import _POLARS_TYPE, INPUT_COLUMNS
from csa_closure.resources import default_rules_dir

D = date(2019, 3, 31)

BASE: dict[str, Any] = {
    "case_ref": "C000000001",
    "source_system": "CSCS",
    "scheme": "1993",
    "creditor": "PWC",
    "balance_pence": 200_000,
    "effective_date": date(2000, 1, 1),
    "liability_end_date": date(2010, 1, 1),
    "enforcement_code": None,
    "stop_acting": False,
    "dv_marker": False,
    "pwc_deceased_on": None,
    "nrp_deceased_on": None,
    "nrp_has_nino": True,
    "nrp_address_verified_on": None,
    "nrp_employment": "EMPLOYED",
    "last_positive_payment_on": None,
}

INPUT_SCHEMA = {c.name: _POLARS_TYPE[c.type] for c in INPUT_COLUMNS}

_default: RuleSet | None = None


def default_rules() -> RuleSet:
    global _default
    if _default is None:
        _default = load_rule_set()
    return _default


def debts(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """A debts frame: each row is BASE updated with the given fields; debt ids 1, 2, ..."""
    records = []
    for i, row in enumerate(rows, start=1):
        record = {**BASE, "debt_id": i, **row}
        records.append({c.name: record[c.name] for c in INPUT_COLUMNS})
    return pl.DataFrame(records, schema=INPUT_SCHEMA, orient="row")


def features(rows: Iterable[Mapping[str, Any]], as_of: date = D, rules: RuleSet | None = None):  # type: ignore[no-untyped-def]
    return compute_features(debts(rows), as_of, rules or default_rules())


def decide_one(
    as_of: date = D, rules: RuleSet | None = None, **fields: Any
) -> tuple[str, str, str]:
    """(outcome, reason, rule_id) of one debt: BASE with ``fields``."""
    rules = rules or default_rules()
    result = decide(rules, features([fields], as_of, rules))
    return tuple(result.select("outcome", "reason", "rule_id").row(0))  # type: ignore[return-value]


def copy_default_rules(target: Path) -> Path:
    """A copy of the default rule set in ``target`` (a fresh directory) to edit in a test."""
    shutil.copytree(default_rules_dir(), target, ignore=shutil.ignore_patterns("*.md"))
    return target
