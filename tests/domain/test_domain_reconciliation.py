"""The reconciliation equations, written once in domain/reconciliation.py, say why they fail."""

from __future__ import annotations

from csa_closure.domain.reconciliation import (
    book_equation,
    ledger_equation,
    open_pence,
    source_equation,
)


def test_an_equation_that_holds_has_nothing_to_say() -> None:
    equation = source_equation(source=150, drift=-10, loaded=100, quarantined=40)
    assert equation.holds and equation.difference_pence == 0
    assert equation.why_not() is None


def test_a_failing_equation_names_both_sides_term_by_term() -> None:
    equation = source_equation(source=50678, drift=0, loaded=40679, quarantined=10000)
    assert not equation.holds
    assert (equation.left_pence, equation.right_pence, equation.difference_pence) == (
        50678,
        50679,
        -1,
    )
    assert equation.why_not() == (
        "source + drift = loaded + quarantined does not hold: "
        "source 50678 + drift 0 = 50678 pence != loaded 40679 + quarantined 10000 = 50679 pence "
        "(difference -1)"
    )


def test_the_book_and_ledger_equations() -> None:
    loaded, nil, written_off, transferred = 1_000, 100, 250, 300
    open_ = open_pence(loaded, nil, written_off, transferred)
    assert open_ == 350
    book = book_equation(
        loaded=loaded, nil=nil, written_off=written_off, transferred=transferred, open_=open_
    )
    assert book.holds
    broken = book_equation(loaded=10, nil=1, written_off=2, transferred=3, open_=5)
    assert broken.why_not() == (
        "loaded = nil + written off + transferred + open does not hold: loaded 10 pence != "
        "nil 1 + written off 2 + transferred 3 + open 5 = 11 pence (difference -1)"
    )
    ledger = ledger_equation(ledger_written_off=5, written_off_debts=4)
    assert ledger.why_not() == (
        "written off (ledger, net of reversals) = debts in state written_off does not hold: "
        "ledger net write-offs 5 pence != written-off debts 4 pence (difference 1)"
    )
