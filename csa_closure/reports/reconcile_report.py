"""The reconciliation report: ``reconcile`` laid out per system and creditor, with each of its
three equations checked and every failing one named with its figures.

The equations themselves live in :mod:`csa_closure.reconcile`; this module only presents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csa_closure.context import Context
from csa_closure.reconcile import CreditorBalance, Reconciliation, reconcile

EQUATIONS = (
    ("source", "source + drift = loaded + quarantined"),
    ("book", "loaded = nil + written off + transferred + open"),
    ("ledger", "written off (ledger, net of reversals) = debts in state written_off"),
)


@dataclass(frozen=True)
class EquationFailure:
    system: str
    creditor: str
    equation: str  # source|book|ledger
    left_pence: int
    right_pence: int

    @property
    def text(self) -> str:
        statement = dict(EQUATIONS)[self.equation]
        return (
            f"{self.system} {self.creditor}: {statement} does not hold: "
            f"{self.left_pence} != {self.right_pence} pence "
            f"(difference {self.left_pence - self.right_pence})"
        )


def _failures(system: str, creditor: str, c: CreditorBalance) -> list[EquationFailure]:
    out = []
    if not c.source_balanced:
        out.append(
            EquationFailure(
                system,
                creditor,
                "source",
                c.source_pence + c.drift_pence,
                c.loaded_pence + c.quarantined_pence,
            )
        )
    if not c.book_balanced:
        out.append(
            EquationFailure(
                system,
                creditor,
                "book",
                c.loaded_pence,
                c.nil_pence + c.written_off_pence + c.transferred_pence + c.open_pence,
            )
        )
    if not c.ledger_balanced:
        out.append(
            EquationFailure(system, creditor, "ledger", c.written_off_pence, c.ledger_state_pence)
        )
    return out


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
