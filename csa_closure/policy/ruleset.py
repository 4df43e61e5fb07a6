"""A loaded, validated rule set: parameters, reason codes and ordered first-hit tables.

A rule set's identity is ``RuleSet.hash``: the SHA-256 of ``canonical_json()``, a canonical
JSON form of its content (name, parameters after overrides, reasons, and each table's rows
with their conditions in canonical spelling). Comments, TOML layout and the spacing inside a
condition do not change it; any change of meaning does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from csa_closure.domain.states import Creditor, Outcome
from csa_closure.policy.conditions import Condition
from csa_closure.policy.errors import OverrideError, RuleProblem
from csa_closure.policy.features import FeatureParameters
from csa_closure.policy.params import Parameter, ParameterValueError, from_text

FORMAT_VERSION = 1
PWC, SOS, COLLECTABILITY = "PWC", "SOS", "collectability"
TABLES = (PWC, SOS, COLLECTABILITY)

# Which outcomes each table may give. The SOS debt is the Government's money, so there is no
# final-chance letter for it; collectability runs after a PWC asked for collection, so it can
# only transfer, write off with notice, or send the debt to a caseworker.
ALLOWED_OUTCOMES: dict[str, tuple[Outcome, ...]] = {
    PWC: tuple(Outcome),
    SOS: tuple(o for o in Outcome if o is not Outcome.REPRESENTATION),
    COLLECTABILITY: (Outcome.TRANSFER, Outcome.WRITE_OFF_NOTICE, Outcome.MANUAL_REVIEW),
}


@dataclass(frozen=True)
class Reason:
    code: str
    description: str


@dataclass(frozen=True)
class Rule:
    """One row of a first-hit table."""

    id: str
    description: str
    condition: Condition
    outcome: Outcome
    reason: str
    table: str  # PWC, SOS or collectability
    position: int  # 1-based row number within its table

    @property
    def when(self) -> str:
        """The condition as written in the rule file."""
        return self.condition.source

    @property
    def is_catch_all(self) -> bool:
        return self.condition.is_catch_all

    def canonical(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "when": self.condition.text,
            "outcome": self.outcome.value,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RuleTable:
    name: str  # PWC, SOS or collectability
    file: str  # the file it was loaded from, for messages
    rules: tuple[Rule, ...]


@dataclass(frozen=True, eq=False)
class RuleSet:
    name: str
    description: str
    parameters: Mapping[str, Parameter]
    reasons: Mapping[str, Reason]
    tables: Mapping[str, RuleTable]  # keyed by TABLES
    source: Path | None = None  # the directory it was loaded from

    # --- tables --------------------------------------------------------------------------

    def eligibility(self, creditor: Creditor | str) -> RuleTable:
        """The eligibility table for debts owed to ``creditor``."""
        return self.tables[Creditor(creditor).value]

    @property
    def collectability_table(self) -> RuleTable:
        return self.tables[COLLECTABILITY]

    def rules(self) -> list[Rule]:
        """Every rule, table by table, in order."""
        return [rule for name in TABLES for rule in self.tables[name].rules]

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules():
            if rule.id == rule_id:
                return rule
        raise KeyError(f"no rule {rule_id!r} in rule set {self.name!r}")

    # --- parameters ----------------------------------------------------------------------

    def param_values(self) -> dict[str, int | bool]:
        """Every parameter's value (rates in basis points), as conditions see them."""
        return {name: p.value for name, p in self.parameters.items()}

    def feature_parameters(self) -> FeatureParameters:
        return FeatureParameters.from_values(self.param_values())

    def unused_parameters(self) -> list[str]:
        """Parameters no condition refers to and no feature is computed with."""
        from csa_closure.policy.features import FEATURE_PARAMETERS

        used = set(FEATURE_PARAMETERS)
        for rule in self.rules():
            used.update(rule.condition.parameters)
        return [name for name in self.parameters if name not in used]

    def unused_reasons(self) -> list[str]:
        used = {rule.reason for rule in self.rules()}
        return [code for code in self.reasons if code not in used]

    def with_overrides(self, overrides: Mapping[str, str]) -> RuleSet:
        """This rule set with parameter values replaced (``--set NAME=VALUE``), type-checked.

        Raises ``OverrideError`` naming every override that names no parameter or has a
        value of the wrong type. The result has a different hash when a value changes.
        """
        problems: list[RuleProblem] = []
        parameters = dict(self.parameters)
        for name, text in overrides.items():
            item = f"{name}={text}"
            param = parameters.get(name)
            if param is None:
                problems.append(
                    RuleProblem(
                        "--set",
                        f"unknown parameter {name!r}; parameters: " + ", ".join(sorted(parameters)),
                        item=item,
                    )
                )
                continue
            try:
                value = from_text(param.type, str(text))
            except ParameterValueError as exc:
                problems.append(
                    RuleProblem("--set", f"{name} is of type {param.type.value}: {exc}", item=item)
                )
                continue
            original = param.file_value if param.overridden else param.value
            parameters[name] = replace(
                param, value=value, file_value=None if value == original else original
            )
        if problems:
            raise OverrideError(problems)
        return replace(self, parameters=parameters)

    # --- identity ------------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "description": self.description,
            "parameters": {
                name: {
                    "type": p.type.value,
                    "value": p.canonical_value(),
                    "description": p.description,
                }
                for name, p in self.parameters.items()
            },
            "reasons": {code: r.description for code, r in self.reasons.items()},
            "tables": {
                name: [rule.canonical() for rule in self.tables[name].rules] for name in TABLES
            },
        }

    def canonical_json(self) -> str:
        """The canonical form, as stored in ``rule_sets.canonical``: sorted keys, no
        whitespace, UTF-8. The hash is taken over exactly this text."""
        return json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    @cached_property
    def hash(self) -> str:
        """SHA-256 (hex) of ``canonical_json()``."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def overrides(self) -> dict[str, str]:
        """The parameters changed by ``--set``, shown as their new values."""
        return {name: p.display() for name, p in self.parameters.items() if p.overridden}
