"""The report books themselves: balanced, and where they claim to be."""

from __future__ import annotations

from sqlalchemy import func, select

from csa_closure.context import Context
from csa_closure.reconcile import reconcile
from csa_closure.store.schema import debts
from tests.support.books import closed_book, mid_book


def test_the_mid_book_balances_and_is_half_way(ctx: Context) -> None:
    book = mid_book(ctx)
    rec = reconcile(book.ctx)
    assert rec.balanced, rec.to_json()
    assert rec.systems["CSCS"]["SOS"].reversed_pence == 20_000
    with ctx.engine.connect() as conn:
        states: dict[str, int] = dict(
            conn.execute(select(debts.c.state, func.count()).group_by(debts.c.state)).all()
        )
    assert states["pulled"] == 1 and states["written_off"] == 2 and states["transferred"] == 1


def test_the_closed_book_is_closed_and_balanced(ctx: Context) -> None:
    book = closed_book(ctx)
    assert reconcile(book.ctx).balanced
    with ctx.engine.connect() as conn:
        assert set(conn.execute(select(debts.c.state)).scalars()) == {
            "closed",
            "written_off",
            "transferred",
        }
