"""The ledger: append-only, reversal by mirror entry, refusals, totals for finance."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text

from csa_closure.context import Context
from csa_closure.errors import UsageError
from csa_closure.reconcile import reconcile
from csa_closure.stages.ledger import iter_entries, ledger_totals, reverse_entry
from csa_closure.stages.resolve import resolve
from csa_closure.stages.review import decide
from csa_closure.store.schema import ledger_entries
from tests.support.builders import BookBuilder
from tests.support.resolve import assert_balanced, debt_row, seal_pull, send_notices

AS_OF = date(2019, 3, 31)


def _written_off(ctx: Context, pence: tuple[int, ...] = (70_000, 5_000)) -> list[int]:
    book = BookBuilder(ctx)
    ids = [
        book.debt(
            book.case(f"C{i + 1:09d}"),
            "PWC",
            amount,
            state="write_off_pending",
            outcome="write_off_notice",
            reason="BELOW_THRESHOLD",
            rule_id="PWC-09",
            ruleset_hash="h" * 64,
        )
        for i, amount in enumerate(pence)
    ]
    seal_pull(ctx)
    send_notices(ctx)
    resolve(ctx)
    return ids


def _entry_for(ctx: Context, debt_id: int) -> int:
    with ctx.engine.connect() as conn:
        return int(
            conn.execute(
                select(ledger_entries.c.entry_id).where(
                    ledger_entries.c.debt_id == debt_id,
                    ledger_entries.c.entry_type == "write_off",
                )
            ).scalar_one()
        )


def test_a_reversal_mirrors_the_entry_and_returns_the_debt_to_review(ctx: Context) -> None:
    debt, other = _written_off(ctx)
    entry = _entry_for(ctx, debt)
    result = reverse_entry(ctx, entry, "LATE_COMPLAINT_UPHELD")
    with ctx.engine.connect() as conn:
        mirror = conn.execute(
            select(ledger_entries).where(ledger_entries.c.entry_id == result.reversal_entry_id)
        ).one()
    assert (mirror.entry_type, mirror.amount_pence, mirror.reverses_entry_id) == (
        "reversal",
        -70_000,
        entry,
    )
    assert (mirror.reason, mirror.rule_id, mirror.ruleset_hash) == (
        "LATE_COMPLAINT_UPHELD",
        "PWC-09",
        "h" * 64,
    )
    assert (mirror.actor, mirror.as_of, mirror.run_id) == ("tester", AS_OF, result.run_id)
    row = debt_row(ctx, debt)
    assert (row.state, row.review_reason) == ("review", "REVERSED:LATE_COMPLAINT_UPHELD")
    assert debt_row(ctx, other).state == "written_off"
    recon = reconcile(ctx)
    pwc = recon.creditor_totals()["PWC"]
    assert (pwc["written_off_pence"], pwc["reversed_pence"]) == (5_000, 70_000)
    assert_balanced(ctx)
    totals = ledger_totals(ctx)
    assert (totals.write_offs, totals.reversals) == (2, 1)
    assert (totals.written_off_pence, totals.reversed_pence, totals.net_pence) == (
        75_000,
        70_000,
        5_000,
    )
    listed = {e.entry_id: e for e in iter_entries(ctx)}
    assert listed[entry].reversed_by_entry_id == result.reversal_entry_id
    assert [e.entry_id for e in iter_entries(ctx, case_ref="C000000001")] == [
        entry,
        result.reversal_entry_id,
    ]


def test_reversal_is_refused_for_a_reversal_and_a_second_time(
    ctx: Context,
) -> None:
    debt, _ = _written_off(ctx)
    entry = _entry_for(ctx, debt)
    mirror = reverse_entry(ctx, entry, "WRITTEN_OFF_IN_ERROR").reversal_entry_id
    with pytest.raises(UsageError, match="already reversed by entry"):
        reverse_entry(ctx, entry, "WRITTEN_OFF_IN_ERROR")
    with pytest.raises(UsageError, match="only a write-off can be reversed"):
        reverse_entry(ctx, mirror, "WRITTEN_OFF_IN_ERROR")
    with pytest.raises(UsageError, match="no ledger entry 999"):
        reverse_entry(ctx, 999, "WRITTEN_OFF_IN_ERROR")
    with pytest.raises(UsageError, match="code in capitals"):
        reverse_entry(ctx, entry, "the PWC rang")
    # the caseworker decides again: written off a second time, a new entry
    decide(ctx, "C000000001", "PWC", "write_off_silent", "CONFIRMED_ON_REVIEW")
    assert resolve(ctx).written_off.debts == 1
    second = max(e.entry_id for e in iter_entries(ctx, entry_type="write_off"))
    reverse_entry(ctx, second, "WRITTEN_OFF_IN_ERROR")
    decide(ctx, "C000000001", "PWC", "transfer", "NRP_FOUND_EMPLOYED")
    assert debt_row(ctx, debt).state == "transfer_ready"
    assert ledger_totals(ctx).net_pence == 5_000  # only the other debt's write-off stands
    assert_balanced(ctx)


def test_a_written_off_debt_cannot_be_reversed_once_it_moved_on_even_if_unreversed(
    ctx: Context,
) -> None:
    debt, _ = _written_off(ctx)
    entry = _entry_for(ctx, debt)
    with ctx.engine.begin() as conn:  # as if someone moved it outside the ledger
        conn.exec_driver_sql(f"UPDATE debts SET state = 'review' WHERE debt_id = {debt}")
    with pytest.raises(UsageError, match="it is now review"):
        reverse_entry(ctx, entry, "WRITTEN_OFF_IN_ERROR")


def test_the_ledger_is_append_only(ctx: Context) -> None:
    _written_off(ctx)
    for statement in (
        "UPDATE ledger_entries SET amount_pence = 1",
        "DELETE FROM ledger_entries",
    ):
        with pytest.raises(Exception, match="append-only"), ctx.engine.begin() as conn:
            conn.execute(text(statement))
    assert ledger_totals(ctx).net_pence == 75_000
