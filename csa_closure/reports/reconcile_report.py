"""The reconciliation report: ``reconcile`` laid out per system and creditor, with each of its
three equations checked and every failing one named with its figures.

The equations themselves live in :mod:`csa_closure.domain.reconciliation`; this module only
presents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csa_closure.context import Context
from csa_closure.domain.reconciliation import STATEMENTS
from csa_closure.reconcile import CreditorBalance, Reconciliation, reconcile

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
