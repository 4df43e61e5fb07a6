"""``csa-closure explain CASE_REF``: why a case's debts got their outcomes, and its history."""

from __future__ import annotations

import click
from rich.console import Console

from csa_closure.cli.output import emit, pounds, rich_table
from csa_closure.cli.params import CliState, format_option, pass_state
from csa_closure.reports.explain import CaseStory, DebtStory, explain_case


def _result(value: bool | None) -> str:
    return "NULL (no match)" if value is None else "TRUE" if value else "false"


def _render_debt(console: Console, story: DebtStory) -> None:
    e = story.explanation
    console.print(
        f"\n[bold]{story.creditor} debt[/] {pounds(story.opening_pence)}: state "
        f"[bold]{story.state}[/], outcome {story.outcome or '-'} ({story.reason or '-'}), "
        f"rule {story.rule_id or '-'}, decided {story.decided_as_of or '-'} by "
        f"{story.decided_by or '-'}"
    )
    if story.source_pence != story.opening_pence:
        console.print(
            f"[yellow]The source now says {pounds(story.source_pence)} (drift since the pull).[/]"
        )
    console.print(f"Evaluated as of {story.evaluated_as_of} with {story.evaluated_with}.")
    if story.reproduces_decision is False:
        console.print(
            "[yellow]Re-evaluating today's facts no longer gives the recorded rule: the facts "
            "changed at source after the decision.[/]"
        )
    for trace in (e.eligibility, e.collectability):
        console.print(
            rich_table(
                f"{trace.table} rules, in order (first TRUE wins)",
                ["#", "rule", "when", "result", "features read", "parameters"],
                [
                    [
                        t.position,
                        ("→ " if t.matched else "") + t.rule_id,
                        t.when,
                        _result(t.result),
                        ", ".join(f"{k}={v}" for k, v in t.features.items()),
                        ", ".join(f"{p.name}={p.display}" for p in t.parameters),
                    ]
                    for t in trace.trials
                ],
            )
        )
        console.print(f"→ {trace.outcome} ({trace.reason}): {trace.reason_description}")


def render_case(console: Console, story: CaseStory) -> None:
    console.print(f"[bold]Case {story.case_ref}[/] ({story.source_system or 'unknown system'})")
    if story.quarantined:
        codes = ", ".join(sorted({r["code"] for r in story.quarantine_reasons}))
        console.print(f"[red]Quarantined[/]: {codes}")
        for r in story.quarantine_reasons:
            console.print(f"  {r['code']}: {r['table']}.{r['field']} {r.get('detail') or ''}")
    if story.facts:
        f = story.facts
        console.print(
            f"scheme {f['scheme']}, effective {f['effective_date']}, liability ended "
            f"{f['liability_end_date'] or '(ongoing)'}, enforcement "
            f"{f['enforcement_code'] or 'none'}, stop acting {f['stop_acting']}, "
            f"DV marker {f['dv_marker']}"
        )
        for who in ("pwc", "nrp"):
            p = f[who]
            console.print(
                f"{who.upper()} {p['party_ref']}: deceased {p['deceased_on'] or 'no'}, "
                f"employment {p['employment']}, NINO {'held' if p['has_nino'] else 'none'}, "
                f"address confirmed {p['address_verified_on'] or 'never'}"
            )
    if story.personal_data:
        for who, data in story.personal_data.items():
            console.print(
                f"[magenta]{who.upper()} personal data:[/] "
                + ", ".join(f"{k}={v}" for k, v in data.items() if v)
            )
    for debt in story.debts:
        _render_debt(console, debt)
    if story.letters:
        console.print(
            rich_table(
                "Letters",
                ["reference", "purpose", "to", "status", "held/failed", "date"],
                [
                    [
                        x["reference"],
                        x["purpose"],
                        x["recipient"],
                        x["status"],
                        x["held_reason"] or x["failure_reason"] or "",
                        x["letter_date"] or "",
                    ]
                    for x in story.letters
                ],
            )
        )
    if story.ledger:
        console.print(
            rich_table(
                "Ledger",
                ["entry", "type", "creditor", "amount", "reason", "rule", "as of", "by"],
                [
                    [
                        x["entry_id"],
                        x["entry_type"],
                        x["creditor"],
                        pounds(x["amount_pence"]),
                        x["reason"],
                        x["rule_id"] or "",
                        x["as_of"],
                        x["actor"],
                    ]
                    for x in story.ledger
                ],
                right=["amount"],
            )
        )
    console.print(
        rich_table(
            "Events",
            ["#", "as of", "event", "debt", "from", "to", "by", "run"],
            [
                [
                    x["event_id"],
                    x["as_of"],
                    x["event_type"],
                    x["debt_id"] or "",
                    x["from_state"] or "",
                    x["to_state"] or "",
                    x["actor"],
                    x["run_id"] or "",
                ]
                for x in story.events
            ],
        )
    )


@click.command()
@click.argument("case_ref")
@click.option(
    "--show-personal-data",
    is_flag=True,
    help="Also print both parents' names, dates of birth, NINOs and addresses. Only when you "
    "need them: the output then holds personal data.",
)
@format_option
@pass_state
def explain(state: CliState, case_ref: str, show_personal_data: bool, fmt: str) -> None:
    """Explain CASE_REF: its facts, each debt's features as evaluated, the rule rows tried
    up to the one that matched (with the parameters behind it), and the case's history.

    No personal data unless --show-personal-data is given.
    """
    story = explain_case(
        state.context(), case_ref.strip().upper(), personal_data=show_personal_data
    )
    emit(
        fmt,
        story,
        table=lambda c: render_case(c, story),
        csv_rows=lambda: (
            [
                {
                    "case_ref": story.case_ref,
                    "creditor": d.creditor,
                    "opening_pence": d.opening_pence,
                    "state": d.state,
                    "outcome": d.outcome,
                    "reason": d.reason,
                    "rule_id": d.rule_id,
                    "ruleset_hash": d.ruleset_hash,
                    "decided_as_of": d.decided_as_of,
                }
                for d in story.debts
            ],
            [
                "case_ref",
                "creditor",
                "opening_pence",
                "state",
                "outcome",
                "reason",
                "rule_id",
                "ruleset_hash",
                "decided_as_of",
            ],
        ),
    )
