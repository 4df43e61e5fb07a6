"""The decommission gate: may the legacy CSCS and CS2 systems be switched off?

Every gate must pass (policy.md, "After the decision"):

1. ``debts_closed``: every debt is in a closed state: ``closed`` (nil), ``written_off``, or
   ``transferred`` (which a debt only reaches once the CMS acknowledged it ACCEPTED; a debt in
   a package not yet acknowledged is ``transfer_sent`` and blocks).
2. ``reconciliation_balanced``: every penny reconciles to the source control totals: the three
   equations of ``csa_closure.reconcile`` hold for every system and creditor, after a
   completed pull.
3. ``letters_final``: no letter is in a status where something may still happen to it
   (anything outside ``FINAL_LETTER_STATUSES``: pending, sending, unknown, accepted).
4. ``quarantine_resolved``: no quarantined case or orphan row is still held: held pence
   never reached the book, so they are neither written off nor transferred.
5. ``archive_verified``: the latest archive was verified and passed, and the store has not
   changed since it was written: every archived table still has the rows and pence totals
   recorded for it (events are append-only, so no event was recorded after it), and the
   reconciliation is the one archived. A newer, unverified archive blocks even when an older
   one was verified: the latest is the evidence.

Blocking cases are listed by case reference (the first few, with the full count). The check
only reads; it writes nothing, not even a run record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.states import CLOSED_STATES, FINAL_LETTER_STATUSES, QuarantineStatus
from csa_closure.reconcile import reconcile_conn
from csa_closure.reports.reconcile_report import ReconcileReport
from csa_closure.stages.archive import compare_with_store
from csa_closure.store.schema import archives, debts, letters, quarantine

DEFAULT_EXAMPLES = 10


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    blocking_count: int
    examples: list[str]
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "blocking_count": self.blocking_count,
            "examples": self.examples,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DecommissionCheck:
    as_of: date
    gates: list[Gate]

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "as_of": self.as_of, "gates": self.gates}


def _breakdown(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))


def _examples(conn: Connection, case_ref: Any, where: Any, limit: int) -> list[str]:
    """The first ``limit`` case references (in order) of the rows ``where`` selects."""
    statement = select(case_ref).where(where).distinct().order_by(case_ref).limit(limit)
    return [str(ref) for ref in conn.execute(statement).scalars()]


def _open_debts(conn: Connection, examples: int) -> Gate:
    open_ = debts.c.state.not_in(sorted(s.value for s in CLOSED_STATES))
    by_state = {
        str(r[0]): int(r[1])
        for r in conn.execute(
            select(debts.c.state, func.count()).where(open_).group_by(debts.c.state)
        )
    }
    loaded = int(conn.execute(select(func.count()).select_from(debts)).scalar_one())
    blocking = sum(by_state.values())
    refs = _examples(conn, debts.c.case_ref, open_, examples)
    detail = (
        f"all {loaded:,} debts closed"
        if not blocking
        else f"{blocking:,} of {loaded:,} debts not closed: {_breakdown(by_state)}"
    )
    return Gate("debts_closed", blocking == 0, blocking, refs, detail)


def _reconciliation(conn: Connection) -> Gate:
    report = ReconcileReport(reconcile_conn(conn))
    problems = report.problems
    return Gate(
        "reconciliation_balanced",
        report.balanced,
        len(problems),
        [f"{f.system} {f.creditor} {f.equation}" for f in report.failures],
        "balanced to the penny" if report.balanced else "; ".join(problems),
    )


def _letters(conn: Connection, examples: int) -> Gate:
    pending = letters.c.status.not_in(sorted(s.value for s in FINAL_LETTER_STATUSES))
    by_status = {
        str(r[0]): int(r[1])
        for r in conn.execute(
            select(letters.c.status, func.count()).where(pending).group_by(letters.c.status)
        )
    }
    blocking = sum(by_status.values())
    refs = _examples(conn, letters.c.case_ref, pending, examples)
    detail = (
        "every letter is in a final status"
        if not blocking
        else f"{blocking:,} letters not final: {_breakdown(by_status)}"
    )
    return Gate("letters_final", blocking == 0, blocking, refs, detail)


def _quarantine(conn: Connection, examples: int) -> Gate:
    held = quarantine.c.status == QuarantineStatus.HELD.value
    row = conn.execute(
        select(
            func.count(),
            func.coalesce(
                func.sum(
                    quarantine.c.pwc_pence + quarantine.c.sos_pence + quarantine.c.unreadable_pence
                ),
                0,
            ),
        ).where(held)
    ).one()
    blocking, pence = int(row[0]), int(row[1])
    refs = _examples(conn, quarantine.c.case_ref, held, examples)
    detail = (
        "nothing held in quarantine"
        if not blocking
        else f"{blocking:,} item(s) still held, {pence:,} pence: fix at source and pull again"
    )
    return Gate("quarantine_resolved", blocking == 0, blocking, refs, detail)


def _archive(conn: Connection, examples: int) -> Gate:
    name = "archive_verified"
    latest = conn.execute(select(archives).order_by(archives.c.archive_id.desc()).limit(1)).first()
    if latest is None:
        return Gate(name, False, 1, [], "no archive written: run `csa-closure archive --out DIR`")
    label = f"archive {latest.archive_id} ({latest.path})"
    if latest.verified_ok is None:
        return Gate(
            name,
            False,
            1,
            [],
            f"{label} was never verified: run `csa-closure archive verify {latest.path}`",
        )
    if not latest.verified_ok:
        return Gate(
            name,
            False,
            1,
            [],
            f"{label} failed verification at {latest.verified_at:%Y-%m-%d %H:%M:%S} UTC",
        )
    problems = compare_with_store(conn, dict(latest.counts or {})).problems
    if problems:
        files = sorted({p.file for p in problems})
        return Gate(
            name,
            False,
            len(files),
            files[:examples],
            f"the store changed after {label} was written "
            f"({problems[0].file}: {problems[0].problem}); write and verify a new archive",
        )
    return Gate(
        name,
        True,
        0,
        [],
        f"{label} verified at {latest.verified_at:%Y-%m-%d %H:%M:%S} UTC; store unchanged since",
    )


def decommission_check(ctx: Context, *, examples: int = DEFAULT_EXAMPLES) -> DecommissionCheck:
    """Every gate, evaluated on one connection, with up to ``examples`` blocking references."""
    with ctx.engine.connect() as conn:
        gates = [
            _open_debts(conn, examples),
            _reconciliation(conn),
            _letters(conn, examples),
            _quarantine(conn, examples),
            _archive(conn, examples),
        ]
    return DecommissionCheck(as_of=ctx.as_of, gates=gates)
