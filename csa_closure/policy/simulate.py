"""Simulating a rule change on the whole book (``csa-closure rules simulate``). No writes.

Both rule sets decide every debt in ``features`` (each with its own parameters: features
that depend on parameters are recomputed for each), and the result compares them:

- the outcome-to-outcome change matrix: debts and pence per (current, new) cell, with a few
  example case references for each changed cell (smallest debt ids first);
- debts and pence per outcome under each rule set;
- the letters each rule set's decisions would send. Counting rule, per debt (letters are per
  debt, as in the store): ``representation`` sends one final-chance letter to the PWC;
  ``write_off_notice`` sends a notice to each parent and ``transfer`` a transfer notice to
  each parent, never to one who has died (deceased on or before D); ``write_off_silent``,
  ``nil`` and ``manual_review`` send none at this stage (later letters, after a reply or a
  caseworker's decision, are not counted);
- the expected collection for the debts each rule set would transfer: the sum of
  ``expected_yield_pence`` and ``collection_cost_pence`` under its collectability
  parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from csa_closure.domain.states import Outcome
from csa_closure.policy.evaluate import decide_bound
from csa_closure.policy.features import bind_features
from csa_closure.policy.ruleset import RuleSet

OUTCOMES = tuple(o.value for o in Outcome)
_OUTCOME = pl.Enum(OUTCOMES)


@dataclass(frozen=True)
class OutcomeTotal:
    outcome: str
    debts: int
    pence: int


@dataclass(frozen=True)
class ChangeCell:
    from_outcome: str  # under the current rule set
    to_outcome: str  # under the new rule set
    debts: int
    pence: int
    example_case_refs: tuple[str, ...]  # for changed cells only

    @property
    def changed(self) -> bool:
        return self.from_outcome != self.to_outcome


@dataclass(frozen=True)
class LetterCounts:
    final_chance_pwc: int
    write_off_notice_pwc: int
    write_off_notice_nrp: int
    transfer_notice_pwc: int
    transfer_notice_nrp: int

    @property
    def total(self) -> int:
        return (
            self.final_chance_pwc
            + self.write_off_notice_pwc
            + self.write_off_notice_nrp
            + self.transfer_notice_pwc
            + self.transfer_notice_nrp
        )

    def to_json(self) -> dict[str, int]:
        return {
            "final_chance_pwc": self.final_chance_pwc,
            "write_off_notice_pwc": self.write_off_notice_pwc,
            "write_off_notice_nrp": self.write_off_notice_nrp,
            "transfer_notice_pwc": self.transfer_notice_pwc,
            "transfer_notice_nrp": self.transfer_notice_nrp,
            "total": self.total,
        }


@dataclass(frozen=True)
class CollectionForecast:
    """Debts that would transfer, and what collecting them is expected to yield and cost."""

    transfer_debts: int
    transfer_pence: int
    expected_yield_pence: int
    collection_cost_pence: int

    @property
    def net_pence(self) -> int:
        return self.expected_yield_pence - self.collection_cost_pence

    def to_json(self) -> dict[str, int]:
        return {
            "transfer_debts": self.transfer_debts,
            "transfer_pence": self.transfer_pence,
            "expected_yield_pence": self.expected_yield_pence,
            "collection_cost_pence": self.collection_cost_pence,
            "net_pence": self.net_pence,
        }


@dataclass(frozen=True)
class RuleSetOutcomes:
    """What one rule set would do with the book."""

    name: str
    hash: str
    overrides: dict[str, str]
    totals: tuple[OutcomeTotal, ...]  # one per outcome, in Outcome order
    letters: LetterCounts
    collection: CollectionForecast


@dataclass(frozen=True)
class SimulationResult:
    debts: int
    pence: int
    current: RuleSetOutcomes
    new: RuleSetOutcomes
    matrix: tuple[ChangeCell, ...]  # non-empty cells, current outcome then new, Outcome order
    changed_debts: int
    changed_pence: int

    def changes(self) -> list[ChangeCell]:
        return [cell for cell in self.matrix if cell.changed]

    def to_json(self) -> dict[str, Any]:
        return {
            "debts": self.debts,
            "pence": self.pence,
            "changed_debts": self.changed_debts,
            "changed_pence": self.changed_pence,
            "current": self.current,
            "new": self.new,
            "matrix": self.matrix,
        }


def simulate(
    new: RuleSet, current: RuleSet, features: pl.DataFrame, *, examples: int = 3
) -> SimulationResult:
    """Compare what ``new`` and ``current`` would decide for every debt in ``features``."""
    bound_current = bind_features(features, current)
    bound_new = bind_features(features, new)
    before = decide_bound(current, bound_current)["outcome"].cast(_OUTCOME)
    after = decide_bound(new, bound_new)["outcome"].cast(_OUTCOME)
    frame = features.select(
        "debt_id",
        "case_ref",
        "balance_pence",
        (~pl.col("pwc_deceased")).alias("pwc_living"),
        (~pl.col("nrp_deceased")).alias("nrp_living"),
    ).with_columns(before.alias("current"), after.alias("new"))
    matrix = _matrix(frame, examples)
    changed = [cell for cell in matrix if cell.changed]
    return SimulationResult(
        debts=frame.height,
        pence=int(frame["balance_pence"].sum() or 0),
        current=_outcomes(current, frame, "current", bound_current),
        new=_outcomes(new, frame, "new", bound_new),
        matrix=matrix,
        changed_debts=sum(c.debts for c in changed),
        changed_pence=sum(c.pence for c in changed),
    )


def _matrix(frame: pl.DataFrame, examples: int) -> tuple[ChangeCell, ...]:
    changed = pl.col("current") != pl.col("new")
    cells = (
        frame.lazy()
        .group_by("current", "new")
        .agg(
            pl.len().alias("debts"),
            pl.col("balance_pence").sum().alias("pence"),
            pl.col("case_ref")
            .filter(changed)
            .sort_by(pl.col("debt_id").filter(changed))
            .head(examples)
            .alias("examples"),
        )
        .sort("current", "new")
        .collect()
    )
    return tuple(
        ChangeCell(
            from_outcome=row["current"],
            to_outcome=row["new"],
            debts=int(row["debts"]),
            pence=int(row["pence"] or 0),
            example_case_refs=tuple(row["examples"]),
        )
        for row in cells.iter_rows(named=True)
    )


def _outcomes(
    rule_set: RuleSet, frame: pl.DataFrame, column: str, bound: pl.DataFrame
) -> RuleSetOutcomes:
    outcome = pl.col(column)
    per_outcome = {
        row[column]: (int(row["debts"]), int(row["pence"] or 0))
        for row in frame.group_by(column)
        .agg(pl.len().alias("debts"), pl.col("balance_pence").sum().alias("pence"))
        .iter_rows(named=True)
    }
    totals = tuple(OutcomeTotal(o, *per_outcome.get(o, (0, 0))) for o in OUTCOMES)

    def living(outcome_value: str, who: str) -> pl.Expr:
        return ((outcome == outcome_value) & pl.col(f"{who}_living")).sum()

    transfer = outcome == Outcome.TRANSFER.value
    counts = frame.select(
        living(Outcome.REPRESENTATION.value, "pwc").alias("final_chance_pwc"),
        living(Outcome.WRITE_OFF_NOTICE.value, "pwc").alias("write_off_notice_pwc"),
        living(Outcome.WRITE_OFF_NOTICE.value, "nrp").alias("write_off_notice_nrp"),
        living(Outcome.TRANSFER.value, "pwc").alias("transfer_notice_pwc"),
        living(Outcome.TRANSFER.value, "nrp").alias("transfer_notice_nrp"),
    ).row(0, named=True)
    money = (
        bound.select("balance_pence", "expected_yield_pence", "collection_cost_pence")
        .filter(frame.select(transfer).to_series())
        .select(
            pl.len().alias("debts"),
            pl.col("balance_pence").sum().alias("pence"),
            pl.col("expected_yield_pence").sum().alias("yield"),
            pl.col("collection_cost_pence").sum().alias("cost"),
        )
        .row(0, named=True)
    )
    return RuleSetOutcomes(
        name=rule_set.name,
        hash=rule_set.hash,
        overrides=rule_set.overrides(),
        totals=totals,
        letters=LetterCounts(**{k: int(v or 0) for k, v in counts.items()}),
        collection=CollectionForecast(
            transfer_debts=int(money["debts"]),
            transfer_pence=int(money["pence"] or 0),
            expected_yield_pence=int(money["yield"] or 0),
            collection_cost_pence=int(money["cost"] or 0),
        ),
    )
