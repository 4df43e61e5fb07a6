"""The syntax tree of a condition.

Nodes are immutable; ``pos`` (the 0-based offset of the node in the condition text) is kept
for error messages and ignored when nodes are compared, so a condition and its canonical
rendering parse to equal trees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ValueType(StrEnum):
    """The type of a value in a condition."""

    INTEGER = "integer"
    BOOLEAN = "boolean"
    TEXT = "text"
    NULL = "null"  # the bare NULL literal, before context gives it a type


@dataclass(frozen=True)
class Literal:
    value: int | bool | str | None
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Name:
    """A feature or a parameter."""

    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Negate:
    """Unary minus."""

    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Arith:
    op: str  # + - * /
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Compare:
    op: str  # = <> < <= > >=
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class BoolOp:
    """AND or OR over two or more operands (a chain of one operator, flattened)."""

    op: str  # AND | OR
    operands: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class InList:
    operand: Node
    items: tuple[Node, ...]
    negated: bool
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Between:
    operand: Node
    low: Node
    high: Node
    negated: bool
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Case:
    whens: tuple[tuple[Node, Node], ...]  # (condition, result), tried in order
    else_: Node | None
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    func: str  # upper case, one of FUNCTIONS
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node = (
    Literal
    | Name
    | Negate
    | Not
    | Arith
    | Compare
    | BoolOp
    | IsNull
    | InList
    | Between
    | Case
    | Call
)

# The functions a condition may call. Anything else is refused at load.
FUNCTIONS = ("ABS", "COALESCE", "GREATEST", "LEAST")

COMPARISON_OPS = ("=", "<>", "<", "<=", ">", ">=")
ARITH_OPS = ("+", "-", "*", "/")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``, in source order."""
    match node:
        case Literal() | Name():
            return ()
        case Negate(operand=o) | Not(operand=o) | IsNull(operand=o):
            return (o,)
        case Arith(left=a, right=b) | Compare(left=a, right=b):
            return (a, b)
        case BoolOp(operands=ops):
            return ops
        case InList(operand=o, items=items):
            return (o, *items)
        case Between(operand=o, low=lo, high=hi):
            return (o, lo, hi)
        case Case(whens=whens, else_=else_):
            parts = [part for pair in whens for part in pair]
            return (*parts, else_) if else_ is not None else tuple(parts)
        case Call(args=args):
            return args
    raise TypeError(f"not a condition node: {node!r}")


def walk(node: Node):  # type: ignore[no-untyped-def]
    """Every node of the tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def names(node: Node) -> list[str]:
    """The feature and parameter names ``node`` refers to, in order of first appearance."""
    seen: dict[str, None] = {}
    for sub in walk(node):
        if isinstance(sub, Name):
            seen.setdefault(sub.name, None)
    return list(seen)
