"""``csa-closure decommission check``: may the legacy systems be switched off?"""

from __future__ import annotations

import click

from csa_closure.cli.output import emit
from csa_closure.cli.params import CliState, format_option, pass_state
from csa_closure.errors import ExitCode
from csa_closure.reports import render
from csa_closure.stages.decommission import (
    DEFAULT_EXAMPLES,
    decommission_check,
)


@click.group()
def decommission() -> None:
    """The decommission gate: the checks that must all pass before CSCS and CS2 go off."""


@decommission.command()
@click.option(
    "--examples",
    type=click.IntRange(min=0),
    default=DEFAULT_EXAMPLES,
    show_default=True,
    help="Blocking case references listed per gate (the count is always complete).",
)
@format_option
@pass_state
def check(state: CliState, examples: int, fmt: str) -> None:
    """Every gate with pass/fail and its blocking cases: every debt closed, reconciliation
    balanced, no letter in a non-final status, nothing held in quarantine, and the latest
    archive verified with the store unchanged since.

    Read-only. Exits 0 only when every gate passes, 7 otherwise."""
    result = decommission_check(state.context(), examples=examples)
    emit(
        fmt,
        result,
        table=lambda c: c.print(render.decommission_renderable(result)),
        csv_rows=lambda: (
            [{**g.to_json(), "examples": " ".join(g.examples)} for g in result.gates],
            ["name", "passed", "blocking_count", "examples", "detail"],
        ),
    )
    if not result.passed:
        raise SystemExit(ExitCode.GATE_CLOSED)
