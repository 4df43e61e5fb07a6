"""A recursive-descent parser for the condition language.

Grammar (keywords are case-insensitive; names are case-sensitive)::

    condition  := or_expr END
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | predicate
    predicate  := sum [ compare_op sum
                      | IS [NOT] NULL
                      | [NOT] IN '(' or_expr ( ',' or_expr )* ')'
                      | [NOT] BETWEEN sum AND sum ]
    sum        := product ( ('+' | '-') product )*
    product    := unary ( ('*' | '/') unary )*
    unary      := '-' unary | primary
    primary    := INTEGER | 'text' | TRUE | FALSE | NULL | name
                | FUNCTION '(' or_expr ( ',' or_expr )* ')'
                | CASE ( WHEN or_expr THEN or_expr )+ [ ELSE or_expr ] END
                | '(' or_expr ')'
    compare_op := '=' | '<>' | '!=' | '<' | '<=' | '>' | '>='

Comparisons do not chain (``a < b < c`` is refused): write ``a < b AND b < c``.
"""

from __future__ import annotations

from collections.abc import Callable

from csa_closure.policy.conditions.ast import (
    COMPARISON_OPS,
    FUNCTIONS,
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
from csa_closure.policy.conditions.lexer import (
    CLOCK_WORDS,
    UNSUPPORTED_WORDS,
    Kind,
    Token,
    tokenize,
)
from csa_closure.policy.errors import ConditionError

MAX_DEPTH = 60  # deeper nesting than any policy needs; guards the recursion


def parse(source: str) -> Node:
    """The syntax tree of ``source``; ``ConditionError`` (with the position) if it is not a
    condition in the language."""
    if not source.strip():
        raise ConditionError("the condition is empty (write TRUE for a catch-all row)", 0)
    return _Parser(tokenize(source)).condition()


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # --- token helpers ---------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not Kind.END:
            self.i += 1
        return tok

    def at_keyword(self, *words: str) -> bool:
        return self.tok.kind is Kind.KEYWORD and self.tok.text in words

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind is Kind.OP and self.tok.text in ops

    def expect_keyword(self, word: str, context: str) -> Token:
        if not self.at_keyword(word):
            raise ConditionError(
                f"expected {word} {context}, found {self.tok.describe()}", self.tok.pos
            )
        return self.advance()

    def expect(self, kind: Kind, context: str) -> Token:
        if self.tok.kind is not kind:
            _refuse_word(self.tok)
            raise ConditionError(
                f"expected '{kind.value}' {context}, found {self.tok.describe()}", self.tok.pos
            )
        return self.advance()

    # --- grammar ---------------------------------------------------------------------------

    def condition(self) -> Node:
        node = self.or_expr()
        if self.tok.kind is not Kind.END:
            _refuse_word(self.tok)
            raise ConditionError(
                f"unexpected {self.tok.describe()} (is an AND or OR missing, or a comparison "
                "chained without parentheses?)",
                self.tok.pos,
            )
        return node

    def or_expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ConditionError("the condition is nested too deeply", self.tok.pos)
        try:
            return self._bool_chain("OR", self.and_expr)
        finally:
            self.depth -= 1

    def and_expr(self) -> Node:
        return self._bool_chain("AND", self.not_expr)

    def _bool_chain(self, word: str, operand: Callable[[], Node]) -> Node:
        first = operand()
        operands = [first]
        while self.at_keyword(word):
            self.advance()
            operands.append(operand())
        if len(operands) == 1:
            return first
        return BoolOp(word, tuple(operands), _pos(first))

    def not_expr(self) -> Node:
        if self.at_keyword("NOT"):
            tok = self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ConditionError("the condition is nested too deeply", tok.pos)
            try:
                return Not(self.not_expr(), tok.pos)
            finally:
                self.depth -= 1
        return self.predicate()

    def predicate(self) -> Node:
        left = self.sum()
        pos = _pos(left)
        if self.tok.kind is Kind.OP and self.tok.text in COMPARISON_OPS:
            op = self.advance().text
            right = self.sum()
            return Compare(op, left, right, pos)
        if self.at_keyword("IS"):
            self.advance()
            negated = False
            if self.at_keyword("NOT"):
                self.advance()
                negated = True
            self.expect_keyword("NULL", "after IS (only IS NULL and IS NOT NULL are supported)")
            return IsNull(left, negated, pos)
        negated = False
        if self.at_keyword("NOT"):
            nxt = self.tokens[self.i + 1]
            if not (nxt.kind is Kind.KEYWORD and nxt.text in ("IN", "BETWEEN")):
                raise ConditionError(
                    f"expected IN or BETWEEN after NOT, found {nxt.describe()}", nxt.pos
                )
            self.advance()
            negated = True
        if self.at_keyword("IN"):
            self.advance()
            self.expect(Kind.LPAREN, "after IN")
            items = self._list("in the IN list")
            return InList(left, items, negated, pos)
        if self.at_keyword("BETWEEN"):
            self.advance()
            low = self.sum()
            self.expect_keyword("AND", "between the bounds of BETWEEN")
            high = self.sum()
            return Between(left, low, high, negated, pos)
        return left

    def sum(self) -> Node:
        node = self.product()
        while self.at_op("+", "-"):
            op = self.advance().text
            node = Arith(op, node, self.product(), _pos(node))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at_op("*", "/"):
            op = self.advance().text
            node = Arith(op, node, self.unary(), _pos(node))
        return node

    def unary(self) -> Node:
        if self.at_op("-"):
            tok = self.advance()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ConditionError("the condition is nested too deeply", tok.pos)
            try:
                operand = self.unary()
            finally:
                self.depth -= 1
            if type(operand) is Literal and type(operand.value) is int:
                return Literal(-operand.value, tok.pos)  # a negative number
            return Negate(operand, tok.pos)
        if self.at_op("+"):
            raise ConditionError("a leading '+' is not allowed", self.tok.pos)
        return self.primary()

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind is Kind.INTEGER:
            self.advance()
            return Literal(int(tok.text), tok.pos)
        if tok.kind is Kind.TEXT:
            self.advance()
            return Literal(tok.text, tok.pos)
        if tok.kind is Kind.KEYWORD:
            if tok.text in ("TRUE", "FALSE"):
                self.advance()
                return Literal(tok.text == "TRUE", tok.pos)
            if tok.text == "NULL":
                self.advance()
                return Literal(None, tok.pos)
            if tok.text == "CASE":
                return self.case()
            raise ConditionError(f"unexpected {tok.describe()}", tok.pos)
        if tok.kind is Kind.NAME:
            return self.name_or_call()
        if tok.kind is Kind.LPAREN:
            self.advance()
            node = self.or_expr()
            self.expect(Kind.RPAREN, "to close the parenthesis")
            return node
        if tok.kind is Kind.END:
            raise ConditionError("the condition ends too early", tok.pos)
        raise ConditionError(f"unexpected {tok.describe()}", tok.pos)

    def name_or_call(self) -> Node:
        tok = self.advance()
        upper = tok.text.upper()
        is_call = self.tok.kind is Kind.LPAREN
        _refuse_word(tok)
        if not is_call:
            return Name(tok.text, tok.pos)
        if upper not in FUNCTIONS:
            raise ConditionError(
                f"function {tok.text}() is not allowed; allowed functions: {', '.join(FUNCTIONS)}",
                tok.pos,
            )
        self.advance()  # (
        args = self._list(f"in the arguments of {upper}")
        return Call(upper, args, tok.pos)

    def _list(self, context: str) -> tuple[Node, ...]:
        """Comma-separated expressions after an opening parenthesis, and the closing one."""
        items = [self.or_expr()]
        while self.tok.kind is Kind.COMMA:
            self.advance()
            items.append(self.or_expr())
        self.expect(Kind.RPAREN, context)
        return tuple(items)

    def case(self) -> Node:
        start = self.advance()  # CASE
        if not self.at_keyword("WHEN"):
            raise ConditionError(
                "expected WHEN after CASE (write CASE WHEN x = 1 THEN ... END)", self.tok.pos
            )
        whens: list[tuple[Node, Node]] = []
        while self.at_keyword("WHEN"):
            self.advance()
            cond = self.or_expr()
            self.expect_keyword("THEN", "after the WHEN condition")
            whens.append((cond, self.or_expr()))
        else_: Node | None = None
        if self.at_keyword("ELSE"):
            self.advance()
            else_ = self.or_expr()
        self.expect_keyword("END", "to close CASE")
        return Case(tuple(whens), else_, start.pos)


def _pos(node: Node) -> int:
    return node.pos


def _refuse_word(tok: Token) -> None:
    """Refuse, with a clear message, a word that reads the clock or is SQL outside the
    condition language."""
    if tok.kind is not Kind.NAME:
        return
    upper = tok.text.upper()
    if upper in CLOCK_WORDS:
        raise ConditionError(
            f"{upper} is not allowed: conditions must not read the clock or chance; they "
            "use features computed for the as-of date",
            tok.pos,
        )
    if upper in UNSUPPORTED_WORDS:
        raise ConditionError(f"{upper} is not part of the condition language", tok.pos)
