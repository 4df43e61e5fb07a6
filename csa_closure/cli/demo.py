"""``csa-closure demo``: the whole closure programme in one command, on the embedded store."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import click
from rich.console import Console

from csa_closure.cli.output import attribute_rows, emit, rich_table
from csa_closure.cli.params import cases_option, format_option, seed_option
from csa_closure.cli.progress import progress_bars
from csa_closure.context import Context
from csa_closure.errors import ExitCode
from csa_closure.reconcile import reconcile_report
from csa_closure.reports import render
from csa_closure.reports.progress import progress_report
from csa_closure.simulation.demo import DemoResult, DemoSettings, run_demo
from csa_closure.stages.letters_outbox import FAKE_NOTIFY, PRINT_FILE
from csa_closure.store.engine import make_engine


def _timeline(result: DemoResult) -> list[list[str]]:
    """One row per kind of step: how many times it ran, on how many days, and its time."""
    runs: dict[str, list[float]] = defaultdict(list)
    days: dict[str, set[str]] = defaultdict(set)
    for step in result.steps:
        runs[step.name].append(step.seconds)
        days[step.name].add(step.day.isoformat())
    return [
        [name, str(len(seconds)), str(len(days[name])), f"{sum(seconds):.1f}"]
        for name, seconds in runs.items()
    ]


def render_demo(console: Console, result: DemoResult, show_commands: bool) -> None:
    s = result.settings
    console.print(
        f"[bold]csa-closure demo[/]: {s.cases:,} cases, seed {s.seed}, letters by {s.channel}, "
        f"{result.days} operator days from {s.start} to {result.finished_on}, "
        f"{result.seconds:.1f} s. Everything is in {result.directory}."
    )
    console.print(
        rich_table(
            "What ran (each step is an ordinary csa-closure command)",
            ["step", "runs", "days", "seconds"],
            _timeline(result),
            right=["runs", "days", "seconds"],
        )
    )
    if show_commands:
        for step in result.steps:
            console.print(f"[dim]{step.command}[/]")
    ctx = Context(
        engine=make_engine(result.store_url), as_of=result.finished_on or s.start, actor="demo"
    )
    console.print(render.progress_renderable(progress_report(ctx)))
    console.print(render.reconcile_renderable(reconcile_report(ctx)))
    if result.decommission is not None:
        console.print(render.decommission_renderable(result.decommission))
    console.print(
        f"The store is {result.store_url}: try "
        f"`csa-closure --db {result.store_url} report progress` or `… explain CASE_REF`."
    )


@click.command()
@cases_option(
    "How many legacy cases to generate (1,300,000 is the real book's size).",
    minimum=100,
    default=20_000,
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("csa-closure-demo"),
    show_default=True,
    help="Where the demo keeps everything (replica, store, letters, packages, archive). A "
    "previous demo's directory is cleared; any other non-empty directory is refused.",
)
@seed_option("Seed of the generated book and of every simulated answer.", default=2019)
@click.option(
    "--channel",
    type=click.Choice([FAKE_NOTIFY, PRINT_FILE]),
    default=FAKE_NOTIFY,
    show_default=True,
    help="Send letters through the simulated GOV.UK Notify, or write print-vendor files.",
)
@click.option(
    "--daily-letter-limit",
    type=click.IntRange(min=1),
    default=20_000,
    show_default=True,
    help="Letters a day (GOV.UK Notify's live limit is 20,000).",
)
@click.option(
    "--show-commands",
    is_flag=True,
    help="Also list every command the demo ran, in order, as an operator would.",
)
@format_option
def demo(
    cases: int,
    directory: Path,
    seed: int,
    channel: str,
    daily_letter_limit: int,
    show_commands: bool,
    fmt: str,
) -> None:
    """Run the whole closure programme on a generated book, on the embedded SQLite store.

    Generates a legacy replica with dirty data, pulls it (and later the legacy team's
    corrected replica), assesses every debt, builds, approves (a second person) and sends
    the letters, imports simulated parent responses (about 15% ask for collection), moves
    the date past the deadlines, resolves, settles caseworkers' queues, exports transfers
    and imports the CMS acknowledgements, archives and verifies the evidence, and runs the
    decommission check. Exits 0 only when the decommission check passes (7 otherwise).

    The demo's own global options (--db, --as-of, --actor) are not used: it keeps its own
    store in --dir and its own calendar from 1 April 2019.
    """
    settings = DemoSettings(
        cases=cases, seed=seed, channel=channel, daily_letter_limit=daily_letter_limit
    )
    with progress_bars(fmt == "table") as progress:
        result = run_demo(settings, directory.resolve(), progress)
    emit(
        fmt,
        result,
        table=lambda c: render_demo(c, result, show_commands),
        csv_rows=lambda: attribute_rows(
            result.steps, ["day", "step", "command", "seconds"], step=lambda st: st.name
        ),
    )
    if not result.passed:
        raise SystemExit(ExitCode.GATE_CLOSED)
