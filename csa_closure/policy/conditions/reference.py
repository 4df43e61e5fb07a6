"""The plain-Python reference evaluator: one row at a time, SQL three-valued logic.

It is the specification the vectorised polars evaluation is tested against, and it is what
``explain`` uses to show each rule's result for one debt. ``None`` is SQL NULL (unknown).

- comparisons and arithmetic with a NULL operand give NULL;
- ``a AND b`` is FALSE if either is FALSE, else NULL if either is NULL, else TRUE;
  ``a OR b`` is TRUE if either is TRUE, else NULL if either is NULL, else FALSE; NOT NULL is
  NULL;
- ``x IN (a, b)`` is ``x = a OR x = b``; ``x BETWEEN a AND b`` is ``x >= a AND x <= b``;
- ``/`` divides integers, truncating toward zero; division by zero gives NULL;
- CASE takes the first WHEN whose condition is TRUE (NULL counts as not true), else the
  ELSE value, else NULL;
- COALESCE gives its first non-NULL argument; LEAST and GREATEST ignore NULL arguments
  (NULL only if all are NULL); ABS(NULL) is NULL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
)
from csa_closure.policy.errors import EvaluationOverflow

Value = int | bool | str | None
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def evaluate(node: Node, env: Mapping[str, Any]) -> Value:
    """The value of ``node`` where names take their values from ``env`` (features of the
    row and parameter values)."""
    match node:
        case Literal(value=value):
            return value
        case Name(name=name):
            return env[name]  # type: ignore[no-any-return]
        case Negate(operand=operand):
            v = evaluate(operand, env)
            return None if v is None else _int64(-_as_int(v))
        case Not(operand=operand):
            v = evaluate(operand, env)
            return None if v is None else not v
        case Arith(op=op, left=left, right=right):
            return _arith(op, evaluate(left, env), evaluate(right, env))
        case Compare(op=op, left=left, right=right):
            return _compare(op, evaluate(left, env), evaluate(right, env))
        case BoolOp(op="AND", operands=operands):
            return and_all(evaluate(o, env) for o in operands)
        case BoolOp(op="OR", operands=operands):
            return or_any(evaluate(o, env) for o in operands)
        case IsNull(operand=operand, negated=negated):
            is_null = evaluate(operand, env) is None
            return not is_null if negated else is_null
        case InList(operand=operand, items=items, negated=negated):
            value = evaluate(operand, env)
            found = or_any(_compare("=", value, evaluate(i, env)) for i in items)
            return _not(found) if negated else found
        case Between(operand=operand, low=low, high=high, negated=negated):
            value = evaluate(operand, env)
            within = and_all(
                [
                    _compare(">=", value, evaluate(low, env)),
                    _compare("<=", value, evaluate(high, env)),
                ]
            )
            return _not(within) if negated else within
        case Case(whens=whens, else_=else_):
            for cond, result in whens:
                if evaluate(cond, env) is True:
                    return evaluate(result, env)
            return None if else_ is None else evaluate(else_, env)
        case Call(func=func, args=args):
            return _call(func, [evaluate(a, env) for a in args])
    raise TypeError(f"not a condition node: {node!r}")


def and_all(values: Any) -> bool | None:
    seen_null = False
    for v in values:
        if v is False:
            return False
        if v is None:
            seen_null = True
    return None if seen_null else True


def or_any(values: Any) -> bool | None:
    seen_null = False
    for v in values:
        if v is True:
            return True
        if v is None:
            seen_null = True
    return None if seen_null else False


def _not(v: Value) -> bool | None:
    return None if v is None else not v


def _as_int(v: Value) -> int:
    assert isinstance(v, int) and not isinstance(v, bool), v
    return v


def _int64(v: int) -> int:
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise EvaluationOverflow(f"{v} is outside the 64-bit integer range")
    return v


def _arith(op: str, a: Value, b: Value) -> int | None:
    if a is None or b is None:
        return None
    x, y = _as_int(a), _as_int(b)
    if op == "+":
        return _int64(x + y)
    if op == "-":
        return _int64(x - y)
    if op == "*":
        return _int64(x * y)
    if y == 0:
        return None
    quotient = abs(x) // abs(y)
    return _int64(quotient if (x >= 0) == (y >= 0) else -quotient)


def _compare(op: str, a: Value, b: Value) -> bool | None:
    if a is None or b is None:
        return None
    if op == "=":
        return a == b
    if op == "<>":
        return a != b
    if op == "<":
        return a < b  # type: ignore[operator]
    if op == "<=":
        return a <= b  # type: ignore[operator]
    if op == ">":
        return a > b  # type: ignore[operator]
    if op == ">=":
        return a >= b  # type: ignore[operator]
    raise ValueError(op)


def _call(func: str, args: list[Value]) -> Value:
    if func == "ABS":
        return None if args[0] is None else _int64(abs(_as_int(args[0])))
    if func == "COALESCE":
        return next((a for a in args if a is not None), None)
    present = [_as_int(a) for a in args if a is not None]
    if not present:
        return None
    return min(present) if func == "LEAST" else max(present)
