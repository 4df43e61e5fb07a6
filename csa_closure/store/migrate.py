"""Schema migrations as plain functions: upgrade, status, and the is-it-current guard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from csa_closure.errors import SchemaNotCurrent
from csa_closure.store.dialect import impl_for

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def status(engine: Engine) -> SchemaStatus:
    return SchemaStatus(current=current_revision(engine), head=head_revision())


def upgrade(engine: Engine, revision: str = "head") -> SchemaStatus:
    """Bring the store to ``revision`` (default: the newest). Safe to run again."""
    config = _config()
    with engine.connect() as conn, impl_for(conn).schema_upgrade(conn):
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return status(engine)


def require_current(engine: Engine) -> None:
    """Refuse to work on a store whose schema is not the one this code was written for."""
    st = status(engine)
    if st.is_current:
        return
    if st.current is None:
        raise SchemaNotCurrent(
            "the working store has no csa-closure schema yet. Run: csa-closure db upgrade"
        )
    raise SchemaNotCurrent(
        f"the working store's schema is at revision {st.current}, but this version of "
        f"csa-closure needs {st.head}. Run: csa-closure db upgrade"
    )
