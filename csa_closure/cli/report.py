"""``csa-closure report``: progress, reconciliation, rules and runs, for managers and packs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.live import Live

from csa_closure.cli.output import console, emit
from csa_closure.cli.params import ISO_DATE, CliState, format_option, pass_state
from csa_closure.errors import ExitCode
from csa_closure.reconcile import reconcile_report
from csa_closure.reports import render
from csa_closure.reports.plot import write_burndown_plot
from csa_closure.reports.progress import (
    DEFAULT_CHART_DAYS,
    DEFAULT_DAILY_LETTER_LIMIT,
    DEFAULT_RESPONSE_WINDOW_DAYS,
    ProgressReport,
    progress_report,
)
from csa_closure.reports.rules import rules_report
from csa_closure.reports.runs import DEFAULT_LIMIT, list_runs

DEFAULT_WATCH_SECONDS = 10.0


@click.group()
def report() -> None:
    """Reports for managers: closure progress, reconciliation, rule outcomes and stage runs.

    Read-only, safe at any time, and free of personal data (case references, codes, counts
    and pounds only). Each takes --format table|json|csv.
    """


def _progress_csv(result: ProgressReport) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = [
        {
            "section": "state",
            "key": s.state,
            "system": s.system,
            "creditor": s.creditor,
            "count": s.debts,
            "pence": s.pence,
        }
        for s in result.states
    ]
    rows += [
        {"section": "letters", "key": f"{c.purpose}/{c.status}", "count": c.letters}
        for c in result.letters
    ]
    rows += [
        {"section": "responses", "key": f"{c.party}/{c.response}", "count": c.responses}
        for c in result.responses
    ]
    d = result.deadlines
    for key, tally in (
        ("overdue", d.overdue),
        ("next_7_days", d.next_7_days),
        ("next_30_days", d.next_30_days),
    ):
        rows.append(
            {"section": "deadlines", "key": key, "count": tally.debts, "pence": tally.pence}
        )
    rows += [
        {"section": "closures", "key": c.as_of.isoformat(), "count": c.debts, "pence": c.pence}
        for c in result.closures
    ]
    rows.append(
        {
            "section": "finish",
            "key": "expected_finish",
            "count": result.finish.open_debts,
            "value": result.finish.expected_finish.isoformat(),
        }
    )
    return rows, ["section", "key", "system", "creditor", "count", "pence", "value"]


def watch(
    out: Console,
    build: Callable[[], RenderableType],
    seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Redraw ``build()`` every ``seconds`` in place until Ctrl-C."""
    with Live(build(), console=out, auto_refresh=False, screen=False) as live:
        try:
            while True:
                sleep(seconds)
                live.update(build(), refresh=True)
        except KeyboardInterrupt:
            pass


@report.command()
@click.option(
    "--daily-letter-limit",
    type=click.IntRange(min=1),
    default=DEFAULT_DAILY_LETTER_LIMIT,
    show_default=True,
    help="Letters that can be sent a day (Notify's daily limit), for the expected finish date.",
)
@click.option(
    "--response-window-days",
    type=click.IntRange(min=0),
    default=DEFAULT_RESPONSE_WINDOW_DAYS,
    show_default=True,
    help="Days a parent has to answer a final-chance letter, for the expected finish date.",
)
@click.option(
    "--chart-days",
    type=click.IntRange(min=1, max=366),
    default=DEFAULT_CHART_DAYS,
    show_default=True,
    help="Days of closures shown in the chart (ending at the as-of date).",
)
@click.option(
    "--watch",
    "watch_seconds",
    type=click.FloatRange(min=0.5),
    is_flag=False,
    flag_value=DEFAULT_WATCH_SECONDS,
    default=None,
    metavar="[SECONDS]",
    help=f"Redraw the report in place every SECONDS (default {DEFAULT_WATCH_SECONDS:g}) "
    "until Ctrl-C. Table format only.",
)
@click.option(
    "--target",
    type=ISO_DATE,
    default=None,
    metavar="YYYY-MM-DD",
    help="A finish date to aim for: the headline and burndown show the pace it needs.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw the burndown to this .png or .svg file (needs the plot extra: "
    "pip install 'csa-closure[plot]').",
)
@format_option
@pass_state
def progress(
    state: CliState,
    daily_letter_limit: int,
    response_window_days: int,
    chart_days: int,
    watch_seconds: float | None,
    target: date | None,
    plot_path: Path | None,
    fmt: str,
) -> None:
    """A headline (debts closed, pounds still open, expected finish), the closure funnel from
    pulled to closed, letters, responses, deadlines, closures per day, the burndown of debts
    and pounds open, and the expected finish date (formula in
    `csa-closure docs reports`)."""
    ctx = state.context()

    def build() -> ProgressReport:
        return progress_report(
            ctx,
            daily_letter_limit=daily_letter_limit,
            response_window_days=response_window_days,
        )

    if watch_seconds is not None:
        if fmt != "table":
            raise click.UsageError("--watch redraws the table; it cannot be used with --format")
        watch(
            console(),
            lambda: render.progress_renderable(build(), chart_days=chart_days, target=target),
            watch_seconds,
        )
        return
    result = build()
    if plot_path is not None:
        write_burndown_plot(result, plot_path, target)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            render.progress_renderable(result, chart_days=chart_days, target=target)
        ),
        csv_rows=lambda: _progress_csv(result),
    )


@report.command()
@format_option
@pass_state
def reconcile(state: CliState, fmt: str) -> None:
    """Every penny per system and creditor: source control total, quarantined, loaded, nil,
    written off, transferred, open and reversed, and whether it balances to the penny.

    Exits 5 when any equation fails (the figures are printed first)."""
    result = reconcile_report(state.context())
    columns = [
        "system",
        "creditor",
        "source_pence",
        "drift_pence",
        "quarantined_pence",
        "loaded_pence",
        "nil_pence",
        "written_off_pence",
        "transferred_pence",
        "open_pence",
        "reversed_pence",
        "debts_loaded",
        "debts_closed",
        "balanced",
    ]
    emit(
        fmt,
        result,
        table=lambda c: c.print(render.reconcile_renderable(result)),
        csv_rows=lambda: (result.rows(), columns),
    )
    if not result.balanced:
        raise SystemExit(ExitCode.UNBALANCED)


@report.command()
@click.option("--ruleset", "ruleset_hash", help="Only decisions made by this rule-set hash.")
@format_option
@pass_state
def rules(state: CliState, ruleset_hash: str | None, fmt: str) -> None:
    """Outcomes by rule and reason, debts and pounds, per rule-set hash: the current
    decisions, and every decision in the event log (current or superseded)."""
    result = rules_report(state.context(), ruleset_hash=ruleset_hash)
    columns = [
        "view",
        "ruleset_hash",
        "rule_id",
        "outcome",
        "reason",
        "debts",
        "pence",
        "closed_debts",
        "closed_pence",
        "decisions",
        "current",
        "superseded",
    ]
    emit(
        fmt,
        result,
        table=lambda c: c.print(render.rules_renderable(result)),
        csv_rows=lambda: (
            [{"view": "current", **vars(r)} for r in result.current]
            + [{"view": "history", **vars(h)} for h in result.history],
            columns,
        ),
    )


@report.command()
@click.option("--stage", help="Only runs of this stage (pull, assess, archive, ...).")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="The newest N runs; 0 for every run.",
)
@format_option
@pass_state
def runs(state: CliState, stage: str | None, limit: int, fmt: str) -> None:
    """Every stage run, newest first: who, when, as-of date, counts, status and duration."""
    result = list_runs(state.context(), stage=stage, limit=limit or None)
    columns = [
        "run_id",
        "stage",
        "actor",
        "host",
        "started_at",
        "finished_at",
        "duration_seconds",
        "as_of",
        "status",
        "counts",
        "error",
    ]
    emit(
        fmt,
        {"runs": result},
        table=lambda c: c.print(render.runs_renderable(result)),
        csv_rows=lambda: (
            [{**r.to_json(), "counts": json.dumps(r.counts, sort_keys=True)} for r in result],
            columns,
        ),
    )
