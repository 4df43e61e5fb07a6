"""Migration 0005: debts.state may hold only the state machine's states, on both databases,
for a store created fresh and for one upgraded from 0004 with debts (and rows that refer to
them) already in it."""

from __future__ import annotations

import importlib
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Engine

from csa_closure.domain.states import DebtState
from csa_closure.store import migrate
from csa_closure.store.engine import make_engine
from csa_closure.store.schema import (
    cases,
    debts,
    parties,
    stage_runs,
    transfer_batches,
    transfer_items,
)

MIGRATION = importlib.import_module("csa_closure.store.migrations.versions.0005_debt_state_check")


def _seed(engine: Engine, states: list[str]) -> list[int]:
    """A case with one debt per state in ``states``, and a transfer item naming each debt."""
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(stage_runs)
            .values(
                stage="pull",
                actor="tester",
                host="test",
                started_at=datetime(2019, 3, 31, tzinfo=UTC),
                as_of=date(2019, 3, 31),
                status="completed",
                parameters={},
            )
            .returning(stage_runs.c.run_id)
        ).scalar_one()
        conn.execute(
            insert(parties),
            [
                {
                    "party_ref": f"CS2:{i}",
                    "source_system": "CS2",
                    "employment": "UNKNOWN",
                    "source_fingerprint": "x",
                    "pulled_run_id": run_id,
                }
                for i in (1, 2)
            ],
        )
        refs = [f"S{i:09d}" for i in range(len(states))]
        conn.execute(
            insert(cases),
            [
                {
                    "case_ref": ref,
                    "source_system": "CS2",
                    "source_case_key": ref,
                    "scheme": "2003",
                    "effective_date": date(2005, 1, 1),
                    "pwc_party_ref": "CS2:1",
                    "nrp_party_ref": "CS2:2",
                    "dv_marker": False,
                    "stop_acting": False,
                    "source_fingerprint": "x",
                    "pulled_run_id": run_id,
                }
                for ref in refs
            ],
        )
        conn.execute(
            insert(debts),
            [
                {
                    "case_ref": ref,
                    "source_system": "CS2",
                    "creditor": "PWC",
                    "opening_pence": 100,
                    "source_pence": 100,
                    "state": state,
                    "needs_tracing": False,
                    "needs_caseworker": False,
                }
                for ref, state in zip(refs, states, strict=True)
            ],
        )
        ids = list(conn.execute(select(debts.c.debt_id).order_by(debts.c.debt_id)).scalars())
        conn.execute(
            insert(transfer_batches).values(
                batch_id="B1",
                as_of=date(2019, 3, 31),
                created_at=datetime(2019, 3, 31, tzinfo=UTC),
                row_count=len(ids),
                total_pence=100 * len(ids),
                status="exported",
            )
        )
        conn.execute(
            insert(transfer_items),
            [
                {
                    "batch_id": "B1",
                    "debt_id": debt_id,
                    "case_ref": ref,
                    "creditor": "PWC",
                    "amount_pence": 100,
                    "transfer_reason": "PAYING",
                    "status": "exported",
                }
                for debt_id, ref in zip(ids, refs, strict=True)
            ],
        )
    return ids


def _refuses_a_state_outside_the_machine(engine: Engine, debt_id: int) -> None:
    with pytest.raises(Exception, match=r"(?i)check"), engine.begin() as conn:
        conn.execute(update(debts).where(debts.c.debt_id == debt_id).values(state="paid"))
    with engine.connect() as conn:
        assert conn.execute(select(debts.c.state).where(debts.c.debt_id == debt_id)).scalar()


def test_the_migration_lists_exactly_the_state_machine_s_states() -> None:
    """A new DebtState needs a migration that widens the CHECK (this fails until there is)."""
    assert set(MIGRATION.STATES) == {state.value for state in DebtState}


def test_a_fresh_store_refuses_a_state_outside_the_machine(store_url: str) -> None:
    engine = make_engine(store_url)
    (debt_id,) = _seed(engine, ["pulled"])
    _refuses_a_state_outside_the_machine(engine, debt_id)
    engine.dispose()


def test_a_store_at_0004_upgrades_keeping_its_debts_and_then_refuses_bad_states(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0004")
    states = [state.value for state in DebtState]
    ids = _seed(engine, states)
    assert migrate.upgrade(engine, "0005").current == "0005"
    with engine.connect() as conn:
        kept = conn.execute(select(debts.c.debt_id, debts.c.state).order_by(debts.c.debt_id))
        assert [tuple(row) for row in kept] == list(zip(ids, states, strict=True))
        items = conn.execute(select(transfer_items.c.debt_id).order_by(transfer_items.c.debt_id))
        assert list(items.scalars()) == ids
    for state in states:  # every state of the machine is still accepted
        with engine.begin() as conn:
            conn.execute(update(debts).where(debts.c.debt_id == ids[0]).values(state=state))
    _refuses_a_state_outside_the_machine(engine, ids[0])
    # the rebuilt table still enforces what it did (SQLite rebuilds it in batch mode)
    with pytest.raises(Exception, match=r"(?i)check|constraint"), engine.begin() as conn:
        conn.execute(update(debts).where(debts.c.debt_id == ids[0]).values(creditor="XYZ"))
    with pytest.raises(Exception, match=r"(?i)foreign key|constraint"), engine.begin() as conn:
        conn.execute(update(debts).where(debts.c.debt_id == ids[0]).values(case_ref="NOPE"))
    engine.dispose()


def test_a_store_holding_a_stray_state_is_not_upgraded_and_says_why(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0004")
    _seed(engine, ["pulled", "paid", "paid"])
    with pytest.raises(RuntimeError, match=r"'paid' \(2 debts\)"):
        migrate.upgrade(engine)
    assert migrate.status(engine).current == "0004"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM debts")).scalar() == 3
    engine.dispose()
