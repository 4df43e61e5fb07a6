"""``csa-closure rules``: show, check and simulate a rule set, for policy staff."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import (
    CliState,
    format_option,
    parse_sets,
    pass_state,
    rules_options,
)
from csa_closure.policy import CheckReport, RuleSet, SimulationResult, load_rule_set
from csa_closure.stages.rules_review import check_on_book, simulate_on_book


@click.group()
def rules() -> None:
    """Show, check and simulate write-off rule sets before operators use them."""


def _rule_rows(rule_set: RuleSet) -> list[dict[str, object]]:
    return [
        {
            "table": rule.table,
            "position": rule.position,
            "rule_id": rule.id,
            "when": rule.when,
            "outcome": rule.outcome.value,
            "reason": rule.reason,
            "description": rule.description,
        }
        for rule in rule_set.rules()
    ]


def render_rule_set(console: Console, rule_set: RuleSet) -> None:
    console.print(f"Rule set [bold]{rule_set.name}[/]  hash {rule_set.hash}")
    if rule_set.source:
        console.print(f"from {rule_set.source}")
    console.print(
        rich_table(
            "Parameters",
            ["name", "type", "value", "description"],
            [
                [
                    name,
                    p.type.value,
                    p.display() + (" (--set)" if p.overridden else ""),
                    p.description,
                ]
                for name, p in rule_set.parameters.items()
            ],
            whole=["value"],
        )
    )
    console.print(
        rich_table(
            "Rules (first hit wins; a NULL condition does not match)",
            ["table", "#", "id", "when", "outcome", "reason"],
            [
                [r["table"], r["position"], r["rule_id"], r["when"], r["outcome"], r["reason"]]
                for r in _rule_rows(rule_set)
            ],
        )
    )


@rules.command()
@rules_options
@format_option
def show(rules_dir: Path | None, overrides: dict[str, str], fmt: str) -> None:
    """Print the rule set (the approved one by default), its parameters and its hash."""
    rule_set = load_rule_set(rules_dir, overrides)
    emit(
        fmt,
        {
            "name": rule_set.name,
            "hash": rule_set.hash,
            "source": str(rule_set.source) if rule_set.source else None,
            "overrides": rule_set.overrides(),
            "rule_set": rule_set.canonical(),
        },
        table=lambda c: render_rule_set(c, rule_set),
        csv_rows=lambda: (
            _rule_rows(rule_set),
            ["table", "position", "rule_id", "when", "outcome", "reason", "description"],
        ),
    )


def render_check(console: Console, report: CheckReport) -> None:
    console.print(
        f"Rule set {report.rule_set_name} {report.rule_set_hash[:12]}: valid. "
        f"Checked over {report.debts:,} pulled debts."
    )
    for table in report.tables:
        console.print(
            rich_table(
                f"{table.table} ({table.debts:,} debts, {pounds(table.pence)})",
                ["#", "rule", "outcome", "first hits", "amount", "true", "NULL", "note"],
                [
                    [
                        r.position,
                        r.rule_id,
                        r.outcome,
                        f"{r.first_hits:,}",
                        pounds(r.first_hit_pence),
                        f"{r.true_count:,}",
                        f"{r.null_count:,}",
                        "shadowed" if r.shadowed else "never hit" if r.never_hit else "",
                    ]
                    for r in table.rules
                ],
                right=["first hits", "amount", "true", "NULL"],
            )
        )
    for note in report.warnings():
        console.print(f"[yellow]warning:[/] {note}")


@rules.command()
@rules_options
@format_option
@pass_state
def check(state: CliState, rules_dir: Path | None, overrides: dict[str, str], fmt: str) -> None:
    """Validate a rule set, then run it over the pulled book: hits per rule, rules never
    hit, rules shadowed by earlier rows, conditions that evaluated NULL.

    Exits 2 if the rule set is invalid (nothing else is done). Warnings do not fail.
    """
    rule_set = load_rule_set(rules_dir, overrides)
    report = check_on_book(state.context(), rule_set)
    emit(
        fmt,
        report,
        table=lambda c: render_check(c, report),
        csv_rows=lambda: (
            [{"table": r.table, **vars(r)} for r in report.rules()],
            [
                "table",
                "position",
                "rule_id",
                "outcome",
                "reason",
                "first_hits",
                "first_hit_pence",
                "true_count",
                "null_count",
                "shadowed",
                "when",
            ],
        ),
    )


def render_simulation(console: Console, result: SimulationResult) -> None:
    console.print(
        f"New {result.new.name} {result.new.hash[:12]} against current "
        f"{result.current.name} {result.current.hash[:12]}, over {result.debts:,} debts "
        f"({pounds(result.pence)}). Nothing was written."
    )
    console.print(
        rich_table(
            "What changes (current outcome -> new outcome)",
            ["current", "new", "debts", "amount", "examples"],
            [
                [
                    c.from_outcome,
                    c.to_outcome,
                    f"{c.debts:,}",
                    pounds(c.pence),
                    ", ".join(c.example_case_refs),
                ]
                for c in result.matrix
            ],
            right=["debts", "amount"],
        )
    )
    current = {t.outcome: t for t in result.current.totals}
    console.print(
        rich_table(
            "Totals per outcome",
            ["outcome", "current debts", "current amount", "new debts", "new amount"],
            [
                [
                    t.outcome,
                    f"{current[t.outcome].debts:,}",
                    pounds(current[t.outcome].pence),
                    f"{t.debts:,}",
                    pounds(t.pence),
                ]
                for t in result.new.totals
            ],
            right=["current debts", "current amount", "new debts", "new amount"],
        )
    )
    letters = [result.current.letters.to_json(), result.new.letters.to_json()]
    console.print(
        rich_table(
            "Letters that would be sent",
            ["letter", "current", "new"],
            [[k, f"{letters[0][k]:,}", f"{letters[1][k]:,}"] for k in letters[1]],
            right=["current", "new"],
        )
    )
    forecasts = [result.current.collection.to_json(), result.new.collection.to_json()]
    console.print(
        rich_table(
            "Collection forecast (debts that would transfer)",
            ["", "current", "new"],
            [
                [k, *(f"{f[k]:,}" if k.endswith("debts") else pounds(f[k]) for f in forecasts)]
                for k in forecasts[1]
            ],
            right=["current", "new"],
        )
    )
    console.print(
        f"{result.changed_debts:,} debts ({pounds(result.changed_pence)}) would change outcome."
    )


@rules.command()
@click.option(
    "--rules",
    "rules_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The proposed rule set directory.",
)
@click.option(
    "--against",
    "against_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The rule set to compare with (default: the one most debts were decided by, "
    "else the approved rules).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    callback=parse_sets,
    metavar="NAME=VALUE",
    help="Override a parameter of the proposed rule set (repeatable).",
)
@format_option
@pass_state
def simulate(
    state: CliState,
    rules_dir: Path,
    against_dir: Path | None,
    overrides: dict[str, str],
    fmt: str,
) -> None:
    """Compare a proposed rule set with the current one on the whole pulled book, writing
    nothing: the outcome change matrix (debts and pounds), totals per outcome, letters that
    would be sent, expected collection yield and cost, and example cases per change."""
    new = load_rule_set(rules_dir, overrides)
    current = load_rule_set(against_dir) if against_dir else None
    result = simulate_on_book(state.context(), new, current)
    emit(
        fmt,
        result,
        table=lambda c: render_simulation(c, result),
        csv_rows=lambda: (
            [
                {
                    "from_outcome": c.from_outcome,
                    "to_outcome": c.to_outcome,
                    "debts": c.debts,
                    "pence": c.pence,
                    "example_case_refs": " ".join(c.example_case_refs),
                }
                for c in result.matrix
            ],
            ["from_outcome", "to_outcome", "debts", "pence", "example_case_refs"],
        ),
    )
