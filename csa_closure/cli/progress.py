"""Rich progress bars for the library's ``Progress`` protocol (drawn on stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RichProgress:
    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int | None) -> None:
        if task in self._tasks:
            self._progress.update(self._tasks[task], total=total, completed=0)
        else:
            self._tasks[task] = self._progress.add_task(task, total=total)

    def advance(self, task: str, n: int = 1) -> None:
        if task not in self._tasks:
            self.start(task, None)
        self._progress.advance(self._tasks[task], n)

    def finish(self, task: str) -> None:
        if task in self._tasks:
            t = self._progress.tasks[self._tasks[task]]
            if t.total is None:
                self._progress.update(self._tasks[task], total=t.completed)
            else:
                self._progress.update(self._tasks[task], completed=t.total)


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[RichProgress]:
    """Progress bars on stderr, so --format json on stdout stays clean."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or not console.is_terminal,
        transient=False,
    ) as progress:
        yield RichProgress(progress)
