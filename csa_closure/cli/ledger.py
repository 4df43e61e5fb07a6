"""``csa-closure ledger``: the write-off ledger for finance, and reversing a wrong write-off."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

import click
from rich.console import Console

from csa_closure.cli.output import console, emit, jsonable, pounds, rich_table
from csa_closure.cli.params import (
    ISO_DATE,
    TABLE_LIMIT,
    CliState,
    format_option,
    limit_option,
    pass_state,
)
from csa_closure.csvsafe import safe_row
from csa_closure.domain.codes import LedgerEntryType
from csa_closure.stages.ledger import (
    LedgerEntry,
    LedgerTotals,
    iter_entries,
    ledger_totals,
    reverse_entry,
)

COLUMNS = [f.name for f in dataclasses.fields(LedgerEntry)]


@click.group()
def ledger() -> None:
    """The append-only write-off ledger: list it for finance, reverse a wrong write-off.

    Runbook: `csa-closure docs resolve`.
    """


def _stream_csv(entries: Any) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow(safe_row([jsonable(getattr(entry, c)) for c in COLUMNS]))


def _stream_json(totals: LedgerTotals, entries: Any) -> None:
    # entries are streamed: the whole ledger is too large to build in memory as one document
    out = sys.stdout
    out.write('{\n  "totals": ' + json.dumps(jsonable(totals)) + ',\n  "entries": [')
    for i, entry in enumerate(entries):
        out.write(("," if i else "") + "\n    " + json.dumps(jsonable(entry)))
    out.write("\n  ]\n}\n")


def render_ledger(console: Console, totals: LedgerTotals, entries: list[LedgerEntry]) -> None:
    console.print(
        rich_table(
            f"Ledger (first {len(entries)} of {totals.entries:,} entries; "
            "--format csv for all of them)",
            [
                "entry",
                "case",
                "creditor",
                "type",
                "amount",
                "reason",
                "rule",
                "as of",
                "run",
                "reverses",
                "reversed by",
            ],
            [
                [
                    e.entry_id,
                    e.case_ref,
                    e.creditor,
                    e.entry_type,
                    pounds(e.amount_pence),
                    e.reason,
                    e.rule_id,
                    e.as_of,
                    e.run_id,
                    e.reverses_entry_id,
                    e.reversed_by_entry_id,
                ]
                for e in entries
            ],
            right=["amount"],
        )
    )
    console.print(
        rich_table(
            "Totals",
            ["creditor", "write-offs", "written off", "reversals", "reversed", "net"],
            [
                [
                    creditor,
                    f"{c['write_offs']:,}",
                    pounds(c["written_off_pence"]),
                    f"{c['reversals']:,}",
                    pounds(c["reversed_pence"]),
                    pounds(c["net_pence"]),
                ]
                for creditor, c in totals.by_creditor.items()
            ]
            + [
                [
                    "all",
                    f"{totals.write_offs:,}",
                    pounds(totals.written_off_pence),
                    f"{totals.reversals:,}",
                    pounds(totals.reversed_pence),
                    pounds(totals.net_pence),
                ]
            ],
            right=["write-offs", "written off", "reversals", "reversed", "net"],
        )
    )


@ledger.command(name="list")
@click.option("--case", "case_ref", help="Only the entries of this case.")
@click.option(
    "--type",
    "entry_type",
    type=click.Choice([kind.value for kind in LedgerEntryType]),
    help="Only write-offs or only reversals.",
)
@click.option("--on", "on_date", type=ISO_DATE, help="Only entries made for this as-of date.")
@limit_option("entries")
@format_option
@pass_state
def list_command(
    state: CliState,
    case_ref: str | None,
    entry_type: str | None,
    on_date: date | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List ledger entries in entry order, with totals per creditor (net of reversals).

    CSV columns (and JSON entry keys): entry_id, debt_id, case_ref, source_system,
    creditor, entry_type, amount_pence, reason, rule_id, ruleset_hash, run_id, actor,
    as_of, recorded_at, reverses_entry_id, reversed_by_entry_id. JSON: {totals: {entries,
    write_offs, reversals, written_off_pence, reversed_pence, net_pence, by_creditor},
    entries: [...]}.
    """
    ctx = state.context()

    def entries_up_to(most: int | None) -> Iterator[LedgerEntry]:
        return iter_entries(
            ctx, case_ref=case_ref, entry_type=entry_type, as_of=on_date, limit=most
        )

    if fmt == "csv":
        _stream_csv(entries_up_to(limit))
        return
    totals = ledger_totals(ctx, case_ref=case_ref, entry_type=entry_type, as_of=on_date)
    if fmt == "json":
        _stream_json(totals, entries_up_to(limit))
        return
    entries = list(entries_up_to(limit or TABLE_LIMIT))
    render_ledger(console(), totals, entries)


@ledger.command(name="reverse")
@click.argument("entry_id", metavar="ENTRY", type=int)
@click.option(
    "--reason",
    required=True,
    help="Why, as a code in capitals (e.g. LATE_COMPLAINT_UPHELD, WRITTEN_OFF_IN_ERROR).",
)
@format_option
@pass_state
def reverse_command(state: CliState, entry_id: int, reason: str, fmt: str) -> None:
    """Reverse write-off ENTRY by a mirror entry; the debt goes back to review.

    Refused when ENTRY is a reversal, was already reversed, or its debt has since moved on.
    JSON keys: run_id, entry_id, reversal_entry_id, debt_id, case_ref, creditor,
    amount_pence (negative), reason, debt_state, book.
    """
    ctx = state.context()
    result = reverse_entry(ctx, entry_id, reason)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            f"Entry {result.entry_id} reversed by entry {result.reversal_entry_id} "
            f"({pounds(result.amount_pence)}, {result.reason}); {result.case_ref} "
            f"{result.creditor} is back in review for a caseworker (`csa-closure review "
            f"decide {result.case_ref} --creditor {result.creditor} ...`)."
        ),
        csv_rows=lambda: (
            [result.to_json()],
            ["run_id", "entry_id", "reversal_entry_id", "case_ref", "creditor", "amount_pence"],
        ),
    )
