"""Rendering results: rich tables for people, JSON and CSV for packs.

Library functions return plain data (dataclasses, dicts, lists); these helpers turn it into
output. JSON is stable: keys are snake_case, money is integer pence (``*_pence``), dates are
ISO ``YYYY-MM-DD``, instants ISO 8601 UTC. See docs/json-output.md.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from csa_closure.csvsafe import safe_cell
from csa_closure.reports.tables import FitTable, pounds, rich_table
from csa_closure.serialise import jsonable

if TYPE_CHECKING:
    from csa_closure.stages.contract_import import ImportSummary

__all__ = [
    "FitTable",
    "attribute_rows",
    "console",
    "count_rows",
    "echo_csv",
    "echo_json",
    "emit",
    "jsonable",
    "pounds",
    "rich_table",
]


def echo_json(value: Any) -> None:
    click.echo(json.dumps(jsonable(value), indent=2, ensure_ascii=False))


def echo_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(jsonable(v)) for k, v in row.items()})
    click.echo(buffer.getvalue(), nl=False)


def console() -> Console:
    # Piped output (a file, a pager, CI) gets room for wide tables instead of 80 columns.
    width = None if sys.stdout.isatty() else 160
    return Console(file=sys.stdout, soft_wrap=False, width=width)


def emit(
    fmt: str,
    result: Any,
    *,
    table: Callable[[Console], None],
    csv_rows: Callable[[], tuple[Iterable[Mapping[str, Any]], Sequence[str]]] | None = None,
) -> None:
    """Print ``result`` as ``fmt``: ``table`` draws it for people; ``csv_rows`` gives rows."""
    if fmt == "json":
        echo_json(result)
    elif fmt == "csv":
        if csv_rows is None:
            raise click.UsageError("this command has no CSV form; use --format json")
        rows, columns = csv_rows()
        echo_csv(rows, columns)
    else:
        table(console())


def count_rows(
    counts: Mapping[str, Any] | Iterable[Sequence[Any]], key: str, value: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows for a result that is one count per name: columns ``key`` and ``value``."""
    pairs: Iterable[Sequence[Any]] = counts.items() if isinstance(counts, Mapping) else counts
    return [{key: pair[0], value: pair[1]} for pair in pairs], [key, value]


def attribute_rows(
    items: Iterable[Any], columns: Sequence[str], **computed: Callable[[Any], Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """CSV rows of each item's attributes named by ``columns``; a column in ``computed`` is
    that function of the item instead (a renamed or joined attribute, or a constant)."""
    rows = [
        {c: computed[c](item) if c in computed else getattr(item, c) for c in columns}
        for item in items
    ]
    return rows, list(columns)


def exit_if_all_rejected(rows: int, rejected: int, rejects_file: str | None) -> None:
    """A file import in which every row was rejected exits ``ExitCode.ALL_REJECTED`` (after
    its figures are printed), so a script sees that nothing in the file was used."""
    from csa_closure.errors import ExitCode

    if rows and rejected == rows:
        where = f"; see {rejects_file}" if rejects_file else ""
        click.echo(
            f"Error: every one of the file's {rows:,} rows was rejected{where}. Nothing in it "
            "was used: check it is the right file and its columns, then import a corrected one.",
            err=True,
        )
        raise SystemExit(ExitCode.ALL_REJECTED)


def note_waiting(ctx: Any, command: str) -> None:
    """Refuse ``command`` (``NotReady``) when it could do nothing because ``assess`` has not
    run; otherwise say on stderr how many debts wait for it and are not in this run."""
    from csa_closure.stages.readiness import waiting_for_assess

    pulled = waiting_for_assess(ctx, command)
    if pulled:
        click.echo(
            f"Note: {pulled:,} debt(s) are waiting to be assessed and are not in this "
            f"{command}. Run csa-closure assess first to include them.",
            err=True,
        )


def import_count_rows(summary: ImportSummary) -> list[tuple[str, int]]:
    """The counts every contract-file import reports, in order: rows, accepted, duplicate,
    rejected, and rejected by reason."""
    return [
        ("rows in the file", summary.rows),
        ("accepted", summary.accepted),
        ("duplicate", summary.duplicates),
        ("rejected", summary.rejected),
        *((f"  rejected {code}", n) for code, n in summary.rejected_by_reason.items()),
    ]


def print_already_imported(console: Console, summary: ImportSummary) -> None:
    """Say that a file was imported before (its counts follow), if it was."""
    if summary.already_imported:
        console.print(
            f"[yellow]{summary.file_name} was already imported (import {summary.import_id}, "
            f"run {summary.run_id}): nothing changed.[/] Its counts:"
        )
