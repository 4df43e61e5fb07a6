"""Errors raised by the policy package.

Every message names where the problem is (the file, the rule id or parameter, the column in a
condition) and what is wrong, so policy staff can fix a rule file without reading code.
Messages never carry personal data: they name rules, parameters, columns and debt ids only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from csa_closure.errors import CsaClosureError, InputError


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with a rule set: where it is and what it is."""

    file: str
    problem: str
    rule_id: str | None = None  # the rule row, when the problem is in one
    item: str | None = None  # a parameter, reason code or table, when not in a rule row

    def __str__(self) -> str:
        where = [self.file]
        if self.rule_id is not None:
            where.append(f"rule {self.rule_id}")
        elif self.item is not None:
            where.append(self.item)
        return ": ".join([*where, self.problem])


class RuleSetError(InputError):
    """A rule set was refused; nothing was written. ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "the rule set was refused" + (f" ({count} problems)" if count > 1 else "")
        lines = [str(p) for p in self.problems]
        super().__init__(head + ":\n" + "\n".join(f"  {line}" for line in lines))


class OverrideError(RuleSetError):
    """A ``--set NAME=VALUE`` override names no parameter or has the wrong type."""


class FeatureInputError(InputError):
    """The debts given to ``compute_features`` break the input contract (columns, types,
    missing values, codes). The message names the column and a few debt ids."""


class ConditionError(ValueError):
    """A condition that does not parse or type-check. ``position`` is a 0-based offset into
    the condition text; the loader turns it into a ``RuleProblem`` naming the rule."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        where = f" at column {position + 1}" if position is not None else ""
        super().__init__(message + where)


class EvaluationOverflow(ArithmeticError):
    """The reference evaluator left the 64-bit integer range (polars would wrap around)."""


class PolicyInternalError(CsaClosureError):
    """Two evaluations of the same rule disagreed. This is a bug; nothing was written."""
