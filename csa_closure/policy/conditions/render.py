"""Turn a condition tree back into text.

- ``canonical_text`` is the condition as people read it: one space around operators,
  keywords upper-case, parentheses only where the grammar needs them. It parses back to the
  same tree, and it is what the rule-set hash is taken over, so re-spacing a condition in a
  rule file does not change the rule set's identity.
- ``polars_sql`` is the SQL handed to ``pl.sql_expr``: every operation parenthesised, names
  quoted, parameters replaced by their values, integers cast to BIGINT (so no 32-bit
  arithmetic), ``/`` as ``DIV`` (integer division, truncating toward zero), and IN and BETWEEN
  spelled out as the comparisons the SQL standard defines them by, so NULLs behave exactly as
  in the reference evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    walk,
)

_OR, _AND, _NOT, _PRED, _SUM, _PRODUCT, _UNARY, _PRIMARY = range(1, 9)
_ARITH_PREC = {"+": _SUM, "-": _SUM, "*": _PRODUCT, "/": _PRODUCT}

ParamValue = int | bool


def literal_text(value: int | bool | str | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def canonical_text(node: Node) -> str:
    return _text(node)[0]


def _wrap(node: Node, need: int) -> str:
    text, prec = _text(node)
    return text if prec >= need else f"({text})"


def _text(node: Node) -> tuple[str, int]:
    match node:
        case Literal(value=value):
            text = literal_text(value)
            return text, _UNARY if text.startswith("-") else _PRIMARY
        case Name(name=name):
            return name, _PRIMARY
        case Negate(operand=operand):
            inner = _wrap(operand, _UNARY)
            return ("-" + (f"({inner})" if inner.startswith("-") else inner)), _UNARY
        case Not(operand=operand):
            return "NOT " + _wrap(operand, _NOT), _NOT
        case Arith(op=op, left=left, right=right):
            prec = _ARITH_PREC[op]
            return f"{_wrap(left, prec)} {op} {_wrap(right, prec + 1)}", prec
        case Compare(op=op, left=left, right=right):
            return f"{_wrap(left, _SUM)} {op} {_wrap(right, _SUM)}", _PRED
        case BoolOp(op=op, operands=operands):
            need = _NOT if op == "AND" else _AND
            return f" {op} ".join(_wrap(o, need) for o in operands), (_AND if op == "AND" else _OR)
        case IsNull(operand=operand, negated=negated):
            return f"{_wrap(operand, _SUM)} IS {'NOT ' if negated else ''}NULL", _PRED
        case InList(operand=operand, items=items, negated=negated):
            listed = ", ".join(canonical_text(i) for i in items)
            return f"{_wrap(operand, _SUM)} {'NOT ' if negated else ''}IN ({listed})", _PRED
        case Between(operand=operand, low=low, high=high, negated=negated):
            word = "NOT BETWEEN" if negated else "BETWEEN"
            return (
                f"{_wrap(operand, _SUM)} {word} {_wrap(low, _SUM)} AND {_wrap(high, _SUM)}",
                _PRED,
            )
        case Case(whens=whens, else_=else_):
            parts = ["CASE"]
            for cond, result in whens:
                parts += ["WHEN", canonical_text(cond), "THEN", canonical_text(result)]
            if else_ is not None:
                parts += ["ELSE", canonical_text(else_)]
            parts.append("END")
            return " ".join(parts), _PRIMARY
        case Call(func=func, args=args):
            return f"{func}({', '.join(canonical_text(a) for a in args)})", _PRIMARY
    raise TypeError(f"not a condition node: {node!r}")


def polars_sql(node: Node, params: Mapping[str, ParamValue]) -> str:
    """SQL for ``pl.sql_expr``: names are features (columns) unless they are in ``params``."""
    return _sql(node, params)


_MIRROR = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _is_constant(node: Node, params: Mapping[str, ParamValue]) -> bool:
    """True when ``node`` reads no feature (parameters are constants here)."""
    return all(not isinstance(n, Name) or n.name in params for n in walk(node))


def _compare_sql(op: str, left: Node, right: Node, params: Mapping[str, ParamValue]) -> str:
    """A comparison, with a constant side always on the right.

    polars 2.1 can return a frame of the wrong height for ``<constant> <op> <expression>``
    when the expression collapses to one value internally (a CASE whose WHEN is the same for
    every row, a COALESCE over an all-NULL column); ``<expression> <op> <constant>`` is
    evaluated correctly. Mirroring the operator keeps the meaning (NULLs included).
    """
    if _is_constant(left, params) and not _is_constant(right, params):
        left, right, op = right, left, _MIRROR[op]
    return f"({_sql(left, params)} {op} {_sql(right, params)})"


def _sql_literal(value: int | bool | str | None) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"CAST({value} AS BIGINT)"
    return literal_text(value)


def _sql(node: Node, params: Mapping[str, ParamValue]) -> str:
    def s(n: Node) -> str:
        return _sql(n, params)

    match node:
        case Literal(value=value):
            return _sql_literal(value)
        case Name(name=name):
            if name in params:
                return _sql_literal(params[name])
            return '"' + name + '"'
        case Negate(operand=operand):
            return f"(- {s(operand)})"
        case Not(operand=operand):
            return f"(NOT {s(operand)})"
        case Arith(op="/", left=left, right=right):
            return f"DIV({s(left)}, {s(right)})"
        case Arith(op=op, left=left, right=right):
            return f"({s(left)} {op} {s(right)})"
        case Compare(op=op, left=left, right=right):
            return _compare_sql(op, left, right, params)
        case BoolOp(op=op, operands=operands):
            return "(" + f" {op} ".join(s(o) for o in operands) + ")"
        case IsNull(operand=operand, negated=negated):
            return f"({s(operand)} IS {'NOT ' if negated else ''}NULL)"
        case InList(operand=operand, items=items, negated=negated):
            anyof = " OR ".join(_compare_sql("=", operand, i, params) for i in items)
            return f"(NOT ({anyof}))" if negated else f"({anyof})"
        case Between(operand=operand, low=low, high=high, negated=negated):
            low_sql = _compare_sql(">=", operand, low, params)
            high_sql = _compare_sql("<=", operand, high, params)
            within = f"({low_sql} AND {high_sql})"
            return f"(NOT {within})" if negated else within
        case Case(whens=whens, else_=else_):
            parts = ["(CASE"]
            for cond, result in whens:
                parts.append(f"WHEN {s(cond)} THEN {s(result)}")
            if else_ is not None:
                parts.append(f"ELSE {s(else_)}")
            parts.append("END)")
            return " ".join(parts)
        case Call(func=func, args=args):
            return f"{func}({', '.join(s(a) for a in args)})"
    raise TypeError(f"not a condition node: {node!r}")
