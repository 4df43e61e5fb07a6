"""``csa-closure pull`` and ``csa-closure quarantine``."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import CliState, format_option, limit_option, list_limit, pass_state
from csa_closure.cli.progress import progress_bars
from csa_closure.domain.states import QuarantineStatus
from csa_closure.errors import Unbalanced
from csa_closure.reports.quarantine import list_quarantine, summarise_quarantine
from csa_closure.stages.pull import PullResult
from csa_closure.stages.pull import pull as run_pull

LEGACY_ENV = "CSA_CLOSURE_LEGACY_DB"


def reconciliation_rows(result: PullResult) -> list[dict[str, Any]]:
    return [
        {
            "system": system,
            "creditor": creditor,
            **c.to_json(),
        }
        for system, s in result.systems.items()
        for creditor, c in s.creditors.items()
    ]


def render_pull(console: Console, result: PullResult) -> None:
    rows = reconciliation_rows(result)
    console.print(
        rich_table(
            f"Pull run {result.run_id}: source = loaded (at source) + quarantined, per system "
            "and creditor",
            ["system", "creditor", "source", "loaded", "quarantined", "difference", "balanced"],
            [
                [
                    r["system"],
                    r["creditor"],
                    pounds(r["source_pence"]),
                    pounds(r["loaded_at_source_pence"]),
                    pounds(r["quarantined_pence"]),
                    pounds(r["difference_pence"]),
                    "yes" if r["balanced"] else "NO",
                ]
                for r in rows
            ],
            right=["source", "loaded", "quarantined", "difference"],
        )
    )
    console.print(
        rich_table(
            "Cases",
            ["system", "in source", "loaded", "quarantined"],
            [
                [name, f"{s.cases_source:,}", f"{s.cases_loaded:,}", f"{s.cases_quarantined:,}"]
                for name, s in result.systems.items()
            ],
            right=["in source", "loaded", "quarantined"],
        )
    )
    console.print(
        "This run: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in result.counts.items())
    )
    if result.drift:
        console.print(
            f"[yellow]{result.counts.get('debts_drifted', 0):,} decided debts changed at source "
            "after their decision (not overwritten): see `csa-closure report reconcile`.[/]"
        )
    verdict = "[green]balanced to the penny[/]" if result.balanced else "[red]NOT BALANCED[/]"
    console.print(f"Reconciliation: {verdict}")


@click.command()
@click.option(
    "--source",
    envvar=LEGACY_ENV,
    required=True,
    help=f"Legacy replica: a SQLite file or URL, or postgresql+psycopg://… (env {LEGACY_ENV}).",
)
@format_option
@pass_state
def pull(state: CliState, source: str, fmt: str) -> None:
    """Pull every case from the legacy CSCS and CS2 replica into the working store.

    Dirty rows quarantine their case with a reason code. Prints, per system and creditor,
    the proof that source + drift = loaded + quarantined; exits 5 if it does not balance.
    Safe to re-run: nothing is duplicated, and an interrupted pull continues where it
    stopped.
    """
    ctx = state.context()
    try:
        with progress_bars(fmt == "table") as progress:
            result = run_pull(ctx, source, progress=progress)
    except Unbalanced as exc:
        if isinstance(exc.result, PullResult):
            _emit_pull(fmt, exc.result)
        raise
    _emit_pull(fmt, result)


def _emit_pull(fmt: str, result: PullResult) -> None:
    emit(
        fmt,
        result,
        table=lambda c: render_pull(c, result),
        csv_rows=lambda: (
            reconciliation_rows(result),
            [
                "system",
                "creditor",
                "source_pence",
                "loaded_at_source_pence",
                "quarantined_pence",
                "difference_pence",
                "drift_pence",
                "balanced",
            ],
        ),
    )


@click.group(name="quarantine")
def quarantine_group() -> None:
    """Work the pull's quarantine: cases held back because their source rows are dirty."""


@quarantine_group.command(name="list")
@click.option("--reason", help="Only items with this reason code (e.g. BAD_DATE).")
@click.option(
    "--status",
    type=click.Choice([*(s.value for s in QuarantineStatus), "all"]),
    default=QuarantineStatus.HELD.value,
    show_default=True,
    help="held: still in quarantine; released: fixed at source and pulled since.",
)
@click.option("--system", type=click.Choice(["CSCS", "CS2"]), help="Only one legacy system.")
@limit_option("items")
@format_option
@pass_state
def quarantine_list(
    state: CliState,
    reason: str | None,
    status: str,
    system: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List quarantined cases and orphan rows with their reason codes (no personal data):
    first a summary by reason code, then the items in system and case order.

    JSON: {count, summary: [{reason, items, pwc_pence, sos_pence}], items: [...]}; count is
    every matching item, items at most --limit of them."""
    ctx = state.context()
    filters = {"reason": reason, "status": None if status == "all" else status, "system": system}
    count, summary = summarise_quarantine(ctx, **filters)
    items = list_quarantine(ctx, **filters, limit=list_limit(limit, fmt))
    shown = f"first {len(items):,} of {count:,}" if len(items) < count else f"{count:,}"
    columns = [
        "source_system",
        "case_ref",
        "item_kind",
        "status",
        "reason_codes",
        "pwc_pence",
        "sos_pence",
        "unreadable_pence",
        "row_count",
    ]
    emit(
        fmt,
        {"count": count, "summary": summary, "items": items},
        table=lambda c: c.print(
            rich_table(
                f"Quarantine: {count:,} items, by reason (an item may have several)",
                ["reason", "items", "PWC", "SOS"],
                [
                    [r.reason, f"{r.items:,}", pounds(r.pwc_pence), pounds(r.sos_pence)]
                    for r in summary
                ],
                right=["items", "PWC", "SOS"],
            ),
            rich_table(
                f"Items ({shown}, in system and case order; --limit N for more)",
                ["system", "case", "kind", "status", "reasons", "PWC", "SOS", "unreadable", "rows"],
                [
                    [
                        i.source_system,
                        i.case_ref,
                        i.item_kind,
                        i.status,
                        ", ".join(i.reason_codes),
                        pounds(i.pwc_pence),
                        pounds(i.sos_pence),
                        pounds(i.unreadable_pence),
                        i.row_count,
                    ]
                    for i in items
                ],
                right=["PWC", "SOS", "unreadable", "rows"],
            ),
        ),
        csv_rows=lambda: (
            [{**vars(i), "reason_codes": " ".join(i.reason_codes)} for i in items],
            columns,
        ),
    )
