"""``csa-closure responses``: import the channels' response files; record a phone response."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from sqlalchemy import select

from csa_closure.cli.output import (
    count_rows,
    emit,
    exit_if_all_rejected,
    import_count_rows,
    print_already_imported,
    rich_table,
)
from csa_closure.cli.params import ISO_DATE, CliState, format_option, pass_state, rejects_option
from csa_closure.cli.progress import progress_bars
from csa_closure.stages.responses import (
    CHANNELS,
    NRP_RESPONSES,
    PWC_RESPONSES,
    RecordResult,
    ResponseImportResult,
    import_responses,
    record_response,
)
from csa_closure.store.schema import response_imports


@click.group()
def responses() -> None:
    """Parents' answers to the final-chance letter: import files, record phone calls.

    Every row of a file ends accepted, duplicate or rejected with a reason code; rejected
    rows go to a rejects file for the contact centre. Runbook: `csa-closure docs responses`.
    """


def _counts_rows(result: ResponseImportResult) -> list[list[Any]]:
    rows: list[list[Any]] = [[label, n] for label, n in import_count_rows(result)]
    rows += [[f"debts: {action.replace('_', ' ')}", n] for action, n in result.actions.items()]
    return rows


def render_import(console: Console, result: ResponseImportResult) -> None:
    print_already_imported(console, result)
    console.print(
        rich_table(
            f"Responses from {result.file_name}",
            ["", "count"],
            _counts_rows(result),
            right=["count"],
        )
    )
    if result.ignored_columns:
        console.print(f"Columns not in the contract, ignored: {', '.join(result.ignored_columns)}")
    if result.rejects_file:
        console.print(f"Rejected rows for the contact centre: {result.rejects_file}")
    if result.book is not None:
        verdict = "[green]balanced[/]" if result.book.balanced else "[red]NOT BALANCED[/]"
        console.print(f"Books after the import: {verdict}")


@responses.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@rejects_option("row, document id, case, reason code, detail")
@format_option
@pass_state
def import_command(state: CliState, file: Path, rejects_path: Path | None, fmt: str) -> None:
    """Import a parent-response FILE (CSV: document_id, case_ref, party, response,
    received_on, channel; any order; UTF-8).

    A file missing a required column is refused before anything is written. Importing the
    same file again changes nothing (recognised by its SHA-256). JSON keys: run_id,
    import_id, file_name, file_sha256, already_imported, rows, accepted, duplicates,
    rejected, rejected_by_reason, actions, rejects_file, ignored_columns, book.
    """
    ctx = state.context()
    with progress_bars(fmt == "table") as progress:
        result = import_responses(ctx, file, rejects_path=rejects_path, progress=progress)
    emit(
        fmt,
        result,
        table=lambda c: render_import(c, result),
        csv_rows=lambda: count_rows(_counts_rows(result), "item", "count"),
    )
    exit_if_all_rejected(result.rows, result.rejected, result.rejects_file)


def render_record(console: Console, result: RecordResult) -> None:
    if result.status == "duplicate":
        console.print(f"[yellow]{result.document_id} is already recorded: nothing changed.[/]")
        return
    moved = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.actions.items())
    console.print(
        f"Recorded {result.document_id} for {result.case_ref} (run {result.run_id}): {moved}."
    )


@responses.command(name="record")
@click.argument("case_ref")
@click.option(
    "--party",
    type=click.Choice(["PWC", "NRP"]),
    required=True,
    help="Who answered: PWC (person with care) or NRP (paying parent).",
)
@click.option(
    "--response",
    "answer",
    type=click.Choice([*PWC_RESPONSES, *NRP_RESPONSES]),
    required=True,
    help="COLLECT or DO_NOT_COLLECT from the PWC; DISPUTE_AMOUNT from the NRP.",
)
@click.option(
    "--received-on",
    type=ISO_DATE,
    help="The day the answer was received, YYYY-MM-DD (default: the --as-of date).",
)
@click.option(
    "--channel",
    type=click.Choice(CHANNELS),
    default="PHONE",
    show_default=True,
    help="How the answer came in.",
)
@click.option(
    "--document-id",
    help="The call record's id. Default: one made of channel, case, party, response and "
    "date, so recording the same call twice is a duplicate.",
)
@format_option
@pass_state
def record_command(
    state: CliState,
    case_ref: str,
    party: str,
    answer: str,
    received_on: date | None,
    channel: str,
    document_id: str | None,
    fmt: str,
) -> None:
    """Record one response for CASE_REF (usually a phone call), by the same rules as a file.

    A response that breaks a rule is refused with its reason code (exit 2) and nothing is
    written. JSON keys: run_id, document_id, case_ref, status (accepted|duplicate), actions,
    book.
    """
    ctx = state.context()
    result = record_response(
        ctx,
        case_ref,
        party=party,
        response=answer,
        received_on=received_on,
        channel=channel,
        document_id=document_id,
    )
    emit(
        fmt,
        result,
        table=lambda c: render_record(c, result),
        csv_rows=lambda: ([result.to_json()], ["run_id", "document_id", "case_ref", "status"]),
    )


@responses.command(name="imports")
@click.option(
    "--kind",
    type=click.Choice(["responses", "cms_ack", "all"]),
    default="all",
    show_default=True,
    help="Parent-response files, CMS acknowledgements, or both.",
)
@format_option
@pass_state
def imports_command(state: CliState, kind: str, fmt: str) -> None:
    """List the files imported so far, with their counts (no personal data).

    JSON: a list of {import_id, kind, file_name, file_sha256, run_id, row_count, accepted,
    duplicates, rejected, imported_at}.
    """
    ctx = state.context()
    statement = select(response_imports).order_by(response_imports.c.import_id)
    if kind != "all":
        statement = statement.where(response_imports.c.kind == kind)
    with ctx.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(statement)]
    columns = [
        "import_id",
        "kind",
        "file_name",
        "file_sha256",
        "run_id",
        "row_count",
        "accepted",
        "duplicates",
        "rejected",
        "imported_at",
    ]
    emit(
        fmt,
        rows,
        table=lambda c: c.print(
            rich_table(
                f"Imported files ({len(rows)})",
                ["id", "kind", "file", "sha256", "rows", "accepted", "dup", "rejected", "at"],
                [
                    [
                        r["import_id"],
                        r["kind"],
                        r["file_name"],
                        r["file_sha256"][:12],
                        r["row_count"],
                        r["accepted"],
                        r["duplicates"],
                        r["rejected"],
                        f"{r['imported_at']:%Y-%m-%d %H:%M}",
                    ]
                    for r in rows
                ],
                right=["rows", "accepted", "dup", "rejected"],
            )
        ),
        csv_rows=lambda: (rows, columns),
    )
