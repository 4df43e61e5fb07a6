"""Split a condition into tokens, refusing anything outside the condition language."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from csa_closure.policy.errors import ConditionError


class Kind(StrEnum):
    INTEGER = "integer"
    TEXT = "text"
    NAME = "name"  # a feature, parameter or function name
    KEYWORD = "keyword"
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    END = "end of condition"


KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE"}
    | {"CASE", "WHEN", "THEN", "ELSE", "END"}
)

# SQL words that are not part of the condition language: refused with a clear message rather
# than reported as unknown features.
UNSUPPORTED_WORDS = frozenset(
    {
        "LIKE", "ILIKE", "SIMILAR", "GLOB", "REGEXP", "ESCAPE", "SELECT", "FROM", "WHERE",
        "EXISTS", "CAST", "INTERVAL", "DATE", "TIMESTAMP", "ANY", "ALL", "SOME", "AS",
        "DISTINCT", "UNION", "OVER", "COLLATE", "XOR", "DIV", "MOD",
    }
)  # fmt: skip

# Names that read the clock or a random source. Conditions see only features computed for
# the as-of date, so a run can be repeated and gives the same decisions.
CLOCK_WORDS = frozenset(
    {
        "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "LOCALTIME", "LOCALTIMESTAMP",
        "NOW", "TODAY", "SYSDATE", "GETDATE", "RANDOM", "RAND", "UUID",
    }
)  # fmt: skip

_TWO_CHAR_OPS = {"<=", ">=", "<>", "!="}
_ONE_CHAR_OPS = set("=<>+-*/")
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # keywords upper-cased; text literals unquoted; '!=' normalised to '<>'
    pos: int

    def describe(self) -> str:
        if self.kind is Kind.END:
            return "the end of the condition"
        if self.kind is Kind.TEXT:
            return f"text '{self.text}'"
        return f"'{self.text}'"


def tokenize(source: str) -> list[Token]:
    """The tokens of ``source``, ending with an END token."""
    tokens: list[Token] = []
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if ch.isspace():
            i += 1
        elif source.startswith("--", i) or source.startswith("/*", i):
            raise ConditionError(
                "comments are not allowed in a condition (put notes in the description)", i
            )
        elif ch.isdigit():
            i = _integer(source, i, tokens)
        elif ch.isalpha() or ch == "_":
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            word = source[i:j]
            if not word.isascii():
                raise ConditionError(f"{word!r} is not a valid name (letters a-z, digits, _)", i)
            upper = word.upper()
            if upper in KEYWORDS:
                tokens.append(Token(Kind.KEYWORD, upper, i))
            else:
                tokens.append(Token(Kind.NAME, word, i))
            i = j
        elif ch == "'":
            i = _text(source, i, tokens)
        elif ch == '"' or ch == "`":
            raise ConditionError(
                "quoted names are not allowed: write features and parameters by name, "
                "and text in single quotes ('PWC')",
                i,
            )
        elif source.startswith("==", i):
            raise ConditionError("'==' is not SQL: write '=' to compare", i)
        elif source[i : i + 2] in _TWO_CHAR_OPS:
            op = source[i : i + 2]
            tokens.append(Token(Kind.OP, "<>" if op == "!=" else op, i))
            i += 2
        elif ch in _ONE_CHAR_OPS:
            tokens.append(Token(Kind.OP, ch, i))
            i += 1
        elif ch == "(":
            tokens.append(Token(Kind.LPAREN, ch, i))
            i += 1
        elif ch == ")":
            tokens.append(Token(Kind.RPAREN, ch, i))
            i += 1
        elif ch == ",":
            tokens.append(Token(Kind.COMMA, ch, i))
            i += 1
        else:
            raise ConditionError(f"unexpected character {ch!r}", i)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _integer(source: str, start: int, tokens: list[Token]) -> int:
    j = start
    n = len(source)
    while j < n and source[j].isdigit():
        j += 1
    if j < n and source[j] == ".":
        raise ConditionError(
            "decimal numbers are not allowed: money is whole pence (6500 for £65.00) and "
            "rates are parameters",
            start,
        )
    if j < n and (source[j].isalpha() or source[j] == "_"):
        raise ConditionError(
            f"{source[start : j + 1]!r}... is not a number: numbers are plain digits "
            "(money in pence, ages in years)",
            start,
        )
    digits = source[start:j]
    if not digits.isascii():
        raise ConditionError(f"{digits!r} is not a number written with digits 0-9", start)
    if int(digits) > INT64_MAX:
        raise ConditionError("the number is too large (more than 64 bits)", start)
    tokens.append(Token(Kind.INTEGER, digits, start))
    return j


def _text(source: str, start: int, tokens: list[Token]) -> int:
    j = start + 1
    n = len(source)
    chars: list[str] = []
    while j < n:
        if source[j] == "'":
            if j + 1 < n and source[j + 1] == "'":
                chars.append("'")
                j += 2
                continue
            tokens.append(Token(Kind.TEXT, "".join(chars), start))
            return j + 1
        chars.append(source[j])
        j += 1
    raise ConditionError("text is not closed: a quote (') is missing", start)
