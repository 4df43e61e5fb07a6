"""``csa-closure db``: create and upgrade the working store's schema."""

from __future__ import annotations

import click

from csa_closure.cli.output import emit, rich_table
from csa_closure.cli.params import CliState, format_option, pass_state
from csa_closure.errors import ExitCode
from csa_closure.store import migrate
from csa_closure.store.engine import redacted


@click.group()
def db() -> None:
    """Create, upgrade and inspect the working store's schema."""


def _status_json(state: CliState, st: migrate.SchemaStatus) -> dict[str, object]:
    return {
        "database": redacted(state.db_url),
        "current_revision": st.current,
        "head_revision": st.head,
        "is_current": st.is_current,
    }


@db.command()
@format_option
@pass_state
def upgrade(state: CliState, fmt: str) -> None:
    """Create the store or bring its schema up to date. Safe to run again."""
    ctx = state.context(require_schema=False, create=True)
    st = migrate.upgrade(ctx.engine)
    result = _status_json(state, st)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            f"Working store {result['database']} is at schema revision {st.current} (current)."
        ),
        csv_rows=lambda: ([result], list(result)),
    )


@db.command()
@format_option
@pass_state
def status(state: CliState, fmt: str) -> None:
    """Show the store's schema revision and whether it is current."""
    ctx = state.context(require_schema=False)
    st = migrate.status(ctx.engine)
    result = _status_json(state, st)
    emit(
        fmt,
        result,
        table=lambda c: c.print(
            rich_table(
                "Working store schema",
                ["database", "current", "needed", "state"],
                [
                    [
                        result["database"],
                        st.current or "(none)",
                        st.head,
                        "current" if st.is_current else "run: csa-closure db upgrade",
                    ]
                ],
            )
        ),
        csv_rows=lambda: ([result], list(result)),
    )
    if not st.is_current:
        raise SystemExit(ExitCode.SCHEMA_NOT_CURRENT)
