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
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from csa_closure.csvsafe import safe_cell


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


def pounds(pence: int | None) -> str:
    """£1,234.56 from integer pence, for people. Exact: no floats."""
    if pence is None:
        return ""
    sign = "-" if pence < 0 else ""
    whole, part = divmod(abs(int(pence)), 100)
    return f"{sign}£{whole:,}.{part:02d}"


class FitTable(Table):
    """A table that fits the terminal without cutting a word: no amount, date, code or case
    reference is ever split across lines or truncated.

    At render time each column's narrowest (its longest word) and widest (its longest cell)
    widths are measured. If the widest fit, the table is drawn as it is; if the narrowest fit,
    the spare room is shared out from there (prose wraps between words); if not, the columns
    named in ``drop`` are left out, in that order, until it fits, and the title says which;
    and if even that is too wide, each row is stacked as ``column: value`` lines.
    """

    def __init__(self, *args: Any, drop: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop = tuple(drop)

    def _ranges(self, console: Console, options: ConsoleOptions) -> list[tuple[int, int]]:
        return [
            (m.minimum, m.maximum)
            for m in (self._measure_column(console, options, c) for c in self.columns)
        ]

    def _fits(self, console: Console, options: ConsoleOptions) -> bool:
        available = options.max_width - self._extra_width
        return sum(low for low, _ in self._ranges(console, options)) <= available

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        ranges = self._ranges(console, options)
        available = options.max_width
        widths = [high for _, high in ranges]
        if sum(widths) <= available:
            return widths
        # from the narrowest, share what is left in proportion to what each column wants
        widths = [low for low, _ in ranges]
        spare = available - sum(widths)
        wants = [high - low for low, high in ranges]
        total = sum(wants)
        for i, want in enumerate(wants):
            give = min(want, spare * want // total) if total else 0
            widths[i] += give
        leftover = available - sum(widths)
        for i, (_, high) in enumerate(ranges):  # the remainder of the division, in order
            give = min(leftover, high - widths[i])
            widths[i] += give
            leftover -= give
        return widths

    def _without(self, names: set[str]) -> FitTable:
        kept = [c for c in self.columns if str(c.header) not in names]
        narrower = FitTable(
            title=f"{self.title} (not shown for width: {', '.join(sorted(names))})"
            if self.title
            else None,
            title_justify=self.title_justify,
        )
        for column in kept:
            narrower.columns.append(dataclasses.replace(column, _index=len(narrower.columns)))
        narrower.rows = self.rows
        return narrower

    def _stacked(self) -> Group:
        parts: list[Any] = []
        if self.title:
            parts.append(
                Text.from_markup(f"[italic]{self.title}[/]")
                if isinstance(self.title, str)
                else self.title
            )
        headers = [str(c.header) for c in self.columns]
        for i in range(self.row_count):
            grid = Table.grid(padding=(0, 1))
            grid.add_column(style="dim", no_wrap=True)
            grid.add_column()
            for header, column in zip(headers, self.columns, strict=True):
                grid.add_row(f"{header}:", column._cells[i])
            parts.append(grid)
            parts.append(Text(""))
        return Group(*parts)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.columns or self._fits(console, options):
            yield from super().__rich_console__(console, options)
            return
        dropped: set[str] = set()
        present = {str(c.header) for c in self.columns}
        for name in self.drop:
            if name not in present:
                continue
            dropped.add(name)
            narrower = self._without(dropped)
            if narrower._fits(console, options):
                yield from narrower.__rich_console__(console, options)
                return
        yield self._stacked()


def rich_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    right: Iterable[str] = (),
    drop: Sequence[str] = (),
) -> Table:
    """A :class:`FitTable`: ``right`` columns right-aligned, ``drop`` the columns to leave out
    first when the terminal is too narrow."""
    right_set = set(right)
    table = FitTable(title=title, title_justify="left", drop=drop)
    for name in columns:
        table.add_column(name, justify="right" if name in right_set else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


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
