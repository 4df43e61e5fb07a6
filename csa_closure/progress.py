"""Progress reporting from library code, without printing.

Stages report through a ``Progress`` they are given; the CLI passes one that draws rich
progress bars, tests and the library default pass ``NO_PROGRESS``.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, task: str, total: int | None) -> None: ...

    def advance(self, task: str, n: int = 1) -> None: ...

    def finish(self, task: str) -> None: ...


class _NoProgress:
    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, n: int = 1) -> None:
        pass

    def finish(self, task: str) -> None:
        pass


NO_PROGRESS: Progress = _NoProgress()


class Relabelled:
    """A ``Progress`` that renames tasks starting ``old`` to start ``new`` instead (one
    system's pull: "pull: loading cases" -> "pull CS2: loading cases")."""

    def __init__(self, inner: Progress, old: str, new: str) -> None:
        self.inner, self.old, self.new = inner, old, new

    def _name(self, task: str) -> str:
        return self.new + task[len(self.old) :] if task.startswith(self.old) else task

    def start(self, task: str, total: int | None) -> None:
        self.inner.start(self._name(task), total)

    def advance(self, task: str, n: int = 1) -> None:
        self.inner.advance(self._name(task), n)

    def finish(self, task: str) -> None:
        self.inner.finish(self._name(task))
