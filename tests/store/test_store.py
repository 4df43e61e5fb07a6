"""The store's mechanisms on SQLite and PostgreSQL: schema, append-only log, leases, moves."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text, update

from csa_closure.context import Context, Settings
from csa_closure.domain.events import EventType
from csa_closure.errors import (
    ConcurrentChange,
    InvalidTransition,
    LeaseHeld,
    LeaseLost,
    SchemaNotCurrent,
)
from csa_closure.store import migrate
from csa_closure.store.debts import move_debts
from csa_closure.store.engine import make_engine
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import cases, debts, events, metadata, parties, stage_runs
from tests.conftest import SteppingClock


def test_migrations_create_exactly_the_schema(store_url: str) -> None:
    engine = make_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_reports_current(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.status(engine).current is None
    assert migrate.upgrade(engine).is_current
    assert migrate.upgrade(engine).is_current


def test_stage_refuses_a_store_without_schema(db_url: str) -> None:
    ctx = Context(engine=make_engine(db_url), as_of=date(2019, 3, 31), actor="t")
    with pytest.raises(SchemaNotCurrent, match="csa-closure db upgrade"), stage_run(ctx, "x", {}):
        pass


def test_events_are_append_only(ctx: Context) -> None:
    with stage_run(ctx, "test", {}) as run, run.chunk() as conn:
        from csa_closure.store import events as event_log

        event_log.record(conn, run, EventType.PARTY_UPDATED, detail={"n": 1})
    for statement in ("UPDATE events SET actor = 'someone else'", "DELETE FROM events"):
        with pytest.raises(Exception, match="append-only"), ctx.engine.begin() as conn:
            conn.execute(text(statement))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(events.c.actor)).scalars().all() == ["tester"]


def test_an_event_type_outside_the_vocabulary_is_refused(ctx: Context) -> None:
    from csa_closure.store import events as event_log

    with pytest.raises(ValueError, match=r"'debt\.misspelt' is not an event type"):
        with stage_run(ctx, "test", {}) as run, run.chunk() as conn:
            event_log.record(conn, run, "debt.misspelt")
    with pytest.raises(ValueError, match="not an event type"):
        with stage_run(ctx, "test", {}) as run, run.chunk() as conn:
            event_log.record_frame(conn, run, "debt.misspelt", pl.DataFrame({"debt_id": [1]}))
    with ctx.engine.connect() as conn:
        assert conn.execute(select(events.c.event_type)).scalars().all() == []


def test_runs_record_success_failure_and_instants_in_utc(ctx: Context) -> None:
    with stage_run(ctx, "good", {"limit": 3}) as run:
        run.count("things", 2)
    with pytest.raises(ValueError), stage_run(ctx, "bad", {}):
        raise ValueError("Ms Jane Example, 1 High Street")  # must not reach the run record
    with ctx.engine.connect() as conn:
        rows = {r.stage: r for r in conn.execute(select(stage_runs))}
    assert rows["good"].status == "completed"
    assert rows["good"].counts == {"things": 2}
    assert rows["good"].parameters == {"limit": 3}
    assert rows["good"].as_of == date(2019, 3, 31)
    assert rows["good"].started_at.utcoffset() == timedelta(0)
    assert rows["bad"].status == "failed"
    assert "Jane" not in rows["bad"].error and "High Street" not in rows["bad"].error


def _other(ctx: Context, actor: str, clock: SteppingClock) -> Context:
    return Context(
        engine=ctx.engine,
        as_of=ctx.as_of,
        actor=actor,
        settings=Settings(lease_seconds=60),
        clock=clock,
    )


def test_a_lease_refuses_a_second_holder_until_it_expires(ctx: Context) -> None:
    clock = SteppingClock()
    first, second = _other(ctx, "alice", clock), _other(ctx, "bob", clock)
    with stage_run(first, "send", {}, claims=["batch:1"]) as alice:
        with pytest.raises(LeaseHeld, match=r"batch:1 is being worked by alice@"):
            with stage_run(second, "send", {}, claims=["batch:1"]):
                pass
        # alice stalls past her lease; bob takes it over, and alice can no longer commit
        clock.now += timedelta(seconds=61)
        with stage_run(second, "send", {}, claims=["batch:1"]) as bob:
            with bob.chunk():
                pass
            with pytest.raises(LeaseLost), alice.chunk():
                pass
    with ctx.engine.connect() as conn:
        takeover = conn.execute(
            select(events).where(events.c.event_type == "lease.taken_over")
        ).one()
        statuses = dict(conn.execute(select(stage_runs.c.run_id, stage_runs.c.status)).all())
    assert takeover.detail["previous_run_id"] == alice.run_id
    assert takeover.detail["previous_holder"].startswith("alice@")
    assert takeover.actor == "bob"
    assert statuses[bob.run_id] == "completed"
    # alice's run was marked abandoned when bob took over; its end is then not overwritten
    assert statuses[alice.run_id] == "abandoned"


def test_a_released_lease_can_be_taken_at_once(ctx: Context) -> None:
    with stage_run(ctx, "pull", {}, claims=["stage:pull"]):
        pass
    with stage_run(ctx, "pull", {}, claims=["stage:pull"]) as run:
        assert run.leases[0].name == "stage:pull"


def _seed_debts(ctx: Context, n: int) -> pl.DataFrame:
    with stage_run(ctx, "seed", {}) as run, run.chunk() as conn:
        conn.execute(
            insert(parties),
            [
                {
                    "party_ref": f"CS2:{i}",
                    "source_system": "CS2",
                    "employment": "UNKNOWN",
                    "source_fingerprint": "x",
                    "pulled_run_id": run.run_id,
                }
                for i in (1, 2)
            ],
        )
        conn.execute(
            insert(cases),
            [
                {
                    "case_ref": f"S{i:09d}",
                    "source_system": "CS2",
                    "source_case_key": str(i),
                    "scheme": "2003",
                    "effective_date": date(2005, 1, 1),
                    "pwc_party_ref": "CS2:1",
                    "nrp_party_ref": "CS2:2",
                    "dv_marker": False,
                    "stop_acting": False,
                    "source_fingerprint": "x",
                    "pulled_run_id": run.run_id,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(debts),
            [
                {
                    "case_ref": f"S{i:09d}",
                    "source_system": "CS2",
                    "creditor": "PWC",
                    "opening_pence": 100 * i,
                    "source_pence": 100 * i,
                    "state": "pulled",
                }
                for i in range(n)
            ],
        )
    with ctx.engine.connect() as conn:
        return pl.DataFrame(
            conn.execute(select(debts.c.debt_id, debts.c.case_ref)).all(),
            schema=["debt_id", "case_ref"],
            orient="row",
        )


def test_moves_update_state_and_write_one_event_each(ctx: Context) -> None:
    seeded = _seed_debts(ctx, 5)
    moves = seeded.with_columns(
        pl.lit("pulled").alias("from_state"),
        pl.lit("write_off_pending").alias("to_state"),
        pl.lit("write_off_silent").alias("outcome"),
        pl.lit("BELOW_65").alias("reason"),
        pl.struct(pl.lit("BELOW_65").alias("reason")).alias("detail"),
    )
    with stage_run(ctx, "assess", {}) as run, run.chunk() as conn:
        moved = move_debts(
            conn, run, moves, event_type="debt.decided", set_columns=["outcome", "reason"]
        )
    assert moved == 5
    with ctx.engine.connect() as conn:
        states = conn.execute(select(debts.c.state, debts.c.outcome, debts.c.updated_run_id)).all()
        logged = conn.execute(select(events).where(events.c.event_type == "debt.decided")).all()
    assert {s[:2] for s in states} == {("write_off_pending", "write_off_silent")}
    assert {s[2] for s in states} == {run.run_id}
    assert len(logged) == 5
    assert all(e.detail == {"reason": "BELOW_65"} for e in logged)
    assert {e.from_state for e in logged} == {"pulled"}


def test_a_move_from_a_stale_state_rolls_back_the_whole_chunk(ctx: Context) -> None:
    seeded = _seed_debts(ctx, 4)
    # someone else moved one debt on
    with ctx.engine.begin() as conn:
        conn.execute(
            update(debts).where(debts.c.debt_id == seeded["debt_id"][0]).values(state="closed")
        )
    moves = seeded.with_columns(
        pl.lit("pulled").alias("from_state"), pl.lit("closed").alias("to_state")
    )
    with pytest.raises(ConcurrentChange, match="1 of 4"):
        with stage_run(ctx, "assess", {}) as run, run.chunk() as conn:
            move_debts(conn, run, moves, event_type="debt.decided")
    with ctx.engine.connect() as conn:
        assert conn.execute(select(debts.c.state)).scalars().all().count("pulled") == 3
        assert conn.execute(select(events.c.event_id)).all() == []


def test_a_move_the_state_machine_forbids_is_refused(ctx: Context) -> None:
    seeded = _seed_debts(ctx, 1)
    moves = seeded.with_columns(
        pl.lit("pulled").alias("from_state"), pl.lit("written_off").alias("to_state")
    )
    with pytest.raises(InvalidTransition, match="'pulled' to 'written_off'"):
        with stage_run(ctx, "x", {}) as run, run.chunk() as conn:
            move_debts(conn, run, moves, event_type="debt.written_off")


def test_the_pull_s_debt_writes_refuse_when_a_debt_is_not_where_it_was_read(ctx: Context) -> None:
    """The pull's refresh (only of undecided debts) and drift (source balance) updates check
    their row counts: a debt decided, or gone, in between rolls the chunk back."""
    from csa_closure.store.debts import record_source_drift, refresh_pulled_debts

    seeded = _seed_debts(ctx, 2)
    with ctx.engine.begin() as conn:
        conn.execute(
            update(debts).where(debts.c.debt_id == seeded["debt_id"][0]).values(state="closed")
        )
    changed = seeded.with_columns(
        pl.lit(100, dtype=pl.Int64).alias("opening_pence"),
        pl.lit(250, dtype=pl.Int64).alias("balance_pence"),
    )
    with pytest.raises(ConcurrentChange, match="1 of 2 debts could not be refreshed"):
        with stage_run(ctx, "pull", {}) as run, run.chunk() as conn:
            refresh_pulled_debts(conn, run, changed)
    gone = changed.with_columns(
        pl.lit(10_000, dtype=pl.Int64).alias("debt_id"),
        pl.lit(100, dtype=pl.Int64).alias("stored_source_pence"),
    ).head(1)
    with pytest.raises(ConcurrentChange, match="1 of 1 debts"):
        with stage_run(ctx, "pull", {}) as run, run.chunk() as conn:
            record_source_drift(conn, run, gone)
    with ctx.engine.connect() as conn:
        assert sorted(conn.execute(select(debts.c.source_pence)).scalars()) == [0, 100]
        assert conn.execute(select(events.c.event_id)).all() == []


@pytest.mark.postgres
def test_a_run_that_wrote_many_rows_refreshes_their_statistics(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL plans from statistics autovacuum may refresh late or never: a run that wrote
    RESHAPED_ROWS rows or more to a table refreshes them when it ends, failed or not; a table it
    wrote fewer to is left to autovacuum."""
    from csa_closure.store import runs
    from csa_closure.store.dialect import insert_frame

    engine = make_engine(pg_schema_url)
    migrate.upgrade(engine)
    ctx = Context(engine=engine, as_of=date(2019, 3, 31), actor="tester")
    monkeypatch.setattr(runs, "RESHAPED_ROWS", 3)

    def planner_rows(table: str) -> float:
        with engine.connect() as conn:
            return float(
                conn.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                    {"t": table},
                ).scalar_one()
            )

    parties_frame = pl.DataFrame(
        {
            "party_ref": [f"P{n}" for n in range(5)],
            "given_names": ["A"] * 5,
            "family_name": ["B"] * 5,
            "source_system": ["CS2"] * 5,
            "source_fingerprint": ["f"] * 5,
            "employment": ["UNKNOWN"] * 5,
        }
    )
    with pytest.raises(RuntimeError), stage_run(ctx, "pull", {}) as run:
        with run.chunk() as conn:
            stamp = pl.lit(run.run_id, dtype=pl.Int64).alias("pulled_run_id")
            insert_frame(conn, parties, parties_frame.with_columns(stamp))
        raise RuntimeError("stopped after its first chunk")
    assert planner_rows("parties") == 5  # refreshed though the run failed
    assert planner_rows("cases") < 0  # never written: never analysed
    engine.dispose()


@pytest.mark.postgres
def test_instants_written_in_bulk_keep_their_moment_whatever_the_session_time_zone(
    pg_schema_url: str,
) -> None:
    """Bulk writes (COPY) hand PostgreSQL instants with their zone: a naive one would be read
    in the session's TimeZone, which a production server may set to Europe/London."""
    from csa_closure.store.dialect import insert_frame

    migrate.upgrade(make_engine(pg_schema_url))
    engine = make_engine(f"{pg_schema_url}%20-ctimezone%3DAmerica/New_York")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW timezone").scalar_one() == "America/New_York"
    instant = datetime(2019, 7, 1, 12, 30, tzinfo=UTC)
    with engine.begin() as conn:
        insert_frame(
            conn,
            stage_runs,
            pl.DataFrame(
                {
                    "stage": ["pull"],
                    "status": ["running"],
                    "actor": ["tester"],
                    "host": ["here"],
                    "as_of": [date(2019, 7, 1)],
                    "started_at": [instant],
                    "parameters": ["{}"],
                }
            ),
        )
    with engine.connect() as conn:
        assert conn.execute(select(stage_runs.c.started_at)).scalar_one() == instant
    engine.dispose()


def test_bulk_inserts_keep_every_value_as_it_was(db_url: str) -> None:
    """Nulls, empty strings, quotes, separators, line breaks, backslashes, COPY's end-of-data
    line and non-ASCII text come back exactly as insert_frame wrote them (PostgreSQL takes
    them as COPY's CSV)."""
    from csa_closure.store.dialect import insert_frame

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    awkward = [None, "", '"', ",", "a\nb", "a\r\nb", "\\", "\\.", "\\N", "NULL", "Siân O'Brien"]
    instant = datetime(2019, 7, 1, 12, 30, tzinfo=UTC)
    frame = pl.DataFrame(
        {
            "occurred_at": [instant] * len(awkward),
            "as_of": [date(2019, 7, 1)] * len(awkward),
            "actor": ["tester"] * len(awkward),
            "event_type": ["debt.pulled"] * len(awkward),
            "entity": awkward,
            "debt_id": list(range(len(awkward))),
        }
    )
    with engine.begin() as conn:
        insert_frame(conn, events, frame)
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.entity, events.c.occurred_at).order_by(events.c.debt_id)
        ).all()
    assert [r.entity for r in rows] == awkward
    assert {r.occurred_at for r in rows} == {instant}
    engine.dispose()


def test_migration_0006_drops_the_letters_batch_index_the_wider_one_covers(db_url: str) -> None:
    from sqlalchemy import inspect

    engine = make_engine(db_url)

    def letters_indexes() -> set[str]:
        with engine.connect() as conn:
            return {str(ix["name"]) for ix in inspect(conn).get_indexes("letters")}

    migrate.upgrade(engine, "0005")
    assert {"ix_letters_batch_id", "ix_letters_batch_id_status_letter_id"} <= letters_indexes()
    migrate.upgrade(engine)
    indexes = letters_indexes()
    assert "ix_letters_batch_id" not in indexes
    assert "ix_letters_batch_id_status_letter_id" in indexes
    engine.dispose()
