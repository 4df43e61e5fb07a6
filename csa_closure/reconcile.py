"""Reconciliation: every penny of the legacy book, accounted for at any moment.

Per system and creditor, the equations of :mod:`csa_closure.domain.reconciliation` must hold
exactly: source + drift = loaded + quarantined; loaded = nil + written off + transferred +
open; and written off (net of reversals, from the ledger) = pence of debts in state
``written_off``.

``reconcile`` reads their figures from the store at any time; reports print them and stages'
tests assert them after every command.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.codes import LedgerEntryType
from csa_closure.domain.reconciliation import (
    STATEMENTS,
    Equation,
    book_equation,
    ledger_equation,
    open_pence,
    source_equation,
)
from csa_closure.domain.states import DebtState, QuarantineStatus, RunStatus
from csa_closure.legacy.contract import CREDITOR_BUCKETS
from csa_closure.store.schema import debts, ledger_entries, quarantine, stage_runs

SYSTEMS = ("CSCS", "CS2")
# the creditors, and the bucket of source rows whose creditor cannot be read (held, never
# loaded): every pence of the legacy tables is in one of them


@dataclass
class CreditorBalance:
    source_pence: int  # legacy control total at the latest completed pull
    drift_pence: int  # store minus source, for debts decided before a source change
    quarantined_pence: int
    loaded_pence: int
    nil_pence: int
    written_off_pence: int  # net of reversals
    transferred_pence: int
    open_pence: int
    reversed_pence: int  # write-offs undone by mirror entries (shown, already netted)
    ledger_state_pence: int  # pence of debts in state written_off
    debts_loaded: int
    debts_closed: int

    def equations(self) -> tuple[Equation, Equation, Equation]:
        """The source, book and ledger equations, with these figures."""
        return (
            source_equation(
                source=self.source_pence,
                drift=self.drift_pence,
                loaded=self.loaded_pence,
                quarantined=self.quarantined_pence,
            ),
            book_equation(
                loaded=self.loaded_pence,
                nil=self.nil_pence,
                written_off=self.written_off_pence,
                transferred=self.transferred_pence,
                open_=self.open_pence,
            ),
            ledger_equation(
                ledger_written_off=self.written_off_pence,
                written_off_debts=self.ledger_state_pence,
            ),
        )

    @property
    def source_balanced(self) -> bool:
        return self.equations()[0].holds

    @property
    def book_balanced(self) -> bool:
        return self.equations()[1].holds

    @property
    def ledger_balanced(self) -> bool:
        return self.equations()[2].holds

    @property
    def balanced(self) -> bool:
        return all(equation.holds for equation in self.equations())

    def to_json(self) -> dict[str, Any]:
        return {
            "source_pence": self.source_pence,
            "drift_pence": self.drift_pence,
            "quarantined_pence": self.quarantined_pence,
            "loaded_pence": self.loaded_pence,
            "nil_pence": self.nil_pence,
            "written_off_pence": self.written_off_pence,
            "transferred_pence": self.transferred_pence,
            "open_pence": self.open_pence,
            "reversed_pence": self.reversed_pence,
            "debts_loaded": self.debts_loaded,
            "debts_closed": self.debts_closed,
            "source_balanced": self.source_balanced,
            "book_balanced": self.book_balanced,
            "ledger_balanced": self.ledger_balanced,
            "balanced": self.balanced,
        }


@dataclass
class Reconciliation:
    pull_run_id: int | None
    systems: dict[str, dict[str, CreditorBalance]]

    @property
    def balanced(self) -> bool:
        return self.pull_run_id is not None and all(
            c.balanced for s in self.systems.values() for c in s.values()
        )

    def creditor_totals(self) -> dict[str, dict[str, Any]]:
        """Both systems added together, per creditor, with whether they balance."""
        totals: dict[str, dict[str, Any]] = {}
        for creditor in CREDITOR_BUCKETS:
            parts = [self.systems[s][creditor] for s in SYSTEMS]
            summed: dict[str, Any] = {
                f.name: sum(getattr(p, f.name) for p in parts) for f in fields(CreditorBalance)
            }
            summed["balanced"] = all(p.balanced for p in parts)
            totals[creditor] = summed
        return totals

    def to_json(self) -> dict[str, Any]:
        return {
            "balanced": self.balanced,
            "pull_run_id": self.pull_run_id,
            # both systems together, per creditor
            **self.creditor_totals(),
            "systems": {
                system: {cr: c.to_json() for cr, c in creditors.items()}
                for system, creditors in self.systems.items()
            },
        }


def _latest_completed_pull(conn: Connection) -> tuple[int | None, dict[str, Any]]:
    row = conn.execute(
        select(stage_runs.c.run_id, stage_runs.c.control_totals)
        .where(stage_runs.c.stage == "pull", stage_runs.c.status == RunStatus.COMPLETED.value)
        .order_by(stage_runs.c.run_id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, {}
    return int(row.run_id), dict(row.control_totals or {})


def _by_key(conn: Connection, statement: Any) -> dict[tuple[str, str], tuple[int, ...]]:
    return {(r[0], r[1]): tuple(int(v or 0) for v in r[2:]) for r in conn.execute(statement)}


def reconcile_conn(conn: Connection) -> Reconciliation:
    pull_run_id, control = _latest_completed_pull(conn)
    state = debts.c.state
    pence = debts.c.opening_pence

    def pence_in(*states: DebtState) -> Any:
        return func.sum(case((state.in_([s.value for s in states]), pence), else_=0))

    closed = (DebtState.CLOSED, DebtState.WRITTEN_OFF, DebtState.TRANSFERRED)
    book = _by_key(
        conn,
        select(
            debts.c.source_system,
            debts.c.creditor,
            func.sum(pence),
            pence_in(DebtState.CLOSED),
            pence_in(DebtState.WRITTEN_OFF),
            pence_in(DebtState.TRANSFERRED),
            func.count(),
            func.sum(case((state.in_([s.value for s in closed]), 1), else_=0)),
        ).group_by(debts.c.source_system, debts.c.creditor),
    )
    ledger = _by_key(
        conn,
        select(
            ledger_entries.c.source_system,
            ledger_entries.c.creditor,
            func.sum(ledger_entries.c.amount_pence),
            func.sum(
                case(
                    (
                        ledger_entries.c.entry_type == LedgerEntryType.REVERSAL.value,
                        -ledger_entries.c.amount_pence,
                    ),
                    else_=0,
                )
            ),
        ).group_by(ledger_entries.c.source_system, ledger_entries.c.creditor),
    )
    held = {
        r[0]: (int(r[1] or 0), int(r[2] or 0), int(r[3] or 0))
        for r in conn.execute(
            select(
                quarantine.c.source_system,
                func.sum(quarantine.c.pwc_pence),
                func.sum(quarantine.c.sos_pence),
                func.sum(quarantine.c.unreadable_pence),
            )
            .where(quarantine.c.status == QuarantineStatus.HELD.value)
            .group_by(quarantine.c.source_system)
        )
    }
    systems: dict[str, dict[str, CreditorBalance]] = {}
    for system in SYSTEMS:
        systems[system] = {}
        for i, creditor in enumerate(CREDITOR_BUCKETS):
            loaded, nil, written_state, transferred, count, closed_count = book.get(
                (system, creditor), (0, 0, 0, 0, 0, 0)
            )
            written_off, reversed_ = ledger.get((system, creditor), (0, 0))
            at_pull = (control.get(system) or {}).get(creditor) or {}
            systems[system][creditor] = CreditorBalance(
                source_pence=int(at_pull.get("source_pence", 0)),
                drift_pence=int(at_pull.get("drift_pence", 0)),
                quarantined_pence=held.get(system, (0, 0, 0))[i],
                loaded_pence=loaded,
                nil_pence=nil,
                written_off_pence=written_off,
                transferred_pence=transferred,
                open_pence=open_pence(loaded, nil, written_state, transferred),
                reversed_pence=reversed_,
                ledger_state_pence=written_state,
                debts_loaded=count,
                debts_closed=closed_count,
            )
    return Reconciliation(pull_run_id=pull_run_id, systems=systems)


def reconcile(ctx: Context) -> Reconciliation:
    """The reconciliation of the whole book as the store stands now."""
    with ctx.engine.connect() as conn:
        return reconcile_conn(conn)


# --- the report: the reconciliation with each equation checked and every failure named ---

EQUATIONS = tuple(STATEMENTS.items())


@dataclass(frozen=True)
class EquationFailure:
    system: str
    creditor: str
    equation: str  # source|book|ledger
    left_pence: int
    right_pence: int
    why: str  # both sides, term by term (Equation.why_not)

    @property
    def text(self) -> str:
        return f"{self.system} {self.creditor}: {self.why}"


def _failures(system: str, creditor: str, c: CreditorBalance) -> list[EquationFailure]:
    return [
        EquationFailure(system, creditor, e.name, e.left_pence, e.right_pence, why)
        for e in c.equations()
        if (why := e.why_not()) is not None
    ]


@dataclass
class ReconcileReport:
    reconciliation: Reconciliation

    @property
    def balanced(self) -> bool:
        return self.reconciliation.balanced

    @property
    def failures(self) -> list[EquationFailure]:
        return [
            f
            for system, creditors in self.reconciliation.systems.items()
            for creditor, c in creditors.items()
            for f in _failures(system, creditor, c)
        ]

    @property
    def problems(self) -> list[str]:
        out = [f.text for f in self.failures]
        if self.reconciliation.pull_run_id is None:
            out.insert(0, "no completed pull: there is no source control total to reconcile to")
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One row per system and creditor, then one per creditor for both systems."""
        rec = self.reconciliation
        rows = [
            {"system": system, "creditor": creditor, **c.to_json()}
            for system, creditors in rec.systems.items()
            for creditor, c in creditors.items()
        ]
        for creditor, totals in rec.creditor_totals().items():
            rows.append(
                {
                    "system": "ALL",
                    "creditor": creditor,
                    **{k: v for k, v in totals.items() if k != "ledger_state_pence"},
                }
            )
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            **self.reconciliation.to_json(),
            "equations": [statement for _, statement in EQUATIONS],
            "problems": self.problems,
        }


def reconcile_report(ctx: Context) -> ReconcileReport:
    return ReconcileReport(reconcile(ctx))
