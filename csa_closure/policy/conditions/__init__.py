"""The condition language: a small, documented subset of SQL boolean expressions.

A condition is parsed and type-checked here (so a bad one is refused at load with its
position), rendered to SQL for ``pl.sql_expr`` (vectorised evaluation), and evaluated row by
row by a plain-Python reference evaluator (for explain, and as the specification the polars
evaluation is tested against). Python ``eval`` is never used.

Supported: comparisons (= <> != < <= > >=), AND, OR, NOT, [NOT] IN (...),
[NOT] BETWEEN ... AND ..., IS [NOT] NULL, + - * / (integer division), unary minus,
CASE WHEN ... THEN ... [ELSE ...] END, parentheses, integer and 'text' literals, TRUE, FALSE,
NULL, and the functions ABS, COALESCE, GREATEST, LEAST. Names are features or parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from csa_closure.policy.conditions import ast
from csa_closure.policy.conditions.ast import FUNCTIONS, Literal, Node, ValueType
from csa_closure.policy.conditions.parser import parse
from csa_closure.policy.conditions.reference import Value, evaluate
from csa_closure.policy.conditions.render import canonical_text, polars_sql
from csa_closure.policy.conditions.types import Scope, check_condition

__all__ = [
    "FUNCTIONS",
    "Condition",
    "Scope",
    "ValueType",
    "compile_condition",
    "parse",
]


@dataclass(frozen=True)
class Condition:
    """A parsed, type-checked boolean condition."""

    source: str  # as written in the rule file
    node: Node = field(repr=False)
    features: tuple[str, ...]  # features it reads, in order of first appearance
    parameters: tuple[str, ...]  # parameters it reads, in order of first appearance

    @property
    def text(self) -> str:
        """The canonical spelling (what the rule-set hash covers)."""
        return canonical_text(self.node)

    @property
    def is_catch_all(self) -> bool:
        return isinstance(self.node, Literal) and self.node.value is True

    def sql(self, params: Mapping[str, int | bool]) -> str:
        """The SQL handed to polars, with parameter values in place of their names."""
        return polars_sql(self.node, {p: params[p] for p in self.parameters})

    def expr(self, params: Mapping[str, int | bool]) -> pl.Expr:
        """A polars expression over a frame of features; NULL where SQL gives NULL."""
        return pl.sql_expr(self.sql(params))

    def evaluate(self, row: Mapping[str, Any], params: Mapping[str, int | bool]) -> Value:
        """The reference (plain-Python, three-valued) result for one row of features."""
        env = {name: row[name] for name in self.features}
        env.update({name: params[name] for name in self.parameters})
        return evaluate(self.node, env)


def compile_condition(source: str, scope: Scope) -> Condition:
    """Parse and check ``source``; ``ConditionError`` (with the position) if it is refused."""
    node = parse(source)
    check_condition(node, scope)
    used = ast.names(node)
    return Condition(
        source=source,
        node=node,
        features=tuple(n for n in used if n in scope.features),
        parameters=tuple(n for n in used if n in scope.parameters),
    )
