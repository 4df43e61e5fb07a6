"""Options and state shared by the commands, defined once (the one home of CLI options that
more than one command takes).

Commands take the root's state with ``@pass_state`` and open the working store with
``state.context()``, which refuses (with the command to run) when the schema is not current.
``@format_option`` gives a command ``--format table|json|csv``; ``out_option``,
``seed_option``, ``cases_option``, ``rejects_option``, ``limit_option`` and ``rules_options``
the options of those names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from csa_closure.context import Context, Settings

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("table", "json", "csv")


class IsoDate(click.ParamType):
    """A calendar date written YYYY-MM-DD."""

    name = "YYYY-MM-DD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD", param, ctx)


ISO_DATE = IsoDate()


@dataclass
class CliState:
    db_url: str
    as_of: date
    actor: str
    allow_as_of: bool = False
    settings: Settings = field(default_factory=Settings.from_environment)
    log_file: str | None = None
    letters_config: str | None = None  # from the configuration file, if it names one
    _context: Context | None = None

    def context(self, *, require_schema: bool = True, create: bool = False) -> Context:
        """The run context; checks the store's schema unless asked not to (``db`` commands).
        Only ``create`` (``db upgrade``) makes a new SQLite store file; every other command
        refuses a store that does not exist rather than leave an empty file behind."""
        # SQLAlchemy and Alembic are imported here, by the commands that open a store, so
        # that --help and --version start in a fraction of a second
        from csa_closure.store.engine import make_engine
        from csa_closure.store.migrate import require_current

        if self._context is None:
            self._context = Context(
                engine=make_engine(self.db_url, create=create),
                as_of=self.as_of,
                actor=self.actor,
                settings=self.settings,
                log_file=self.log_file,
                guard_as_of=True,
                allow_as_of=self.allow_as_of,
            )
        if require_schema:
            require_current(self._context.engine)
        return self._context


pass_state = click.make_pass_decorator(CliState)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people; json (stable: `csa-closure docs json`) or csv for packs.",
    )(func)


# how many rows a list prints as a table unless --limit says otherwise (csv and json: all)
TABLE_LIMIT = 50


def limit_option(what: str) -> Callable[[F], F]:
    """``--limit N``: at most N ``what`` listed (table default TABLE_LIMIT; csv, json: all)."""
    return click.option(
        "--limit",
        type=click.IntRange(min=1),
        help=f"At most this many {what} (table default {TABLE_LIMIT}; csv and json: all).",
    )


def list_limit(limit: int | None, fmt: str) -> int | None:
    """The rows to fetch for a list: ``--limit``, else TABLE_LIMIT for a table, else all."""
    return limit if limit is not None else TABLE_LIMIT if fmt == "table" else None


def parse_sets(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", ctx=ctx, param=param)
        overrides[name.strip()] = value.strip()
    return overrides


def rules_options(func: F) -> F:
    """``--rules DIR`` and ``--set NAME=VALUE`` (repeatable), for commands that load rules."""
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        callback=parse_sets,
        metavar="NAME=VALUE",
        help="Override a rule parameter for this run, type-checked (repeatable), "
        "e.g. --set threshold_pence=60000.",
    )(func)
    return click.option(
        "--rules",
        "rules_dir",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=None,
        help="Rule set directory (default: the approved rules shipped with csa-closure).",
    )(func)


def out_option(
    help: str, *, directory: bool = False, required: bool = True, dest: str = "out"
) -> Callable[[F], F]:
    """``--out PATH``: the file (or, with ``directory``, the folder) a command writes."""
    return click.option(
        "--out",
        dest,
        required=required,
        type=click.Path(file_okay=not directory, dir_okay=directory, path_type=Path),
        help=help,
    )


def seed_option(help: str, *, default: int | None = None) -> Callable[[F], F]:
    """``--seed N`` of a simulation: required unless it has a ``default``."""
    if default is None:
        return click.option("--seed", type=int, required=True, help=help)
    return click.option("--seed", type=int, default=default, show_default=True, help=help)


def cases_option(help: str, *, minimum: int, default: int | None = None) -> Callable[[F], F]:
    """``--cases N``: how many legacy cases a simulation generates."""
    if default is None:
        return click.option("--cases", type=click.IntRange(min=minimum), required=True, help=help)
    return click.option(
        "--cases", type=click.IntRange(min=minimum), default=default, show_default=True, help=help
    )


def rejects_option(columns: str) -> Callable[[F], F]:
    """``--rejects PATH``: where a file import writes the rows it rejected."""
    return click.option(
        "--rejects",
        "rejects_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Where to write the rejected rows (owner-only CSV: {columns}). Default: FILE's "
        "name with .rejects.csv, beside it.",
    )
