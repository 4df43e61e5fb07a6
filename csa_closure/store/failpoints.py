"""Failpoints: kill or pause this process at a chosen point, to prove re-runs are safe.

Set ``CSA_CLOSURE_FAILPOINT`` to ``STAGE:N:WHERE`` and the process kills itself (a real
``kill -9``: no clean-up, no except blocks, no finally) the Nth time stage STAGE reaches
WHERE. Every stage passes through ``Run.chunk()``, which reaches ``before_commit`` (the
chunk's writes are done but not committed) and ``after_commit``; stages may name other
points (e.g. the letters stage's ``after_send``). ``STAGE`` may be ``*``.

``STAGE:N:WHERE:pause`` pauses there instead: the process writes its pid to the file named by
``CSA_CLOSURE_FAILPOINT_PAUSE`` and waits until that file is deleted, then carries on. A test
uses it to hold a run in the middle of its work (its lease held, at ``before_commit`` its
transaction open) while it starts a second operator or stops the database.

Fault tests use this; it does nothing unless the variable is set.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

ENV = "CSA_CLOSURE_FAILPOINT"
PAUSE_FILE_ENV = "CSA_CLOSURE_FAILPOINT_PAUSE"
_reached: Counter[tuple[str, str]] = Counter()


def reach(stage: str, where: str) -> None:
    """Count one arrival of ``stage`` at ``where``; die (or pause) here if the failpoint says
    so."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    _reached[(stage, where)] += 1
    target_stage, n, target_where, *action = spec.split(":")
    if (
        target_stage in ("*", stage)
        and target_where == where
        and _reached[(stage, where)] == int(n)
    ):
        if action == ["pause"]:
            _pause(Path(os.environ[PAUSE_FILE_ENV]))
        else:
            os.kill(os.getpid(), signal.SIGKILL)


def _pause(flag: Path) -> None:
    flag.write_text(str(os.getpid()))
    while flag.exists():
        time.sleep(0.02)
