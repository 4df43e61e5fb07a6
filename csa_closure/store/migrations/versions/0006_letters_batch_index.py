"""letters: drop the index on batch_id alone

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:10:00

``ix_letters_batch_id_status_letter_id`` begins with ``batch_id``, so it serves every lookup
the single-column index did. Each letter is written three times or more (built, sending,
sent, ...); on PostgreSQL every change of status adds an entry to each of the table's
indexes, so one fewer is a sixth less index work per change.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_letters_batch_id", table_name="letters")


def downgrade() -> None:
    op.create_index("ix_letters_batch_id", "letters", ["batch_id"], unique=False)
