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
from csa_closure.reconcile import ReconcileReport, reconcile_conn
from csa_closure.serialise import JsonFields
from csa_closure.stages.archive import compare_with_store
from csa_closure.store.schema import archives, debts, letters, quarantine

DEFAULT_EXAMPLES = 10


@dataclass(frozen=True)
class Gate(JsonFields):
    name: str
    passed: bool
    blocking_count: int
    examples: list[str]
    detail: str


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


def _counted_by(conn: Connection, column: Any, where: Any) -> dict[str, int]:
    """How many rows ``where`` selects, per value of ``column``."""
    statement = select(column, func.count()).where(where).group_by(column)
    return {str(value): int(n) for value, n in conn.execute(statement)}


def _blocking_gate(
    conn: Connection,
    name: str,
    blocking: int,
    case_ref: Any,
    where: Any,
    examples: int,
    *,
    passed: str,
    failed: str,
) -> Gate:
    """A gate that passes when no row blocks it; ``where`` selects the blocking rows, whose
    first case references are the examples."""
    refs = _examples(conn, case_ref, where, examples)
    return Gate(name, blocking == 0, blocking, refs, failed if blocking else passed)


def _open_debts(conn: Connection, examples: int) -> Gate:
    open_ = debts.c.state.not_in(sorted(s.value for s in CLOSED_STATES))
    by_state = _counted_by(conn, debts.c.state, open_)
    loaded = int(conn.execute(select(func.count()).select_from(debts)).scalar_one())
    blocking = sum(by_state.values())
    return _blocking_gate(
        conn,
        "debts_closed",
        blocking,
        debts.c.case_ref,
        open_,
        examples,
        passed=f"all {loaded:,} debts closed",
        failed=f"{blocking:,} of {loaded:,} debts not closed: {_breakdown(by_state)}",
    )


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
    by_status = _counted_by(conn, letters.c.status, pending)
    blocking = sum(by_status.values())
    return _blocking_gate(
        conn,
        "letters_final",
        blocking,
        letters.c.case_ref,
        pending,
        examples,
        passed="every letter is in a final status",
        failed=f"{blocking:,} letters not final: {_breakdown(by_status)}",
    )


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
    return _blocking_gate(
        conn,
        "quarantine_resolved",
        blocking,
        quarantine.c.case_ref,
        held,
        examples,
        passed="nothing held in quarantine",
        failed=f"{blocking:,} item(s) still held, {pence:,} pence: fix at source and pull again",
    )


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
