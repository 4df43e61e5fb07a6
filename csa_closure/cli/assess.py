"""``csa-closure assess``: decide every pulled debt by the approved rules."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import CliState, format_option, pass_state, rules_options
from csa_closure.cli.progress import progress_bars
from csa_closure.stages.assess import AssessResult
from csa_closure.stages.assess import assess as run_assess


def render_assess(console: Console, result: AssessResult) -> None:
    head = "Dry run (nothing written)" if result.dry_run else f"Assess run {result.run_id}"
    console.print(
        f"{head}: rule set {result.ruleset_name} {result.ruleset_hash[:12]}, as of {result.as_of}"
    )
    console.print(
        rich_table(
            "Outcomes",
            ["outcome", "debts", "amount"],
            [
                [name, f"{t['debts']:,}", pounds(t["pence"])]
                for name, t in result.by_outcome.items()
            ],
            right=["debts", "amount"],
        )
    )
    console.print(
        rich_table(
            "By rule",
            ["creditor", "rule", "outcome", "reason", "debts", "amount"],
            [
                [
                    r["creditor"],
                    r["rule_id"],
                    r["outcome"],
                    r["reason"],
                    f"{r['debts']:,}",
                    pounds(r["pence"]),
                ]
                for r in result.by_rule
            ],
            right=["debts", "amount"],
        )
    )
    verb = "would be" if result.dry_run else "were"
    console.print(
        f"{result.decided:,} debts {verb} decided, {result.redecided:,} re-decided; "
        f"{result.unchanged:,} unchanged."
    )


@click.command()
@rules_options
@click.option("--dry-run", is_flag=True, help="Decide in memory and report; write nothing.")
@click.option(
    "--redecide",
    is_flag=True,
    help="Also re-decide debts nothing has been done to yet (decided by the rules, no letter, "
    "response, ledger entry or transfer). Each change leaves a debt.redecided event.",
)
@click.option(
    "--case",
    "case_refs",
    multiple=True,
    metavar="CASE_REF",
    help="Only these cases (repeatable).",
)
@format_option
@pass_state
def assess(
    state: CliState,
    rules_dir: Path | None,
    overrides: dict[str, str],
    dry_run: bool,
    redecide: bool,
    case_refs: tuple[str, ...],
    fmt: str,
) -> None:
    """Decide every pulled, undecided debt by the rules, for the --as-of date.

    Each decision records the rule, the rule set's hash, the run and the actor, with an
    event, in the same transaction. Chunked and resumable: re-running continues where a
    killed run stopped and decides nothing twice.
    """
    ctx = state.context()
    with progress_bars(fmt == "table" and not dry_run) as progress:
        result = run_assess(
            ctx,
            rules_dir=rules_dir,
            overrides=overrides,
            dry_run=dry_run,
            redecide=redecide,
            case_refs=list(case_refs) or None,
            progress=progress,
        )
    emit(
        fmt,
        result,
        table=lambda c: render_assess(c, result),
        csv_rows=lambda: (
            result.by_rule,
            ["creditor", "rule_id", "outcome", "reason", "debts", "pence"],
        ),
    )
