"""Alembic environment for the working store.

Run through ``csa_closure.store.migrate`` (``csa-closure db upgrade``), which passes an open
connection in ``config.attributes["connection"]``; there is no alembic.ini to keep in step.
"""

from __future__ import annotations

from alembic import context

from csa_closure.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached if someone runs alembic directly
    raise RuntimeError("run migrations with `csa-closure db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
