"""The reconciliation equations, each written once, each able to say why it fails.

Per system and creditor, every penny of the legacy book is accounted for by:

- ``source``: source + drift = loaded + quarantined. ``source`` is the legacy control total,
  ``loaded`` what the store holds for its debts (their balances as pulled), ``drift`` what
  the store holds minus what the source says now (debts decided before a source change are
  never overwritten), ``quarantined`` what is held back. The pull proves it as it loads:
  loaded - drift is then the source's current balance of the debts it loaded.
- ``book``: loaded = nil + written off + transferred + open (where the loaded pence are now).
- ``ledger``: written off, from the ledger net of reversals = pence of debts in state
  ``written_off``.

Callers read the figures (from the store, from a pull); these functions only state and check
them, so the reconciliation, its report, the resolve stages' book check, the pull and the
decommission gate all hold the same equations and explain a failure the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Term = tuple[str, int]  # a name as an operator reads it, and its pence


@dataclass(frozen=True)
class Equation:
    name: str  # source|book|ledger
    statement: str  # the equation in words
    left: tuple[Term, ...]
    right: tuple[Term, ...]

    @property
    def left_pence(self) -> int:
        return sum(pence for _, pence in self.left)

    @property
    def right_pence(self) -> int:
        return sum(pence for _, pence in self.right)

    @property
    def difference_pence(self) -> int:
        """Left minus right: zero when the equation holds."""
        return self.left_pence - self.right_pence

    @property
    def holds(self) -> bool:
        return self.difference_pence == 0

    def why_not(self) -> str | None:
        """None when it holds; otherwise both sides, term by term, with their pence."""
        if self.holds:
            return None
        return (
            f"{self.statement} does not hold: {_side(self.left)} != {_side(self.right)} "
            f"(difference {self.difference_pence})"
        )


def _side(terms: Sequence[Term]) -> str:
    if len(terms) == 1:
        name, pence = terms[0]
        return f"{name} {pence} pence"
    total = sum(pence for _, pence in terms)
    return " + ".join(f"{name} {pence}" for name, pence in terms) + f" = {total} pence"


SOURCE = "source + drift = loaded + quarantined"
BOOK = "loaded = nil + written off + transferred + open"
LEDGER = "written off (ledger, net of reversals) = debts in state written_off"
STATEMENTS = {"source": SOURCE, "book": BOOK, "ledger": LEDGER}


def source_equation(*, source: int, drift: int, loaded: int, quarantined: int) -> Equation:
    return Equation(
        "source",
        SOURCE,
        (("source", source), ("drift", drift)),
        (("loaded", loaded), ("quarantined", quarantined)),
    )


def book_equation(
    *, loaded: int, nil: int, written_off: int, transferred: int, open_: int
) -> Equation:
    return Equation(
        "book",
        BOOK,
        (("loaded", loaded),),
        (
            ("nil", nil),
            ("written off", written_off),
            ("transferred", transferred),
            ("open", open_),
        ),
    )


def ledger_equation(*, ledger_written_off: int, written_off_debts: int) -> Equation:
    return Equation(
        "ledger",
        LEDGER,
        (("ledger net write-offs", ledger_written_off),),
        (("written-off debts", written_off_debts),),
    )


def open_pence(loaded: int, *closed: int) -> int:
    """What the book equation leaves open: loaded less every closed amount (nil, written off
    and transferred, by state)."""
    return loaded - sum(closed)
