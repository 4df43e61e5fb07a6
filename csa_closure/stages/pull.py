"""Pull: load the legacy book into the working store, every penny accounted for.

The legacy replica is read and normalised in full (``csa_closure.legacy``), then written in
chunks, each chunk one transaction with its events, under the ``stage:pull`` lease:

- cases new to the store are inserted with their parties, debts (state ``pulled``), payment
  days and one ``debt.pulled`` event per debt;
- cases already loaded but not yet decided are refreshed when their source changed;
- cases already decided are never overwritten: a changed source balance is recorded as drift
  (``debts.source_pence`` and a ``debt.source_drift`` event, once per change);
- quarantine is brought in line with the source: new items held, items fixed at source
  released (their cases load in the same pull).

Re-running continues where a killed run stopped (it skips what is already loaded) and
duplicates nothing. Per system and creditor the pull proves source + drift = loaded +
quarantined (``csa_closure.domain.reconciliation``) exactly; a mismatch marks the run
``unbalanced`` and raises ``Unbalanced``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.reconciliation import Equation, source_equation
from csa_closure.domain.states import DebtState, QuarantineStatus
from csa_closure.errors import Unbalanced
from csa_closure.legacy.contract import CREDITOR_BUCKETS
from csa_closure.legacy.extract import read_legacy
from csa_closure.legacy.normalise import NormalisedBook, normalise
from csa_closure.progress import NO_PROGRESS, Progress, Relabelled
from csa_closure.store import events
from csa_closure.store.debts import insert_pulled_debts, record_source_drift, refresh_pulled_debts
from csa_closure.store.dialect import (
    driver_frame,
    execute_many,
    insert_frame,
    read_frame,
    update_from_frame,
)
from csa_closure.store.engine import redacted
from csa_closure.store.runs import Run, stage_run
from csa_closure.store.schema import cases, debts, parties, payment_days, quarantine

log = logging.getLogger(__name__)

SYSTEMS = ("CSCS", "CS2")
PULL_LEASE = "stage:pull"

CASE_COLUMNS = [c.name for c in cases.columns if c.name != "pulled_run_id"]
PARTY_COLUMNS = [c.name for c in parties.columns if c.name != "pulled_run_id"]
PAYMENT_COLUMNS = [c.name for c in payment_days.columns]


# --- results --------------------------------------------------------------------------


@dataclass
class CreditorReconciliation:
    """The source equation (:func:`csa_closure.domain.reconciliation.source_equation`) as the
    pull proves it, for one system and creditor."""

    source_pence: int
    # what the source says now about the debts the store holds (``report reconcile``'s
    # ``loaded_pence`` is what the store holds: this plus the drift)
    loaded_at_source_pence: int
    quarantined_pence: int
    # what the store holds for these debts minus what the source says now (decided debts
    # are never overwritten, so a source change after the decision shows here)
    drift_pence: int = 0

    @property
    def equation(self) -> Equation:
        return source_equation(
            source=self.source_pence,
            drift=self.drift_pence,
            loaded=self.loaded_at_source_pence + self.drift_pence,
            quarantined=self.quarantined_pence,
        )

    @property
    def difference_pence(self) -> int:
        return self.equation.difference_pence

    @property
    def balanced(self) -> bool:
        return self.equation.holds

    def to_json(self) -> dict[str, Any]:
        return {
            "source_pence": self.source_pence,
            "loaded_at_source_pence": self.loaded_at_source_pence,
            "quarantined_pence": self.quarantined_pence,
            "difference_pence": self.difference_pence,
            "drift_pence": self.drift_pence,
            "balanced": self.balanced,
        }


@dataclass
class SystemReconciliation:
    cases_source: int
    cases_loaded: int
    cases_quarantined: int
    creditors: dict[str, CreditorReconciliation]

    @property
    def balanced(self) -> bool:
        return all(c.balanced for c in self.creditors.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "cases_source": self.cases_source,
            "cases_loaded": self.cases_loaded,
            "cases_quarantined": self.cases_quarantined,
            **{name: c.to_json() for name, c in self.creditors.items()},
            "balanced": self.balanced,
        }


@dataclass
class PullResult:
    run_id: int
    systems: dict[str, SystemReconciliation]
    counts: dict[str, int]
    drift: list[dict[str, Any]] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return all(s.balanced for s in self.systems.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "balanced": self.balanced,
            "systems": {name: s.to_json() for name, s in self.systems.items()},
            "counts": self.counts,
            "drift": self.drift,
        }


# --- reading what the store already has ------------------------------------------------


def _frame(conn: Connection, statement: Any, schema: dict[str, Any]) -> pl.DataFrame:
    rows = conn.execute(statement).all()
    return pl.DataFrame(rows, schema=schema, orient="row")


# The store-wide reads are driver SQL through ``read_frame``: at a million rows a SQLAlchemy
# ``Row`` per row was a third of a re-pull.
_EXISTING_CASES_SQL = """
SELECT c.case_ref, c.source_system, c.source_fingerprint,
       COALESCE(SUM(CASE WHEN d.state <> ? THEN 1 ELSE 0 END), 0)
FROM cases c LEFT OUTER JOIN debts d ON d.case_ref = c.case_ref
GROUP BY c.case_ref, c.source_system, c.source_fingerprint
"""


def _existing_cases(conn: Connection) -> pl.DataFrame:
    """Every stored case with its fingerprint and whether any of its debts was decided."""
    frame = read_frame(
        conn,
        (_EXISTING_CASES_SQL, (DebtState.PULLED.value,)),
        {
            "case_ref": pl.String(),
            "source_system": pl.String(),
            "stored_fingerprint": pl.String(),
            "decided_debts": pl.Int64(),
        },
    )
    return frame.with_columns((pl.col("decided_debts") > 0).alias("decided")).drop("decided_debts")


def _existing_debts(conn: Connection, system: str) -> pl.DataFrame:
    return read_frame(
        conn,
        (
            "SELECT debt_id, case_ref, creditor, state, opening_pence, source_pence "
            "FROM debts WHERE source_system = ?",
            (system,),
        ),
        {
            "debt_id": pl.Int64(),
            "case_ref": pl.String(),
            "creditor": pl.String(),
            "state": pl.String(),
            "opening_pence": pl.Int64(),
            "stored_source_pence": pl.Int64(),
        },
    )


def _existing_parties(conn: Connection) -> pl.DataFrame:
    return read_frame(
        conn,
        ("SELECT party_ref, source_fingerprint FROM parties", ()),
        {"party_ref": pl.String(), "stored_fingerprint": pl.String()},
    )


def _existing_quarantine(conn: Connection) -> pl.DataFrame:
    return read_frame(
        conn,
        (
            "SELECT quarantine_id, source_system, case_ref, item_kind, status FROM quarantine",
            (),
        ),
        {
            "quarantine_id": pl.Int64(),
            "source_system": pl.String(),
            "case_ref": pl.String(),
            "item_kind": pl.String(),
            "status": pl.String(),
        },
    )


# --- planning -------------------------------------------------------------------------


@dataclass
class PullPlan:
    """What this pull will do, worked out from the source and the store before writing."""

    new_cases: pl.DataFrame  # case rows to insert
    refreshed_cases: pl.DataFrame  # undecided cases whose source changed
    drifted_cases: pl.DataFrame  # decided cases whose source changed (not overwritten)
    invalid_loaded: pl.DataFrame  # loaded cases the source now holds as dirty
    missing_at_source: pl.DataFrame  # stored cases the source no longer has
    changed_parties: pl.DataFrame  # stored parties whose source changed
    quarantine_items: pl.DataFrame  # the items to hold after this pull
    # the parties the store held when planning (``party_ref``): the pull, holding its lease,
    # is their one writer, so what it inserts is what is new beyond these
    known_parties: pl.DataFrame


def plan_pull(book: NormalisedBook, conn: Connection, system: str) -> PullPlan:
    """What to do for ``system``, whose normalised source is ``book``."""
    existing = _existing_cases(conn).filter(pl.col("source_system") == system)
    source_cases = book.cases.join(existing, on=["case_ref", "source_system"], how="left")
    is_new = pl.col("stored_fingerprint").is_null()
    changed = ~is_new & (pl.col("source_fingerprint") != pl.col("stored_fingerprint"))
    held = book.quarantine
    loaded_refs = existing.select("case_ref", "source_system")
    invalid_loaded = held.filter(pl.col("item_kind") == "case").join(
        loaded_refs, on=["case_ref", "source_system"], how="semi"
    )
    in_source = pl.concat(
        [
            book.cases.select("case_ref", "source_system"),
            held.filter(pl.col("item_kind") == "case").select("case_ref", "source_system"),
        ]
    )
    stored_parties = _existing_parties(conn)
    party_changes = book.parties.join(stored_parties, on="party_ref", how="inner").filter(
        pl.col("source_fingerprint") != pl.col("stored_fingerprint")
    )
    return PullPlan(
        new_cases=source_cases.filter(is_new).select(CASE_COLUMNS),
        refreshed_cases=source_cases.filter(changed & ~pl.col("decided")).select(CASE_COLUMNS),
        drifted_cases=source_cases.filter(changed & pl.col("decided")).select(CASE_COLUMNS),
        invalid_loaded=invalid_loaded,
        missing_at_source=existing.join(in_source, on=["case_ref", "source_system"], how="anti"),
        changed_parties=party_changes.select(PARTY_COLUMNS),
        quarantine_items=held.join(invalid_loaded, on=["case_ref", "source_system"], how="anti")
        if invalid_loaded.height
        else held,
        known_parties=stored_parties.select("party_ref"),
    )


# --- writing --------------------------------------------------------------------------


def _chunks(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    return [frame.slice(offset, size) for offset in range(0, frame.height, size)]


def _insert_new_cases(
    run: Run, book: NormalisedBook, plan: PullPlan, progress: Progress
) -> dict[str, int]:
    """Insert new cases chunk by chunk, each chunk with its parties, debts, payments, events."""
    counts = {"cases_new": 0, "debts_new": 0, "parties_new": 0}
    new_cases, known_parties = plan.new_cases, plan.known_parties
    progress.start("pull: loading cases", new_cases.height)
    for chunk in _chunks(new_cases, run.ctx.settings.chunk_size):
        refs = chunk.select("case_ref")
        needed = pl.concat(
            [
                chunk.select(pl.col("pwc_party_ref").alias("party_ref")),
                chunk.select(pl.col("nrp_party_ref").alias("party_ref")),
            ]
        ).unique()
        new_parties = book.parties.join(needed, on="party_ref", how="semi").join(
            known_parties, on="party_ref", how="anti"
        )
        chunk_debts = book.debts.join(refs, on="case_ref", how="semi")
        chunk_payments = book.payment_days.join(refs, on="case_ref", how="semi")
        with run.chunk() as conn:
            stamp = pl.lit(run.run_id, dtype=pl.Int64).alias("pulled_run_id")
            insert_frame(conn, parties, new_parties.select(PARTY_COLUMNS).with_columns(stamp))
            insert_frame(conn, cases, chunk.with_columns(stamp))
            insert_pulled_debts(conn, run, chunk_debts)
            insert_frame(conn, payment_days, chunk_payments.select(PAYMENT_COLUMNS))
        known_parties = pl.concat([known_parties, new_parties.select("party_ref")])
        counts["cases_new"] += chunk.height
        counts["debts_new"] += chunk_debts.height
        counts["parties_new"] += new_parties.height
        progress.advance("pull: loading cases", chunk.height)
    progress.finish("pull: loading cases")
    return counts


def _refresh_cases(
    run: Run, book: NormalisedBook, refreshed: pl.DataFrame, progress: Progress
) -> dict[str, int]:
    """Bring undecided cases whose source changed up to date (nothing has been done yet)."""
    counts = {"cases_refreshed": 0, "debts_refreshed": 0}
    if refreshed.height == 0:
        return counts
    progress.start("pull: refreshing cases", refreshed.height)
    settable = [c for c in CASE_COLUMNS if c != "case_ref"]
    for chunk in _chunks(refreshed, run.ctx.settings.chunk_size):
        refs = chunk.select("case_ref")
        with run.chunk() as conn:
            stored = _existing_debts_for(conn, refs)
            source = book.debts.join(refs, on="case_ref", how="semi")
            both = source.join(stored, on=["case_ref", "creditor"], how="left")
            params = driver_frame(conn, cases, chunk.select(*settable, "case_ref")).with_columns(
                pl.lit(run.run_id, dtype=pl.Int64).alias("pulled_run_id")
            )
            execute_many(
                conn,
                "UPDATE cases SET "
                + ", ".join(f"{c} = ?" for c in settable)
                + " WHERE case_ref = ?",
                list(params.select(*settable, "case_ref").iter_rows()),
            )
            conn.execute(payment_days.delete().where(payment_days.c.case_ref.in_(_refs(refs))))
            insert_frame(
                conn,
                payment_days,
                book.payment_days.join(refs, on="case_ref", how="semi").select(PAYMENT_COLUMNS),
            )
            changed = both.filter(
                pl.col("debt_id").is_not_null()
                & (pl.col("balance_pence") != pl.col("opening_pence"))
            )
            refresh_pulled_debts(conn, run, changed)
            insert_pulled_debts(
                conn, run, both.filter(pl.col("debt_id").is_null()).select(source.columns)
            )
        counts["cases_refreshed"] += chunk.height
        counts["debts_refreshed"] += changed.height
        progress.advance("pull: refreshing cases", chunk.height)
    progress.finish("pull: refreshing cases")
    return counts


def _refs(refs: pl.DataFrame) -> list[str]:
    return refs["case_ref"].to_list()


def _existing_debts_for(conn: Connection, refs: pl.DataFrame) -> pl.DataFrame:
    return _frame(
        conn,
        select(debts.c.debt_id, debts.c.case_ref, debts.c.creditor, debts.c.opening_pence).where(
            debts.c.case_ref.in_(_refs(refs))
        ),
        {
            "debt_id": pl.Int64,
            "case_ref": pl.String,
            "creditor": pl.String,
            "opening_pence": pl.Int64,
        },
    )


def _record_balance_drift(
    run: Run, book: NormalisedBook, system: str
) -> tuple[int, list[dict[str, Any]]]:
    """For decided debts, note a source balance that differs from the last one seen."""
    with run.ctx.engine.connect() as conn:
        stored = _existing_debts(conn, system).filter(pl.col("state") != DebtState.PULLED.value)
    moved = stored.join(
        book.debts.select("case_ref", "creditor", "balance_pence"),
        on=["case_ref", "creditor"],
        how="inner",
    ).filter(pl.col("balance_pence") != pl.col("stored_source_pence"))
    if moved.height:
        with run.chunk() as conn:
            record_source_drift(conn, run, moved)
    listing = moved.select(
        "case_ref",
        "creditor",
        pl.col("opening_pence").alias("loaded_pence"),
        pl.col("balance_pence").alias("source_pence"),
    )
    return moved.height, listing.head(100).to_dicts()


def _update_parties(run: Run, changed: pl.DataFrame) -> int:
    """Take corrected party details (e.g. a traced address) from the source."""
    if changed.height == 0:
        return 0
    settable = [c for c in PARTY_COLUMNS if c != "party_ref"]
    for chunk in _chunks(changed, run.ctx.settings.chunk_size):
        with run.chunk() as conn:
            params = driver_frame(conn, parties, chunk.select(*settable, "party_ref"))
            execute_many(
                conn,
                "UPDATE parties SET "
                + ", ".join(f"{c} = ?" for c in settable)
                + " WHERE party_ref = ?",
                list(params.iter_rows()),
            )
            events.record_frame(
                conn,
                run,
                EventType.PARTY_UPDATED,
                chunk.select(pl.concat_str(pl.lit("party:"), "party_ref").alias("entity")),
            )
    return changed.height


def _sync_quarantine(run: Run, items: pl.DataFrame, system: str) -> dict[str, int]:
    """Hold what the source holds as dirty now; release what was fixed at source."""
    with run.ctx.engine.connect() as conn:
        stored = _existing_quarantine(conn).filter(pl.col("source_system") == system)
    key = ["source_system", "case_ref", "item_kind"]
    fresh = items.join(stored, on=key, how="anti")
    still = items.join(stored, on=key, how="inner")
    released = stored.filter(pl.col("status") == QuarantineStatus.HELD.value).join(
        items, on=key, how="anti"
    )
    # what a held item records, whether new this pull or still held from an earlier one
    held: list[pl.Expr | str] = [
        pl.lit(QuarantineStatus.HELD.value).alias("status"),
        "pwc_pence",
        "sos_pence",
        "unreadable_pence",
        "row_count",
        "reasons",
        pl.lit(run.run_id, dtype=pl.Int64).alias("last_run_id"),
    ]
    with run.chunk() as conn:
        insert_frame(
            conn,
            quarantine,
            fresh.select(*key, *held, pl.lit(run.run_id, dtype=pl.Int64).alias("first_run_id")),
        )
        # one bulk update, not a statement per held item (tens of thousands at scale)
        update_from_frame(
            conn,
            quarantine,
            still.select(
                *held, pl.lit(None, dtype=pl.Int64).alias("released_run_id"), "quarantine_id"
            ),
            key="quarantine_id",
        )
        if released.height:
            conn.execute(
                update(quarantine)
                .where(quarantine.c.quarantine_id.in_(released["quarantine_id"].to_list()))
                .values(status=QuarantineStatus.RELEASED.value, released_run_id=run.run_id)
            )
        events.record_frame(
            conn,
            run,
            EventType.CASE_QUARANTINED,
            fresh.select(
                "case_ref",
                pl.struct(
                    "source_system",
                    "item_kind",
                    pl.col("reasons").list.eval(pl.element().struct.field("code")).alias("codes"),
                ).alias("detail"),
            ),
        )
        events.record_frame(
            conn,
            run,
            EventType.CASE_RELEASED,
            released.select("case_ref", pl.struct("source_system", "item_kind").alias("detail")),
        )
    return {
        "quarantine_new": fresh.height,
        "quarantine_still_held": still.height,
        "quarantine_released": released.height,
    }


# --- reconciliation -------------------------------------------------------------------


def _sum_by(frame: pl.DataFrame, value: str) -> dict[tuple[str, str], int]:
    totals = frame.group_by("source_system", "creditor").agg(pl.col(value).sum())
    return {(s, c): int(v) for s, c, v in totals.iter_rows()}


def _pence_by_creditor(items: pl.DataFrame) -> pl.DataFrame:
    """Quarantine-shaped rows (pwc_pence, sos_pence, unreadable_pence) as one row per
    creditor bucket, column ``p``."""
    return pl.concat(
        [
            items.select(
                "source_system",
                pl.lit(cr).alias("creditor"),
                pl.col(f"{cr.lower()}_pence").alias("p"),
            )
            for cr in CREDITOR_BUCKETS
        ]
    )


def reconcile_pull(
    book: NormalisedBook, plan: PullPlan, conn: Connection, system: str
) -> SystemReconciliation:
    """Source control totals against loaded and quarantined pence for ``system``.

    "Loaded" is what the source says now about every case the store holds (so it balances
    exactly); "drift" is what the store holds minus that, for cases decided before a change.
    """
    loaded = _sum_by(book.debts, "balance_pence")
    for key, value in _sum_by(_pence_by_creditor(plan.invalid_loaded), "p").items():
        loaded[key] = loaded.get(key, 0) + value
    held = _sum_by(_pence_by_creditor(plan.quarantine_items), "p")
    stored = {
        creditor: int(pence)
        for creditor, pence in conn.execute(
            select(debts.c.creditor, func.sum(debts.c.opening_pence))
            .where(debts.c.source_system == system)
            .group_by(debts.c.creditor)
        )
    }
    stored_cases = conn.execute(
        select(func.count()).select_from(cases).where(cases.c.source_system == system)
    ).scalar_one()
    control = book.control.filter(pl.col("source_system") == system).row(0, named=True)
    return SystemReconciliation(
        cases_source=int(control["case_count"]),
        cases_loaded=int(stored_cases),
        cases_quarantined=plan.quarantine_items.filter(pl.col("item_kind") == "case").height,
        creditors={
            cr: CreditorReconciliation(
                source_pence=int(control[f"{cr.lower()}_arrears_pence"]),
                loaded_at_source_pence=loaded.get((system, cr), 0),
                quarantined_pence=held.get((system, cr), 0),
                drift_pence=stored.get(cr, 0) - loaded.get((system, cr), 0),
            )
            for cr in CREDITOR_BUCKETS
        },
    )


# --- the stage ------------------------------------------------------------------------


def _pull_system(
    run: Run, source_url: str, system: str, progress: Progress
) -> tuple[SystemReconciliation, dict[str, int], list[dict[str, Any]]]:
    """Read, normalise, write and reconcile one legacy system (cases never span systems,
    and one system at a time keeps the pull's memory to about half). Each system's steps
    have their own progress bars ("pull CS2: loading cases")."""
    progress = Relabelled(progress, "pull:", f"pull {system}:")
    # the rows are counted first, so the bar has a true total and an ETA
    book = normalise(
        read_legacy(source_url, systems=[system], progress=progress, task="pull: reading")
    )
    progress.finish("pull: reading")
    with run.ctx.engine.connect() as conn:
        plan = plan_pull(book, conn, system)
    counts: dict[str, int] = {}
    counts |= _insert_new_cases(run, book, plan, progress)
    counts |= _refresh_cases(run, book, plan.refreshed_cases, progress)
    drift_debts, drift_listing = _record_balance_drift(run, book, system)
    counts["parties_updated"] = _update_parties(run, plan.changed_parties)
    counts |= _sync_quarantine(run, plan.quarantine_items, system)
    counts |= {
        "debts_drifted": drift_debts,
        "cases_drifted": plan.drifted_cases.height,
        "cases_invalid_at_source": plan.invalid_loaded.height,
        "cases_missing_at_source": plan.missing_at_source.height,
    }
    with run.ctx.engine.connect() as conn:
        reconciliation = reconcile_pull(book, plan, conn, system)
    return reconciliation, counts, drift_listing


def pull(ctx: Context, source_url: str, *, progress: Progress = NO_PROGRESS) -> PullResult:
    """Pull the legacy replica at ``source_url`` into the working store.

    Raises ``Unbalanced`` (carrying the result) when source != loaded + quarantined for any
    system and creditor; the run is then recorded as ``unbalanced``, not complete.
    """
    with stage_run(ctx, "pull", {"source": redacted(source_url)}, claims=[PULL_LEASE]) as run:
        systems: dict[str, SystemReconciliation] = {}
        counts: dict[str, int] = {}
        drift: list[dict[str, Any]] = []
        for system in SYSTEMS:
            systems[system], system_counts, system_drift = _pull_system(
                run, source_url, system, progress
            )
            for key, value in system_counts.items():
                counts[key] = counts.get(key, 0) + value
            drift += system_drift
        result = PullResult(run_id=run.run_id, systems=systems, counts=counts, drift=drift)
        run.counts.update(counts)
        run.control_totals.update({k: v.to_json() for k, v in systems.items()})
        if not result.balanced:
            raise Unbalanced(_unbalanced_message(result), result=result)
        log.info("pull run %s balanced", run.run_id)
        return result


def _unbalanced_message(result: PullResult) -> str:
    parts = [
        f"{system} {creditor}: {c.equation.why_not()}"
        for system, s in result.systems.items()
        for creditor, c in s.creditors.items()
        if not c.balanced
    ]
    return (
        "the pull does not reconcile to the legacy control totals, so it is not complete: "
        + "; ".join(parts)
        + ". Check extract_control against the replica, then pull again."
    )
