"""debts.state: a CHECK that it holds one of the state machine's states

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:00:00

The states are written out here as they stand at this revision (a migration must not change
when the code does); tests/store/test_store.py checks they match ``DebtState``, so a new state
fails there until a migration widens the CHECK. An existing store whose debts hold a state
outside the list is refused, naming the states and how many debts hold them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = (
    "pulled",
    "closed",
    "write_off_pending",
    "awaiting_letter",
    "awaiting_response",
    "collect_requested",
    "transfer_ready",
    "transfer_sent",
    "transferred",
    "review",
    "written_off",
)
CHECK = "state IN (" + ", ".join(f"'{state}'" for state in STATES) + ")"


def upgrade() -> None:
    conn = op.get_bind()
    strays = conn.execute(
        sa.text("SELECT state, count(*) FROM debts WHERE state NOT IN :states GROUP BY state")
        .bindparams(sa.bindparam("states", expanding=True))
        .params(states=list(STATES))
    ).all()
    if strays:
        found = ", ".join(f"{state!r} ({n} debts)" for state, n in strays)
        raise RuntimeError(
            f"cannot add the debts.state CHECK: debts hold states the state machine does not "
            f"know: {found}. Correct them (with a caseworker) and run `db upgrade` again."
        )
    # SQLite rebuilds the table (batch mode); PostgreSQL adds the constraint in place
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_debts_state"), sa.text(CHECK))


def downgrade() -> None:
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_debts_state"), type_="check")
