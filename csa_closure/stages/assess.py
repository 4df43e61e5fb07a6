"""Assess: decide every pulled debt by the approved rules, for the as-of date.

The rules are evaluated for the whole population at once (vectorised polars); the decisions
are then written in chunks, each chunk one transaction that moves the debts and writes one
``debt.decided`` event per debt (compare-and-set, so nothing is decided twice). A killed run
is re-run and continues with the debts still ``pulled``.

Re-deciding is only on request (``redecide=True``) and only for debts nothing has been done
to yet: decided by the rules (not by a caseworker), no letter, no response, no ledger entry,
no transfer. Each re-decision that changes anything leaves a ``debt.redecided`` event with
the previous decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.engine import Connection

from csa_closure.context import Context
from csa_closure.domain.events import EventType
from csa_closure.domain.states import REDECIDABLE_STATES, STATE_FOR_OUTCOME, DebtState, Outcome
from csa_closure.errors import NotReady, UsageError
from csa_closure.policy import RuleSet, compute_features, decide, load_rule_set
from csa_closure.progress import NO_PROGRESS, Progress
from csa_closure.stages.facts import debt_facts
from csa_closure.store.debts import move_debts
from csa_closure.store.dialect import read_frame
from csa_closure.store.rule_sets import register_rule_set
from csa_closure.store.runs import stage_run
from csa_closure.store.schema import stage_runs

ASSESS_LEASE = "stage:assess"
DECISION_COLUMNS = [
    "outcome",
    "reason",
    "rule_id",
    "ruleset_hash",
    "decided_run_id",
    "decided_by",
    "decided_as_of",
]


@dataclass
class AssessResult:
    run_id: int | None
    dry_run: bool
    as_of: str
    ruleset_name: str
    ruleset_hash: str
    considered: int
    decided: int
    redecided: int
    unchanged: int
    by_outcome: dict[str, dict[str, int]] = field(default_factory=dict)
    by_rule: list[dict[str, Any]] = field(default_factory=list)


def require_balanced_pull(conn: Connection) -> int:
    """The latest pull's run id; refuse when there is none or it did not balance."""
    latest = conn.execute(
        select(stage_runs.c.run_id, stage_runs.c.status)
        .where(stage_runs.c.stage == "pull")
        # (a refused pull did nothing and is not a result; a running one holds stage:pull)
        .where(
            stage_runs.c.status.in_(
                ["completed", "unbalanced", "failed", "interrupted", "abandoned"]
            )
        )
        .order_by(stage_runs.c.run_id.desc())
        .limit(1)
    ).first()
    if latest is None:
        raise NotReady("nothing has been pulled yet. Run first: csa-closure pull --source …")
    if latest.status in ("interrupted", "abandoned"):
        raise NotReady(
            f"the latest pull (run {latest.run_id}) was {latest.status} before it finished, "
            "so the store may hold only part of the legacy book. Run first: csa-closure "
            "pull --source … (it continues where it stopped)"
        )
    if latest.status == "failed":
        raise UsageError(
            f"the latest pull (run {latest.run_id}) failed before it finished, so the store "
            "may hold only part of the legacy book and no debt may be decided on it. See "
            "`csa-closure report runs` for why, then pull again."
        )
    if latest.status != "completed":
        raise UsageError(
            f"the latest pull (run {latest.run_id}) is {latest.status}: its money does not "
            "reconcile to the legacy control totals, so no debt may be decided on it. "
            "Fix the source or the quarantine and pull again."
        )
    return int(latest.run_id)


_UNTOUCHED_SQL = """
SELECT d.debt_id FROM debts d
WHERE d.ruleset_hash IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM letters l WHERE l.debt_id = d.debt_id)
  AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.debt_id = d.debt_id)
  AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.debt_id = d.debt_id)
  AND NOT EXISTS (SELECT 1 FROM transfer_items t WHERE t.debt_id = d.debt_id)
"""


def _candidates(
    conn: Connection, ctx: Context, redecide: bool, case_refs: Sequence[str] | None
) -> pl.DataFrame:
    """Facts for the debts this run may decide, with their current decision."""
    states = [DebtState.PULLED.value]
    if redecide:
        states += sorted(s.value for s in REDECIDABLE_STATES)
    facts = debt_facts(conn, ctx.as_of, states=states, case_refs=case_refs)
    previous = {
        "previous_outcome": pl.String(),
        "previous_reason": pl.String(),
        "previous_rule_id": pl.String(),
        "previous_ruleset_hash": pl.String(),
    }
    if not redecide:
        # every candidate is still pulled, and a pulled debt has no decision to carry over:
        # not a read of every decided debt in the book (the re-pull's run has 7% of them)
        return facts.with_columns(pl.lit(None, dtype=t).alias(n) for n, t in previous.items())
    current = read_frame(
        conn,
        (
            "SELECT debt_id, outcome, reason, rule_id, ruleset_hash FROM debts "
            "WHERE state <> 'pulled'",
            (),
        ),
        {"debt_id": pl.Int64(), **previous},
    )
    facts = facts.join(current, on="debt_id", how="left")
    untouched = read_frame(conn, (_UNTOUCHED_SQL, ()), {"debt_id": pl.Int64()})
    return facts.filter(
        (pl.col("state") == DebtState.PULLED.value)
        | pl.col("debt_id").is_in(untouched["debt_id"].implode())
    )


def _plan(facts: pl.DataFrame, rule_set: RuleSet, ctx: Context) -> pl.DataFrame:
    """Every candidate debt with its new decision, target state and whether it changes."""
    features = compute_features(facts, ctx.as_of, rule_set)
    decisions = decide(rule_set, features).select("debt_id", "outcome", "reason", "rule_id")
    target = pl.col("outcome").replace_strict(
        {o.value: s.value for o, s in STATE_FOR_OUTCOME.items()}, return_dtype=pl.String
    )
    planned = facts.join(decisions, on="debt_id", how="inner").with_columns(
        pl.col("state").alias("from_state"),
        target.alias("to_state"),
        pl.lit(rule_set.hash).alias("ruleset_hash"),
    )
    if planned.height != facts.height:
        raise RuntimeError("the rules did not decide every debt (missing catch-all?)")
    same = (
        (pl.col("state") != DebtState.PULLED.value)
        & (pl.col("outcome") == pl.col("previous_outcome"))
        & (pl.col("rule_id") == pl.col("previous_rule_id"))
        & (pl.col("ruleset_hash") == pl.col("previous_ruleset_hash"))
    )
    return planned.with_columns(same.fill_null(False).alias("unchanged"))


def _summaries(planned: pl.DataFrame) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    by_outcome = {o.value: {"debts": 0, "pence": 0} for o in Outcome}
    for outcome, debts, pence in (
        planned.group_by("outcome").agg(pl.len(), pl.col("balance_pence").sum()).iter_rows()
    ):
        by_outcome[outcome] = {"debts": int(debts), "pence": int(pence)}
    by_rule = (
        planned.group_by("creditor", "rule_id", "outcome", "reason")
        .agg(pl.len().alias("debts"), pl.col("balance_pence").sum().alias("pence"))
        .sort("creditor", "rule_id")
        .to_dicts()
    )
    return by_outcome, by_rule


def _register_rule_set(conn: Connection, rule_set: RuleSet, run_id: int, ctx: Context) -> None:
    register_rule_set(
        conn,
        ruleset_hash=rule_set.hash,
        name=rule_set.name,
        canonical=rule_set.canonical_json(),
        first_seen_at=ctx.clock(),
        first_run_id=run_id,
    )


def assess(
    ctx: Context,
    *,
    rules_dir: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    dry_run: bool = False,
    redecide: bool = False,
    case_refs: Sequence[str] | None = None,
    progress: Progress = NO_PROGRESS,
) -> AssessResult:
    """Decide every pulled (and, with ``redecide``, every untouched) debt for ``ctx.as_of``."""
    rule_set = load_rule_set(rules_dir, overrides or {})
    with ctx.engine.connect() as conn:
        require_balanced_pull(conn)
        progress.start("assess: reading debts", None)
        facts = _candidates(conn, ctx, redecide, case_refs)
        progress.finish("assess: reading debts")
    planned = _plan(facts, rule_set, ctx)
    to_write = planned.filter(~pl.col("unchanged"))
    by_outcome, by_rule = _summaries(planned)
    result = AssessResult(
        run_id=None,
        dry_run=dry_run,
        as_of=ctx.as_of.isoformat(),
        ruleset_name=rule_set.name,
        ruleset_hash=rule_set.hash,
        considered=planned.height,
        decided=to_write.filter(pl.col("from_state") == DebtState.PULLED.value).height,
        redecided=to_write.filter(pl.col("from_state") != DebtState.PULLED.value).height,
        unchanged=planned.height - to_write.height,
        by_outcome=by_outcome,
        by_rule=by_rule,
    )
    if dry_run:
        return result
    parameters = {
        "rules_dir": str(rules_dir) if rules_dir else "(default)",
        "ruleset_hash": rule_set.hash,
        "overrides": dict(overrides or {}),
        "redecide": redecide,
        "case_refs": list(case_refs) if case_refs else None,
    }
    # the pull lease too: no pull may refresh a debt's facts while it is being decided
    with stage_run(ctx, "assess", parameters, claims=[ASSESS_LEASE, "stage:pull"]) as run:
        result.run_id = run.run_id
        with run.chunk() as conn:
            # again, holding the pull's lease: a pull that died since the check above was
            # marked abandoned when its lease was taken over, and its book is half loaded
            require_balanced_pull(conn)
            _register_rule_set(conn, rule_set, run.run_id, ctx)
        _write_decisions(run, to_write, progress)
        run.counts.update(
            {
                "decided": result.decided,
                "redecided": result.redecided,
                "unchanged": result.unchanged,
            }
        )
        run.control_totals.update(by_outcome)
    return result


def _write_decisions(run: Any, to_write: pl.DataFrame, progress: Progress) -> None:
    ctx: Context = run.ctx
    moves = to_write.with_columns(
        pl.lit(run.run_id, dtype=pl.Int64).alias("decided_run_id"),
        pl.lit(ctx.actor).alias("decided_by"),
        pl.lit(ctx.as_of, dtype=pl.Date).alias("decided_as_of"),
        pl.struct(
            "outcome",
            "reason",
            "rule_id",
            "ruleset_hash",
            "balance_pence",
            "previous_outcome",
            "previous_reason",
            "previous_rule_id",
        ).alias("detail"),
    )
    progress.start("assess: writing decisions", moves.height)
    for first in (True, False):
        # new decisions and re-decisions are different events
        part = moves.filter((pl.col("from_state") == DebtState.PULLED.value) == first)
        event = EventType.DEBT_DECIDED if first else EventType.DEBT_REDECIDED
        for offset in range(0, part.height, ctx.settings.chunk_size):
            chunk = part.slice(offset, ctx.settings.chunk_size)
            with run.chunk() as conn:
                move_debts(conn, run, chunk, event_type=event, set_columns=DECISION_COLUMNS)
            progress.advance("assess: writing decisions", chunk.height)
    progress.finish("assess: writing decisions")
