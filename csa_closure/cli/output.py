"""Rendering results: rich tables for people, JSON and CSV for packs.

Library functions return plain data (dataclasses, dicts, lists); these helpers turn it into
output. JSON is stable: keys are snake_case, money is integer pence (``*_pence``), dates are
ISO ``YYYY-MM-DD``, instants ISO 8601 UTC. See docs/json-output.md.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import click
from rich.console import Console

from csa_closure.csvsafe import safe_cell
from csa_closure.reports.tables import FitTable, pounds, rich_table

__all__ = [
    "FitTable",
    "console",
    "echo_csv",
    "echo_json",
    "emit",
    "jsonable",
    "pounds",
    "rich_table",
]


def jsonable(value: Any) -> Any:
    """Plain JSON values for results built from dataclasses, dates, enums and decimals."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "to_json"):
            return jsonable(value.to_json())
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


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
