"""stage runs name their log file

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # the JSON-lines log a run wrote to (--log-file); NULL when it wrote none
    op.add_column("stage_runs", sa.Column("log_file", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stage_runs") as batch:
        batch.drop_column("log_file")
