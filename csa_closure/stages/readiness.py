"""Stages out of order: a stage run before the one it needs says so, with the command to run.

``resolve``, ``notify build`` and ``transfer export`` work on debts that ``assess`` decided.
On a store with nothing pulled, or with every debt still waiting for ``assess``, they could
do nothing, so they refuse with ``NotReady`` (its own exit code) naming the command to run
first; when only some debts wait, they go ahead and the operator is told how many wait.
"""

from __future__ import annotations

from sqlalchemy import case, func, select

from csa_closure.context import Context
from csa_closure.domain.states import DebtState
from csa_closure.errors import NotReady
from csa_closure.store.schema import debts


def waiting_for_assess(ctx: Context, command: str) -> int:
    """How many debts wait for ``assess``; refuses (``NotReady``) when ``command`` could do
    nothing because nothing is pulled, or nothing is decided yet."""
    waiting = debts.c.state == DebtState.PULLED.value
    with ctx.engine.connect() as conn:
        total, pulled = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((waiting, 1), else_=0)), 0))
        ).one()
    if not total:
        raise NotReady(
            f"{command} has nothing to work on: no debt has been pulled yet. "
            "Run first: csa-closure pull --source …, then csa-closure assess"
        )
    if pulled == total:
        raise NotReady(
            f"{command} has nothing to work on: all {total:,} debts are waiting to be "
            "assessed. Run first: csa-closure assess"
        )
    return int(pulled)
