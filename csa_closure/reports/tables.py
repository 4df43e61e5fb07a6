"""Tables that fit the terminal, and money as people read it: the rendering primitives
every report and every command's table output use (rich). No command-line code here, so
reports and the CLI both import it and neither imports the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text


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
        ranges = []
        for column in self.columns:
            m = self._measure_column(console, options, column)
            # a column that must not wrap needs its widest cell, or it is dropped or stacked
            ranges.append((m.maximum, m.maximum) if column.no_wrap else (m.minimum, m.maximum))
        return ranges

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
    whole: Iterable[str] = (),
) -> Table:
    """A :class:`FitTable`: ``right`` columns right-aligned, ``drop`` the columns to leave out
    first when the terminal is too narrow, ``whole`` the columns whose cells are never
    wrapped (a value with its note, such as "£600.00 (--set)", read as one)."""
    right_set, whole_set = set(right), set(whole)
    table = FitTable(title=title, title_justify="left", drop=drop)
    for name in columns:
        table.add_column(
            name, justify="right" if name in right_set else "left", no_wrap=name in whole_set
        )
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table
