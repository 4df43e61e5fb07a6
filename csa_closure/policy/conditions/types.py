"""Static checks of a condition: every name is known, and every operation has operands of the
right type. A rule's condition must be boolean.

Types: integer (money in pence, ages, counts), boolean and text. The bare literal NULL is
allowed only where it can make sense: as the operand of IS [NOT] NULL, as a CASE result and as
an argument of COALESCE, LEAST or GREATEST. ``x = NULL`` is refused (it is never true; write
``x IS NULL``), and so is NULL in an IN list (``x NOT IN (1, NULL)`` is never true).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from csa_closure.policy.conditions.ast import (
    Arith,
    Between,
    BoolOp,
    Call,
    Case,
    Compare,
    InList,
    IsNull,
    Literal,
    Name,
    Negate,
    Node,
    Not,
    ValueType,
)
from csa_closure.policy.errors import ConditionError

INTEGER, BOOLEAN, TEXT, NULL = (
    ValueType.INTEGER,
    ValueType.BOOLEAN,
    ValueType.TEXT,
    ValueType.NULL,
)


class UsesBrokenParameter(ConditionError):
    """A condition names a parameter that was declared but refused; the loader reports the
    parameter's own problem, not this."""


class Scope:
    """The names a condition may use: features and parameters, with their types."""

    def __init__(
        self,
        features: Mapping[str, ValueType],
        parameters: Mapping[str, ValueType],
        hints: Mapping[str, str] | None = None,
        broken: Iterable[str] = (),
    ) -> None:
        self.features = dict(features)
        self.parameters = dict(parameters)
        self.hints = dict(hints or {})  # name -> why it cannot be used in a condition
        # parameters declared but refused (their own problem is reported): a condition that
        # uses one is not checked further, so it gets no second, misleading error
        self.broken = frozenset(broken)

    def type_of(self, name: Name) -> ValueType:
        if name.name in self.features:
            return self.features[name.name]
        if name.name in self.parameters:
            return self.parameters[name.name]
        if name.name in self.hints:
            raise ConditionError(f"{name.name!r} {self.hints[name.name]}", name.pos)
        if name.name in self.broken:
            raise UsesBrokenParameter(
                f"uses parameter {name.name!r}, which was refused (see its problem)", name.pos
            )
        known = [*self.features, *self.parameters]
        close = difflib.get_close_matches(name.name, known, n=1)
        maybe = f" (did you mean {close[0]}?)" if close else ""
        raise ConditionError(
            f"unknown feature {name.name!r}{maybe}; valid features: "
            f"{', '.join(sorted(self.features))}; parameters: "
            f"{', '.join(sorted(self.parameters)) or '(none)'}",
            name.pos,
        )


def check_condition(node: Node, scope: Scope) -> None:
    """Raise ``ConditionError`` unless ``node`` is a well-typed boolean condition."""
    result = type_of(node, scope)
    if result is not BOOLEAN:
        raise ConditionError(
            f"the condition is not boolean (it gives {_a(result)}); a condition must be true "
            "or false, e.g. balance_pence < 6500",
            node.pos,
        )


def type_of(node: Node, scope: Scope) -> ValueType:
    """The type of ``node``; ``ConditionError`` if any part of it is ill-typed."""
    match node:
        case Literal(value=value):
            return _literal_type(value)
        case Name():
            return scope.type_of(node)
        case Negate(operand=operand):
            _expect(operand, INTEGER, scope, "the operand of unary minus")
            return INTEGER
        case Not(operand=operand):
            _expect(operand, BOOLEAN, scope, "the operand of NOT")
            return BOOLEAN
        case Arith(op=op, left=left, right=right):
            _expect(left, INTEGER, scope, f"the left side of '{op}'")
            _expect(right, INTEGER, scope, f"the right side of '{op}'")
            return INTEGER
        case Compare():
            _compare(node, scope)
            return BOOLEAN
        case BoolOp(op=op, operands=operands):
            for operand in operands:
                _expect(operand, BOOLEAN, scope, f"each side of {op}")
            return BOOLEAN
        case IsNull(operand=operand):
            type_of(operand, scope)
            return BOOLEAN
        case InList():
            _in_list(node, scope)
            return BOOLEAN
        case Between():
            _between(node, scope)
            return BOOLEAN
        case Case():
            return _case(node, scope)
        case Call():
            return _call(node, scope)
    raise TypeError(f"not a condition node: {node!r}")


def _literal_type(value: object) -> ValueType:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        return INTEGER
    return TEXT


def _a(t: ValueType) -> str:
    return {INTEGER: "an integer", BOOLEAN: "a boolean", TEXT: "text", NULL: "NULL"}[t]


def _null_refused(node: Node, what: str) -> ConditionError:
    return ConditionError(
        f"a bare NULL is not allowed here ({what}): a comparison or sum with NULL is never "
        "true; to test for a missing value write IS NULL or IS NOT NULL",
        node.pos,
    )


def _expect(node: Node, wanted: ValueType, scope: Scope, what: str) -> None:
    got = type_of(node, scope)
    if got is NULL:
        raise _null_refused(node, what)
    if got is not wanted:
        raise ConditionError(f"{what} must be {_a(wanted)}, but it is {_a(got)}", node.pos)


def _same_type(nodes: tuple[Node, ...], scope: Scope, what: str, allow_null: bool) -> ValueType:
    """The one non-NULL type shared by ``nodes``."""
    found: ValueType | None = None
    for node in nodes:
        got = type_of(node, scope)
        if got is NULL:
            if not allow_null:
                raise _null_refused(node, what)
            continue
        if found is None:
            found = got
        elif got is not found:
            raise ConditionError(
                f"{what} must all have one type, but {_a(found)} is mixed with {_a(got)}",
                node.pos,
            )
    if found is None:
        raise ConditionError(f"{what} are all NULL", nodes[0].pos)
    return found


def _compare(node: Compare, scope: Scope) -> None:
    found = _same_type((node.left, node.right), scope, f"the sides of '{node.op}'", False)
    if found is BOOLEAN and node.op not in ("=", "<>"):
        raise ConditionError(
            f"booleans cannot be ordered with '{node.op}'; use = or <> (or the flag itself)",
            node.pos,
        )


def _in_list(node: InList, scope: Scope) -> None:
    _same_type((node.operand, *node.items), scope, "the value and the items of IN", False)


def _between(node: Between, scope: Scope) -> None:
    found = _same_type((node.operand, node.low, node.high), scope, "the parts of BETWEEN", False)
    if found is BOOLEAN:
        raise ConditionError("BETWEEN needs integers or text, not booleans", node.pos)


def _case(node: Case, scope: Scope) -> ValueType:
    for cond, _result in node.whens:
        _expect(cond, BOOLEAN, scope, "a WHEN condition")
    results = tuple(r for _c, r in node.whens) + ((node.else_,) if node.else_ is not None else ())
    return _same_type(results, scope, "the results of CASE", True)


def _call(node: Call, scope: Scope) -> ValueType:
    args = node.args
    if node.func == "ABS":
        if len(args) != 1:
            raise ConditionError("ABS takes one argument", node.pos)
        _expect(args[0], INTEGER, scope, "the argument of ABS")
        return INTEGER
    if len(args) < 2:
        raise ConditionError(f"{node.func} takes two or more arguments", node.pos)
    found = _same_type(args, scope, f"the arguments of {node.func}", True)
    if node.func in ("LEAST", "GREATEST") and found is not INTEGER:
        raise ConditionError(f"{node.func} takes integers, not {_a(found)}", node.pos)
    return found
