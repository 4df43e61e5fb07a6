"""The money check every command of the resolve stages makes before it reports success.

Of the reconciliation's equations (:mod:`csa_closure.domain.reconciliation`), two are this
stage's to keep:

- loaded = nil + written off + transferred + open, per system and creditor;
- written off net of reversals (the ledger) = pence of debts in state ``written_off``.

(The third, source + drift = loaded + quarantined, is the pull's, and needs a completed pull.)
Commands that write in one transaction check inside it, so a write that would break the books
rolls back; chunked runs check when they finish.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Connection

from csa_closure.domain.states import CREDITORS
from csa_closure.errors import Unbalanced
from csa_closure.reconcile import SYSTEMS, Reconciliation, reconcile_conn
from csa_closure.serialise import JsonFields


@dataclass
class BookCheck(JsonFields):
    """Totals over both systems and creditors, and whether every equation holds."""

    balanced: bool
    problems: list[str] = field(default_factory=list)
    loaded_pence: int = 0
    nil_pence: int = 0
    written_off_pence: int = 0
    transferred_pence: int = 0
    open_pence: int = 0
    reversed_pence: int = 0


def book_check(recon: Reconciliation) -> BookCheck:
    check = BookCheck(balanced=True)
    for system in SYSTEMS:
        for creditor in CREDITORS:
            c = recon.systems[system][creditor]
            _, book, ledger = c.equations()  # the source equation is the pull's
            check.problems += [
                f"{system} {creditor}: {why}"
                for why in (book.why_not(), ledger.why_not())
                if why is not None
            ]
            check.loaded_pence += c.loaded_pence
            check.nil_pence += c.nil_pence
            check.written_off_pence += c.written_off_pence
            check.transferred_pence += c.transferred_pence
            check.open_pence += c.open_pence
            check.reversed_pence += c.reversed_pence
    check.balanced = not check.problems
    return check


def check_book(conn: Connection) -> BookCheck:
    """Check the book inside ``conn``'s transaction; raise ``Unbalanced`` (rolling it back)
    if an equation fails."""
    check = book_check(reconcile_conn(conn))
    if not check.balanced:
        raise Unbalanced(
            "the books do not balance; nothing from this command was written: "
            + "; ".join(check.problems),
            check,
        )
    return check
