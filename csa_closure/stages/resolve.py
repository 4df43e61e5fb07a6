"""Resolve: take every debt that is ready on the as-of date D to its next state, in three steps.

1. **Expiry.** A debt ``awaiting_response`` whose response deadline is before D (the deadline
   day itself is still in time) and that has no response goes to ``write_off_pending``,
   outcome ``write_off_notice``, reason ``NO_RESPONSE``. Debts flagged for a person
   (``needs_caseworker`` or ``needs_tracing``: the final-chance letter may not have reached
   the parent) are held back and counted; a caseworker settles them (``review decide``).
2. **Collectability.** Every ``collect_requested`` debt goes through the rule set's
   collectability table (policy.md: NRP deceased, untraceable, expected yield minus cost at
   least zero). The decision is recorded like any other (outcome, reason, rule id, rule-set
   hash, run, actor, D) and places the debt: ``transfer`` -> ``transfer_ready``,
   ``write_off_notice`` -> ``write_off_pending``, ``manual_review`` -> ``review``.
3. **Write-off.** A ``write_off_pending`` debt is written off: a ``write_off_silent`` one at
   once; any other only once every parent who must be told has been: a ``write_off_notice``
   letter to the NRP, and for a PWC debt to the PWC too, with a settled status
   (``SETTLED_LETTER_STATUSES``) dated on or before D. A parent deceased on or before D is
   not written to and not waited for. The ledger entry and the move to ``written_off`` are
   one transaction.

Each step works in chunks of ``settings.chunk_size`` debts in debt order, each chunk one
transaction under the ``stage:resolve`` lease. A killed run is simply run again (after its
lease expires): every step selects by state, so what was committed is not redone and the
rest is done exactly as the first run would have done it. ``dry_run`` plans the same three
steps (the write-off step seeing the debts the first two would make pending) and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.notice import owed_write_off_notice
from csa_closure.domain.states import (
    SETTLED_LETTER_STATUSES,
    STATE_FOR_OUTCOME,
    DebtState,
    Outcome,
)
from csa_closure.errors import Unbalanced
from csa_closure.policy import RuleSet, collectability, compute_features, load_rule_set
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.reconcile import reconcile_conn
from csa_closure.serialise import JsonFields
from csa_closure.stages.checks import BookCheck, book_check
from csa_closure.stages.facts import debt_facts
from csa_closure.stages.ledger import record_write_offs
from csa_closure.stages.responses import REASON_NO_RESPONSE
from csa_closure.store.debts import DECISION_COLUMNS, decision_stamp, move_debts
from csa_closure.store.dialect import driver_value, read_frame
from csa_closure.store.rule_sets import register_rule_set
from csa_closure.store.runs import Run, stage_run

RESOLVE_LEASE = "stage:resolve"
RULE_NO_RESPONSE = "final_chance.no_response"
WRITE_OFF_NOTICE_PURPOSE = "write_off_notice"


@dataclass
class Tally(JsonFields):
    debts: int = 0
    pence: int = 0

    @classmethod
    def of(cls, frame: pl.DataFrame, pence: str = "opening_pence") -> Tally:
        return cls(debts=frame.height, pence=int(frame.get_column(pence).sum() or 0))


@dataclass
class ResolveResult:
    """What a resolve did (or, dry run, would do). JSON keys: see runbooks/05."""

    run_id: int | None
    dry_run: bool
    as_of: date
    ruleset_name: str
    ruleset_hash: str
    expired: Tally = field(default_factory=Tally)
    expiry_held: Tally = field(default_factory=Tally)  # past the deadline, flagged for a person
    collectability: list[dict[str, Any]] = field(default_factory=list)
    written_off: Tally = field(default_factory=Tally)
    written_off_by_reason: list[dict[str, Any]] = field(default_factory=list)
    waiting_for_notices: Tally = field(default_factory=Tally)
    book: BookCheck | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "as_of": self.as_of.isoformat(),
            "ruleset_name": self.ruleset_name,
            "ruleset_hash": self.ruleset_hash,
            "expired": self.expired.to_json(),
            "expiry_held": self.expiry_held.to_json(),
            "collectability": self.collectability,
            "written_off": self.written_off.to_json(),
            "written_off_by_reason": self.written_off_by_reason,
            "waiting_for_notices": self.waiting_for_notices.to_json(),
            "book": self.book.to_json() if self.book else None,
        }


# --- 1. expiry ----------------------------------------------------------------------------

_EXPIRY_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "opening_pence": pl.Int64(),
    "response_deadline": pl.Date(),
    "flagged": pl.Int64(),
}


def expiry_candidates(conn: Connection, as_of: date) -> pl.DataFrame:
    """Debts awaiting a response whose deadline is before ``as_of``, none received."""
    sql = (
        "SELECT debt_id, case_ref, opening_pence, response_deadline, "
        "CASE WHEN needs_caseworker OR needs_tracing THEN 1 ELSE 0 END AS flagged "
        "FROM debts WHERE state = ? AND response IS NULL AND response_deadline < ? "
        "ORDER BY debt_id"
    )
    frame = read_frame(
        conn, (sql, [DebtState.AWAITING_RESPONSE.value, driver_value(conn, as_of)]), _EXPIRY_SCHEMA
    )
    return frame.with_columns(pl.col("flagged").cast(pl.Boolean))


def _expiry_moves(run: Run, chunk: pl.DataFrame) -> pl.DataFrame:
    return chunk.with_columns(
        pl.lit(DebtState.AWAITING_RESPONSE.value).alias("from_state"),
        pl.lit(DebtState.WRITE_OFF_PENDING.value).alias("to_state"),
        pl.lit(Outcome.WRITE_OFF_NOTICE.value).alias("outcome"),
        pl.lit(REASON_NO_RESPONSE).alias("reason"),
        pl.lit(RULE_NO_RESPONSE).alias("rule_id"),
        *decision_stamp(run),
        pl.struct(pl.col("response_deadline").dt.to_string("%Y-%m-%d")).alias("detail"),
    )


# --- 2. collectability ----------------------------------------------------------------------


_PLANNED_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "opening_pence": pl.Int64(),
    "expected_yield_pence": pl.Int64(),
    "collection_cost_pence": pl.Int64(),
    "outcome": pl.String(),
    "reason": pl.String(),
    "rule_id": pl.String(),
    "to_state": pl.String(),
}


def plan_collectability(conn: Connection, as_of: date, rule_set: RuleSet) -> pl.DataFrame:
    """Every ``collect_requested`` debt with its collectability decision and target state."""
    facts = debt_facts(conn, as_of, states=[DebtState.COLLECT_REQUESTED.value])
    if facts.height == 0:
        return pl.DataFrame(schema=_PLANNED_SCHEMA)
    features = compute_features(facts, as_of, rule_set)
    decisions = collectability(rule_set, features)
    to_state = pl.col("outcome").replace_strict(
        {o.value: s.value for o, s in STATE_FOR_OUTCOME.items()}, return_dtype=pl.String
    )
    return (
        features.select(
            "debt_id",
            "case_ref",
            pl.col("balance_pence").alias("opening_pence"),
            "expected_yield_pence",
            "collection_cost_pence",
        )
        .join(decisions, on="debt_id", how="inner", maintain_order="left")
        .with_columns(to_state.alias("to_state"))
        .sort("debt_id")
    )


def _collectability_moves(run: Run, chunk: pl.DataFrame, ruleset_hash: str) -> pl.DataFrame:
    return chunk.with_columns(
        pl.lit(DebtState.COLLECT_REQUESTED.value).alias("from_state"),
        pl.lit(ruleset_hash).alias("ruleset_hash"),
        *decision_stamp(run),
        pl.struct(
            "outcome",
            "reason",
            "rule_id",
            pl.lit(ruleset_hash).alias("ruleset_hash"),
            pl.col("opening_pence").alias("balance_pence"),
            "expected_yield_pence",
            "collection_cost_pence",
        ).alias("detail"),
    )


def _collectability_summary(planned: pl.DataFrame) -> list[dict[str, Any]]:
    if planned.height == 0:
        return []
    return (
        planned.group_by("outcome", "reason", "rule_id", "to_state")
        .agg(pl.len().alias("debts"), pl.col("opening_pence").sum().alias("pence"))
        .sort("rule_id", "outcome")
        .to_dicts()
    )


# --- 3. write-off ---------------------------------------------------------------------------

_WRITE_OFF_SQL = """
SELECT d.debt_id, d.case_ref, d.source_system, d.creditor, d.opening_pence, d.state,
       d.outcome, d.reason, d.rule_id, d.ruleset_hash,
       pwc.deceased_on AS pwc_deceased_on, nrp.deceased_on AS nrp_deceased_on
FROM debts d
JOIN cases c ON c.case_ref = d.case_ref
JOIN parties pwc ON pwc.party_ref = c.pwc_party_ref
JOIN parties nrp ON nrp.party_ref = c.nrp_party_ref
WHERE d.state IN ({states})
ORDER BY d.debt_id
"""
_WRITE_OFF_SCHEMA: dict[str, pl.DataType] = {
    "debt_id": pl.Int64(),
    "case_ref": pl.String(),
    "source_system": pl.String(),
    "creditor": pl.String(),
    "opening_pence": pl.Int64(),
    "state": pl.String(),
    "outcome": pl.String(),
    "reason": pl.String(),
    "rule_id": pl.String(),
    "ruleset_hash": pl.String(),
    "pwc_deceased_on": pl.Date(),
    "nrp_deceased_on": pl.Date(),
}
_NOTICES_SQL = """
SELECT l.debt_id, l.recipient
FROM letters l JOIN debts d ON d.debt_id = l.debt_id
WHERE d.state IN ({states}) AND l.purpose = ? AND l.status IN ({statuses})
  AND (l.letter_date IS NULL OR l.letter_date <= ?)
  -- a notice the letters stage cancelled as no longer due was never sent: the parent has
  -- not been told, and the stage builds it again when it is due
  AND NOT (l.status = 'cancelled' AND COALESCE(l.failure_reason, '') LIKE 'NOT_DUE:%')
"""


def _marks(values: list[Any]) -> str:
    return ", ".join("?" for _ in values)


def write_off_candidates(
    conn: Connection, as_of: date, states: list[str] | None = None
) -> pl.DataFrame:
    """Debts in ``states`` (default: write_off_pending) with the parents' dates of death and
    whether each parent's write-off notice is settled (``pwc_told``, ``nrp_told``)."""
    states = states or [DebtState.WRITE_OFF_PENDING.value]
    frame = read_frame(
        conn, (_WRITE_OFF_SQL.format(states=_marks(states)), states), _WRITE_OFF_SCHEMA
    )
    statuses = sorted(s.value for s in SETTLED_LETTER_STATUSES)
    notices = read_frame(
        conn,
        (
            _NOTICES_SQL.format(states=_marks(states), statuses=_marks(statuses)),
            [*states, WRITE_OFF_NOTICE_PURPOSE, *statuses, driver_value(conn, as_of)],
        ),
        {"debt_id": pl.Int64(), "recipient": pl.String()},
    )
    told = notices.group_by("debt_id").agg(
        (pl.col("recipient") == "PWC").any().alias("pwc_told"),
        (pl.col("recipient") == "NRP").any().alias("nrp_told"),
    )
    return frame.join(told, on="debt_id", how="left", maintain_order="left").with_columns(
        pl.col("pwc_told").fill_null(False), pl.col("nrp_told").fill_null(False)
    )


def ready_to_write_off(as_of: date) -> pl.Expr:
    """True for a pending debt that may be written off on ``as_of`` (see the module doc)."""

    # the rule the letters stage builds notices by (domain/notice.py); a silent write-off
    # owes nobody a notice
    told = (~owed_write_off_notice("NRP", as_of) | pl.col("nrp_told")) & (
        ~owed_write_off_notice("PWC", as_of) | pl.col("pwc_told")
    )
    # a debt without a reason cannot have a ledger entry: it waits for a caseworker
    return told & pl.col("reason").is_not_null()


def _write_off_moves(chunk: pl.DataFrame) -> pl.DataFrame:
    return chunk.with_columns(
        pl.lit(DebtState.WRITE_OFF_PENDING.value).alias("from_state"),
        pl.lit(DebtState.WRITTEN_OFF.value).alias("to_state"),
        pl.struct(
            pl.col("opening_pence").alias("amount_pence"), "outcome", "reason", "rule_id"
        ).alias("detail"),
    )


def _by_reason(frame: pl.DataFrame) -> list[dict[str, Any]]:
    if frame.height == 0:
        return []
    return (
        frame.group_by("reason")
        .agg(pl.len().alias("debts"), pl.col("opening_pence").sum().alias("pence"))
        .sort("reason")
        .to_dicts()
    )


# --- the stage ------------------------------------------------------------------------------


def _slices(frame: pl.DataFrame, size: int) -> list[pl.DataFrame]:
    return [frame.slice(offset, size) for offset in range(0, frame.height, size)]


def _register_rule_set(conn: Connection, run: Run, rule_set: RuleSet) -> None:
    register_rule_set(
        conn,
        ruleset_hash=rule_set.hash,
        name=rule_set.name,
        canonical=rule_set.canonical_json(),
        first_seen_at=run.ctx.clock(),
        first_run_id=run.run_id,
    )


def _chunked(
    run: Run,
    frame: pl.DataFrame,
    task: str,
    progress: Progress,
    write: Callable[[Connection, pl.DataFrame], None],
) -> None:
    """Call ``write(conn, chunk)`` for each chunk, one transaction each; progress after the
    commit, so whatever watches progress sees only committed work."""
    progress.start(task, frame.height)
    for chunk in _slices(frame, run.ctx.settings.chunk_size):
        with run.chunk() as conn:
            write(conn, chunk)
        progress.advance(task, chunk.height)
    progress.finish(task)


def _dry_run(ctx: Context, rule_set: RuleSet, result: ResolveResult) -> ResolveResult:
    with ctx.engine.connect() as conn:
        expiring = expiry_candidates(conn, ctx.as_of)
        planned = plan_collectability(conn, ctx.as_of, rule_set)
        pending = write_off_candidates(
            conn,
            ctx.as_of,
            [
                DebtState.WRITE_OFF_PENDING.value,
                DebtState.AWAITING_RESPONSE.value,
                DebtState.COLLECT_REQUESTED.value,
            ],
        )
    expired = expiring.filter(~pl.col("flagged"))
    result.expired = Tally.of(expired)
    result.expiry_held = Tally.of(expiring.filter(pl.col("flagged")))
    result.collectability = _collectability_summary(planned)
    # the debts the first two steps would make pending, with the decision they would get
    to_pending = pl.concat(
        [
            expired.select(
                "debt_id",
                pl.lit(Outcome.WRITE_OFF_NOTICE.value).alias("new_outcome"),
                pl.lit(REASON_NO_RESPONSE).alias("new_reason"),
                pl.lit(RULE_NO_RESPONSE).alias("new_rule_id"),
            ),
            planned.filter(pl.col("to_state") == DebtState.WRITE_OFF_PENDING.value).select(
                "debt_id",
                pl.col("outcome").alias("new_outcome"),
                pl.col("reason").alias("new_reason"),
                pl.col("rule_id").alias("new_rule_id"),
            ),
        ]
    )
    pending = (
        pending.join(to_pending, on="debt_id", how="left")
        .filter(
            (pl.col("state") == DebtState.WRITE_OFF_PENDING.value)
            | pl.col("new_outcome").is_not_null()
        )
        .with_columns(
            pl.coalesce("new_outcome", "outcome").alias("outcome"),
            pl.coalesce("new_reason", "reason").alias("reason"),
            pl.coalesce("new_rule_id", "rule_id").alias("rule_id"),
        )
    )
    ready = pending.filter(ready_to_write_off(ctx.as_of))
    result.written_off = Tally.of(ready)
    result.written_off_by_reason = _by_reason(ready)
    result.waiting_for_notices = Tally.of(pending.filter(~ready_to_write_off(ctx.as_of)))
    with ctx.engine.connect() as conn:
        result.book = book_check(reconcile_conn(conn))
    return result


def resolve(
    ctx: Context,
    *,
    rules_dir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    dry_run: bool = False,
    progress: Progress = NO_PROGRESS,
) -> ResolveResult:
    """Resolve every debt ready on ``ctx.as_of`` (the module doc says what that means)."""
    rule_set = load_rule_set(rules_dir, dict(overrides or {}))
    result = ResolveResult(
        run_id=None,
        dry_run=dry_run,
        as_of=ctx.as_of,
        ruleset_name=rule_set.name,
        ruleset_hash=rule_set.hash,
    )
    if dry_run:
        return _dry_run(ctx, rule_set, result)
    parameters = {
        "rules_dir": str(rules_dir) if rules_dir else "(default)",
        "overrides": dict(overrides or {}),
        "ruleset_hash": rule_set.hash,
    }
    with stage_run(ctx, "resolve", parameters, claims=[RESOLVE_LEASE]) as run:
        result.run_id = run.run_id
        _expire(run, result, progress)
        _decide_collectability(run, rule_set, result, progress)
        _write_off(run, result, progress)
        run.counts.update(
            {
                "expired": result.expired.debts,
                "expiry_held": result.expiry_held.debts,
                "collectability_decided": sum(r["debts"] for r in result.collectability),
                "written_off": result.written_off.debts,
                "written_off_pence": result.written_off.pence,
                "waiting_for_notices": result.waiting_for_notices.debts,
            }
        )
        with ctx.engine.connect() as conn:
            result.book = book_check(reconcile_conn(conn))
        if not result.book.balanced:
            raise Unbalanced(
                "after resolve the books do not balance: " + "; ".join(result.book.problems),
                result,
            )
    return result


def _expire(run: Run, result: ResolveResult, progress: Progress) -> None:
    with run.ctx.engine.connect() as conn:
        candidates = expiry_candidates(conn, run.ctx.as_of)
    held = candidates.filter(pl.col("flagged"))
    due = candidates.filter(~pl.col("flagged"))
    result.expiry_held = Tally.of(held)

    def write(conn: Connection, chunk: pl.DataFrame) -> None:
        move_debts(
            conn,
            run,
            _expiry_moves(run, chunk),
            event_type=EventType.DEBT_EXPIRED,
            # the rule-set hash stays the one that opened the final chance (its window)
            set_columns=[c for c in DECISION_COLUMNS if c != "ruleset_hash"],
        )

    _chunked(run, due, "resolve: expiring windows", progress, write)
    result.expired = Tally.of(due)


def _decide_collectability(
    run: Run, rule_set: RuleSet, result: ResolveResult, progress: Progress
) -> None:
    with run.ctx.engine.connect() as conn:
        planned = plan_collectability(conn, run.ctx.as_of, rule_set)
    if planned.height:
        with run.chunk() as conn:
            _register_rule_set(conn, run, rule_set)
    to_review = pl.col("to_state") == DebtState.REVIEW.value

    def write(conn: Connection, chunk: pl.DataFrame) -> None:
        moves = _collectability_moves(run, chunk, rule_set.hash)
        move_debts(
            conn,
            run,
            moves.filter(~to_review),
            event_type=EventType.DEBT_COLLECTABILITY_DECIDED,
            set_columns=DECISION_COLUMNS,
        )
        move_debts(
            conn,
            run,
            moves.filter(to_review).with_columns(pl.col("reason").alias("review_reason")),
            event_type=EventType.DEBT_COLLECTABILITY_DECIDED,
            set_columns=[*DECISION_COLUMNS, "review_reason"],
        )

    _chunked(run, planned, "resolve: collectability", progress, write)
    result.collectability = _collectability_summary(planned)


def _write_off(run: Run, result: ResolveResult, progress: Progress) -> None:
    with run.ctx.engine.connect() as conn:
        pending = write_off_candidates(conn, run.ctx.as_of)
    ready = pending.filter(ready_to_write_off(run.ctx.as_of))
    result.waiting_for_notices = Tally.of(pending.filter(~ready_to_write_off(run.ctx.as_of)))

    def write(conn: Connection, chunk: pl.DataFrame) -> None:
        move_debts(conn, run, _write_off_moves(chunk), event_type=EventType.DEBT_WRITTEN_OFF)
        record_write_offs(conn, run, chunk)

    _chunked(run, ready, "resolve: writing off", progress, write)
    result.written_off = Tally.of(ready)
    result.written_off_by_reason = _by_reason(ready)
