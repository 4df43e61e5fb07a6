"""Failpoints: kill this process with SIGKILL at a chosen point, to prove re-runs are safe.

Set ``CSA_CLOSURE_FAILPOINT`` to ``STAGE:N:WHERE`` and the process kills itself (a real
``kill -9``: no clean-up, no except blocks, no finally) the Nth time stage STAGE reaches
WHERE. Every stage passes through ``Run.chunk()``, which reaches ``before_commit`` (the
chunk's writes are done but not committed) and ``after_commit``; stages may name other
points (e.g. the letters stage's ``after_send``). ``STAGE`` may be ``*``.

Fault tests use this; it does nothing unless the variable is set.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "CSA_CLOSURE_FAILPOINT"
_reached: Counter[tuple[str, str]] = Counter()


def reach(stage: str, where: str) -> None:
    """Count one arrival of ``stage`` at ``where``; die here if the failpoint says so."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    _reached[(stage, where)] += 1
    target_stage, n, target_where = spec.split(":")
    if (
        target_stage in ("*", stage)
        and target_where == where
        and _reached[(stage, where)] == int(n)
    ):
        os.kill(os.getpid(), signal.SIGKILL)
