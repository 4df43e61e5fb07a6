"""``csa-closure resolve``: expire windows, decide collectability, write off what is ready."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from csa_closure.cli.output import emit, note_waiting, pounds, rich_table
from csa_closure.cli.params import CliState, format_option, pass_state
from csa_closure.cli.progress import progress_bars
from csa_closure.errors import Unbalanced, UsageError
from csa_closure.stages.resolve import ResolveResult
from csa_closure.stages.resolve import resolve as run_resolve


def parse_overrides(values: tuple[str, ...]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set takes NAME=VALUE, not {item!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def _rows(result: ResolveResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {"step": "expired (no response by the deadline)", **result.expired.to_json()},
        {"step": "past the deadline, held for a caseworker", **result.expiry_held.to_json()},
    ]
    rows += [
        {
            "step": f"collectability {r['rule_id']}: {r['outcome']} ({r['reason']})",
            "debts": r["debts"],
            "pence": r["pence"],
        }
        for r in result.collectability
    ]
    rows += [
        {"step": f"written off: {r['reason']}", "debts": r["debts"], "pence": r["pence"]}
        for r in result.written_off_by_reason
    ]
    rows.append({"step": "written off in all", **result.written_off.to_json()})
    rows.append({"step": "waiting for write-off notices", **result.waiting_for_notices.to_json()})
    return rows


def render_resolve(console: Console, result: ResolveResult) -> None:
    title = (
        f"Resolve as of {result.as_of}: DRY RUN, nothing written"
        if result.dry_run
        else f"Resolve run {result.run_id} as of {result.as_of}"
    )
    console.print(
        rich_table(
            title,
            ["step", "debts", "amount"],
            [[r["step"], f"{r['debts']:,}", pounds(int(r["pence"]))] for r in _rows(result)],
            right=["debts", "amount"],
        )
    )
    console.print(f"Rule set {result.ruleset_name} {result.ruleset_hash[:12]}…")
    if result.book is not None:
        verdict = "[green]balanced[/]" if result.book.balanced else "[red]NOT BALANCED[/]"
        console.print(f"Books: {verdict}")


@click.command()
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Rule-set directory for the collectability rules (default: the approved rules).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a rule parameter for this run (repeatable); recorded with the run.",
)
@click.option("--dry-run", is_flag=True, help="Show what would happen; write nothing.")
@format_option
@pass_state
def resolve(
    state: CliState, rules_dir: Path | None, overrides: tuple[str, ...], dry_run: bool, fmt: str
) -> None:
    """Resolve every debt ready on the --as-of date.

    Expires response windows that have passed (held back if flagged for a caseworker),
    decides collectability for debts whose PWC asked for collection, and writes off debts
    whose write-off is due (silent at once; with notice once every living parent's notice
    is settled), each with its ledger entry. Chunked and resumable: after a crash, run it
    again. Runbook: `csa-closure docs resolve`. JSON keys: run_id, dry_run, as_of,
    ruleset_name, ruleset_hash, expired, expiry_held, collectability, written_off,
    written_off_by_reason, waiting_for_notices ({debts, pence} each), book.
    """
    ctx = state.context()
    note_waiting(ctx, "resolve")
    try:
        with progress_bars(fmt == "table") as progress:
            result = run_resolve(
                ctx,
                rules_dir=rules_dir,
                overrides=parse_overrides(overrides),
                dry_run=dry_run,
                progress=progress,
            )
    except Unbalanced as exc:
        if isinstance(exc.result, ResolveResult):
            _emit(fmt, exc.result)
        raise
    _emit(fmt, result)


def _emit(fmt: str, result: ResolveResult) -> None:
    emit(
        fmt,
        result,
        table=lambda c: render_resolve(c, result),
        csv_rows=lambda: (_rows(result), ["step", "debts", "pence"]),
    )
