"""``csa-closure review``: the caseworkers' queue and the decisions they record."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import click
from rich.console import Console

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import CliState, format_option, limit_option, list_limit, pass_state
from csa_closure.domain.states import CREDITORS, DebtState
from csa_closure.errors import UsageError
from csa_closure.stages.review import (
    DECIDABLE_OUTCOMES,
    DECISIONS_FILE_COLUMNS,
    CaseworkerDecision,
    DecisionResult,
    DecisionsResult,
    QueueReason,
    ReviewItem,
    decide,
    decide_many,
    list_review,
    refer,
    summarise_review,
)

COLUMNS = [f.name for f in dataclasses.fields(ReviewItem)]
DECISION_COLUMNS = [
    "run_id",
    "debt_id",
    "case_ref",
    "creditor",
    "from_state",
    "state",
    "referred",
    "outcome",
    "reason",
    "rule_id",
]


@click.group()
def review() -> None:
    """Debts waiting for a caseworker, and the decisions caseworkers make on them.

    Runbook: `csa-closure docs resolve`.
    """


def _flags(item: ReviewItem) -> str:
    flags = (("caseworker", item.needs_caseworker), ("tracing", item.needs_tracing))
    return ", ".join(name for name, on in flags if on)


def render_list(
    console: Console, items: list[ReviewItem], summary: list[QueueReason], count: int
) -> None:
    console.print(
        rich_table(
            f"Waiting for a caseworker: {count:,} debts, by review reason",
            ["review reason", "state", "debts", "amount"],
            [[r.review_reason, r.state, f"{r.debts:,}", pounds(r.pence)] for r in summary],
            right=["debts", "amount"],
        )
    )
    shown = f"first {len(items):,} of {count:,}" if len(items) < count else f"{count:,}"
    console.print(
        rich_table(
            f"Debts ({shown}, in case order; --limit N for more)",
            [
                "case",
                "creditor",
                "state",
                "review reason",
                "flags",
                "outcome",
                "reason",
                "amount",
                "next step",
            ],
            [
                [
                    i.case_ref,
                    i.creditor,
                    i.state,
                    i.review_reason,
                    _flags(i),
                    i.outcome,
                    i.reason,
                    pounds(i.opening_pence),
                    i.next_step,
                ]
                for i in items
            ],
            right=["amount"],
        )
    )


@review.command(name="list")
@click.option(
    "--state",
    "debt_state",
    type=click.Choice([s.value for s in DebtState]),
    help="Only debts in this state.",
)
@click.option("--reason", help="Only debts whose review reason starts with this code.")
@click.option("--case", "case_ref", help="Only this case.")
@limit_option("debts")
@format_option
@pass_state
def list_command(
    state: CliState,
    debt_state: str | None,
    reason: str | None,
    case_ref: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List debts in review and open debts flagged for a person, with their reasons: first a
    summary by review reason and state, then the debts in case order.

    No personal data: references, states, codes and amounts. JSON: {count, summary:
    [{review_reason, state, debts, pence}], items: [{debt_id, case_ref, source_system,
    creditor, state, outcome, reason, review_reason, needs_caseworker, needs_tracing,
    opening_pence, decided_as_of, next_step}]}; count is every matching debt, items at most
    --limit of them.
    """
    ctx = state.context()
    filters = {"state": debt_state, "review_reason": reason, "case_ref": case_ref}
    summary = summarise_review(ctx, **filters)
    items = list_review(ctx, **filters, limit=list_limit(limit, fmt))
    count = sum(r.debts for r in summary)
    emit(
        fmt,
        {"count": count, "summary": summary, "items": items},
        table=lambda c: render_list(c, items, summary, count),
        csv_rows=lambda: ([dataclasses.asdict(i) for i in items], COLUMNS),
    )


def render_decision(console: Console, result: DecisionResult) -> None:
    how = (
        " (referred to review first)"
        if result.referred and result.state != DebtState.REVIEW
        else ""
    )
    console.print(
        f"{result.case_ref} {result.creditor}: {result.from_state} -> {result.state}{how}; "
        f"outcome {result.outcome}, reason {result.reason}, rule {result.rule_id}, "
        f"run {result.run_id}."
    )
    if result.state == DebtState.WRITE_OFF_PENDING.value:
        console.print("It is written off by the next `csa-closure resolve` (after its notices).")
    elif result.state == DebtState.TRANSFER_READY.value:
        console.print("It goes in the next `csa-closure transfer export`.")


def _emit_decision(fmt: str, result: DecisionResult) -> None:
    emit(
        fmt,
        result,
        table=lambda c: render_decision(c, result),
        csv_rows=lambda: ([result.to_json()], DECISION_COLUMNS),
    )


CREDITOR_OPTION = click.option(
    "--creditor",
    type=click.Choice(CREDITORS),
    required=True,
    help="Which of the case's debts: owed to the PWC or to the Secretary of State.",
)


@review.command(name="decide")
@click.argument("case_ref")
@CREDITOR_OPTION
@click.option(
    "--outcome",
    type=click.Choice([o.value for o in DECIDABLE_OUTCOMES]),
    required=True,
    help="The decision: write_off_silent, write_off_notice, transfer, representation (a PWC "
    "debt that never had its final chance) or nil (only for a zero balance).",
)
@click.option(
    "--reason",
    required=True,
    help="The reason as a code in capitals (e.g. ESTATE_HAS_NO_ASSETS); kept with the "
    "decision and in the ledger.",
)
@format_option
@pass_state
def decide_command(
    state: CliState, case_ref: str, creditor: str, outcome: str, reason: str, fmt: str
) -> None:
    """Record a caseworker's decision on a debt of CASE_REF.

    For a debt in review, or a flagged debt still open (referred to review and decided in
    one transaction). Recorded like any decision: rule id 'caseworker', the actor, the run
    and the as-of date. JSON keys: run_id, debt_id, case_ref, creditor, from_state, state,
    referred, outcome, reason, rule_id, book.
    """
    ctx = state.context()
    _emit_decision(fmt, decide(ctx, case_ref, creditor, outcome, reason))


@review.command(name="refer")
@click.argument("case_ref")
@CREDITOR_OPTION
@click.option(
    "--reason",
    required=True,
    help="Why a caseworker must look at it, as a code in capitals (e.g. COMPLAINT).",
)
@format_option
@pass_state
def refer_command(state: CliState, case_ref: str, creditor: str, reason: str, fmt: str) -> None:
    """Take an open debt of CASE_REF into review (a complaint, a change of mind).

    Not for a debt in a CMS package (wait for the acknowledgement) or a written-off one
    (reverse its ledger entry). JSON keys as for `review decide`.
    """
    ctx = state.context()
    _emit_decision(fmt, refer(ctx, case_ref, creditor, reason))


def _read_decisions(path: Path) -> list[CaseworkerDecision]:
    """The decisions in a CSV file; refuses a file without the four columns."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in DECISIONS_FILE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise UsageError(
                    f"{path.name} lacks the column(s) {', '.join(missing)}; a decisions file "
                    f"has a header row with {', '.join(DECISIONS_FILE_COLUMNS)}"
                )
            return [
                CaseworkerDecision(
                    case_ref=(row["case_ref"] or "").strip().upper(),
                    creditor=(row["creditor"] or "").strip().upper(),
                    outcome=(row["outcome"] or "").strip(),
                    reason=(row["reason"] or "").strip(),
                )
                for row in reader
            ]
    except UnicodeDecodeError:
        raise UsageError(f"{path.name} is not UTF-8 text") from None


@review.command(name="decide-file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@format_option
@pass_state
def decide_file_command(state: CliState, path: Path, fmt: str) -> None:
    """Record every caseworker decision in a CSV file (case_ref, creditor, outcome, reason):
    a day's queue settled in case management, in one run.

    Each row gets the same checks as `review decide`; a refused row is listed with its reason
    and does not stop the others. The books are checked once, at the end.
    """
    result = decide_many(state.context(), _read_decisions(path))
    emit(
        fmt,
        result,
        table=lambda c: _render_many(c, result),
        csv_rows=lambda: (result.refused or [], ["row", "case_ref", "creditor", "reason"]),
    )


def _render_many(console: Console, result: DecisionsResult) -> None:
    console.print(
        f"Run {result.run_id}: {result.decided:,} of {result.rows:,} decisions recorded "
        f"({', '.join(f'{k} {v:,}' for k, v in (result.by_outcome or {}).items()) or 'none'})."
    )
    if result.refused:
        console.print(
            rich_table(
                f"Refused ({len(result.refused):,})",
                ["row", "case", "creditor", "why"],
                [[r["row"], r["case_ref"], r["creditor"], r["reason"]] for r in result.refused],
            )
        )
