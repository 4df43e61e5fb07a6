"""The ``csa-closure`` command: a thin Click layer over the library.

Each command parses its options, builds the context, calls one library function and renders
the result. Command groups live one per module and are registered here.
"""

from __future__ import annotations

import importlib
import logging
import signal
from datetime import date
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from csa_closure import __version__
from csa_closure.cli.params import ISO_DATE, CliState
from csa_closure.config import load_config
from csa_closure.context import (
    ACTOR_ENV,
    AS_OF_ENV,
    DB_ENV,
    DEFAULT_DB_URL,
    Settings,
    default_actor,
)
from csa_closure.errors import CsaClosureError, ExitCode, Terminated
from csa_closure.logs import LOG_FILE_ENV, configure_logging

log = logging.getLogger(__name__)


class OperatorError(click.ClickException):
    """A ``CsaClosureError`` shown as ``Error: …`` with its own exit code, no traceback."""

    def __init__(self, error: CsaClosureError) -> None:
        super().__init__(str(error))
        self.exit_code = error.exit_code  # type: ignore[misc]  # click reads it per instance


class CsaGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CsaClosureError as exc:
            raise OperatorError(exc) from exc
        except KeyboardInterrupt as exc:
            # Ctrl-C or SIGTERM: the stage unwound (open chunk rolled back, run marked
            # interrupted, leases released); one line, no traceback, the signal's exit code
            terminated = isinstance(exc, Terminated)
            click.echo(
                f"Error: stopped by {'SIGTERM' if terminated else 'Ctrl-C'}. Work committed "
                "before it stands and the open chunk was rolled back; run the command again "
                "to continue.",
                err=True,
            )
            raise click.exceptions.Exit(
                ExitCode.TERMINATED if terminated else ExitCode.INTERRUPTED
            ) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise _operator_failure(exc, _db_url(ctx)) from exc


def _operator_failure(exc: Exception, db_url: str) -> click.ClickException:
    """The one-line message, with its exit code, for an error no command handled itself.

    SQLAlchemy and the cause classifier are imported here, not at start-up: a command that
    failed in the database has loaded them already, and --help should not pay for them.
    """
    import sqlalchemy.exc

    from csa_closure.cli.causes import database_cause, file_cause

    if isinstance(exc, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        log.debug("database connection error", exc_info=True)
        return database_cause(exc, db_url)
    if isinstance(exc, sqlalchemy.exc.DatabaseError):
        # (not a connection error: only "not a SQLite file" is a cause we name)
        log.debug("database error", exc_info=True)
        cause = database_cause(exc, db_url)
        if cause.exit_code == ExitCode.DATABASE_UNAVAILABLE and "not a SQLite" in str(
            cause.message
        ):
            return cause
        return UnexpectedError(exc)
    if isinstance(exc, OSError):
        log.debug("file error", exc_info=True)
        return file_cause(exc) or UnexpectedError(exc)
    # Database and driver messages can quote the row being written, so the details (and the
    # traceback) are only shown when asked for with -vv.
    log.debug("unexpected error", exc_info=True)
    return UnexpectedError(exc)


class LazyGroup(CsaGroup):
    """The root group: a command's module is imported when the command is first looked up.

    ``commands`` (which Click's own code and the tests read) loads every command; the root
    ``--help`` does not, listing each command by its help's first sentence from COMMANDS.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loaded: dict[str, click.Command] = {}
        self._all_loaded = False
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def commands(self) -> dict[str, click.Command]:
        if not self._all_loaded:
            self._all_loaded = True
            for name in COMMANDS:
                self._load(name)
        return self._loaded

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._loaded = dict(value)

    def _load(self, name: str) -> click.Command | None:
        if name not in self._loaded:
            if name not in COMMANDS:
                return None
            module, attr, _ = COMMANDS[name]
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        assert name is not None
        self._loaded[name] = cmd

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self._loaded})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self._loaded.get(name) or click.Command(name, help=COMMANDS[name][2])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _db_url(ctx: click.Context) -> str:
    state = ctx.obj
    return state.db_url if isinstance(state, CliState) else DEFAULT_DB_URL


class UnexpectedError(click.ClickException):
    exit_code = ExitCode.UNEXPECTED

    def __init__(self, exc: Exception) -> None:
        super().__init__(
            f"unexpected {type(exc).__name__}. Work committed before it stands and re-running "
            "the command is safe. Run again with -vv to see the details (they may include "
            "personal data from the failing row)."
        )


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar=DB_ENV,
    default=DEFAULT_DB_URL,
    show_default=True,
    help=f"Working store URL: sqlite:///FILE or postgresql+psycopg://… (env {DB_ENV}).",
)
@click.option(
    "--as-of",
    type=ISO_DATE,
    envvar=AS_OF_ENV,
    default=None,
    help=f"The date decisions are made for, YYYY-MM-DD (env {AS_OF_ENV}; default today).",
)
@click.option(
    "--actor",
    envvar=ACTOR_ENV,
    default=None,
    help=f"Who is running this, recorded on every run and decision (env {ACTOR_ENV}; "
    "default the OS user).",
)
@click.option(
    "--allow-as-of",
    is_flag=True,
    help="Let a writing command run at an --as-of date after today or before the newest "
    "as-of already recorded (refused otherwise, exit 2); the run records that it was meant.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Log each stage's runs and chunks (-v) or debug detail (-vv, may quote a failing row).",
)
@click.option(
    "--log-file",
    envvar=LOG_FILE_ENV,
    type=click.Path(dir_okay=False),
    default=None,
    help=f"Also append the toolkit's log to this file as JSON lines, never personal data; every "
    f"run records it (env {LOG_FILE_ENV}).",
)
@click.version_option(__version__, prog_name="csa-closure")
@click.pass_context
def cli(
    ctx: click.Context,
    db: str,
    as_of: date | None,
    actor: str | None,
    allow_as_of: bool,
    verbose: int,
    log_file: str | None,
) -> None:
    """Close the legacy CSA arrears book: pull, assess, write to parents, resolve, transfer.

    Every command works on the working store given by --db and makes its decisions for the
    --as-of date. Run `csa-closure db upgrade` once on a new store.
    """
    configure_logging(verbose, log_file)
    # csa-closure.toml (or $CSA_CLOSURE_CONFIG): below options and environment variables
    file = load_config()
    given = ctx.get_parameter_source("db") not in (None, ParameterSource.DEFAULT)
    ctx.obj = CliState(
        db_url=db if given or not file.database_url else file.database_url,
        as_of=as_of or date.today(),
        actor=actor or file.actor or default_actor(),
        allow_as_of=allow_as_of,
        settings=Settings.from_environment(file.chunk_size),
        log_file=str(Path(log_file).resolve()) if log_file else None,
        letters_config=file.letters_config,
    )


# Each command's module is imported only when that command runs (or when its own help is
# asked for): the modules pull in polars, SQLAlchemy, Alembic and pyarrow, which would make
# every `--help` and `--version` wait over a second. The root help lists each command by the
# first sentence of its help, kept here; tests/cli/test_cli.py checks it against the command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "db": ("csa_closure.cli.db", "db", "Create, upgrade and inspect the working store's schema."),
    "report": (
        "csa_closure.cli.report",
        "report",
        "Reports for managers: closure progress, reconciliation, rule outcomes and stage runs.",
    ),
    "pull": (
        "csa_closure.cli.pull",
        "pull",
        "Pull every case from the legacy CSCS and CS2 replica into the working store.",
    ),
    "quarantine": (
        "csa_closure.cli.pull",
        "quarantine_group",
        "Work the pull's quarantine: cases held back because their source rows are dirty.",
    ),
    "assess": (
        "csa_closure.cli.assess",
        "assess",
        "Decide every pulled, undecided debt by the rules, for the --as-of date.",
    ),
    "rules": (
        "csa_closure.cli.rules",
        "rules",
        "Show, check and simulate write-off rule sets before operators use them.",
    ),
    "explain": (
        "csa_closure.cli.explain",
        "explain",
        "Explain CASE_REF: its facts, each debt's features as evaluated, the rule rows tried up "
        "to the one that matched (with the parameters behind it), and the case's history.",
    ),
    "sample": (
        "csa_closure.cli.sample",
        "sample",
        "Generate synthetic legacy data: a CSCS + CS2 replica with every dirty-data kind.",
    ),
    "demo": (
        "csa_closure.cli.demo",
        "demo",
        "Run the whole closure programme on a generated book, on the embedded SQLite store.",
    ),
    "archive": (
        "csa_closure.cli.archive",
        "archive",
        "Write the evidence archive (`archive --out DIR`) or check one (`archive verify DIR`).",
    ),
    "decommission": (
        "csa_closure.cli.decommission",
        "decommission",
        "The decommission gate: the checks that must all pass before CSCS and CS2 go off.",
    ),
    "responses": (
        "csa_closure.cli.responses",
        "responses",
        "Parents' answers to the final-chance letter: import files, record phone calls.",
    ),
    "resolve": (
        "csa_closure.cli.resolve",
        "resolve",
        "Resolve every debt ready on the --as-of date.",
    ),
    "review": (
        "csa_closure.cli.review",
        "review",
        "Debts waiting for a caseworker, and the decisions caseworkers make on them.",
    ),
    "ledger": (
        "csa_closure.cli.ledger",
        "ledger",
        "The append-only write-off ledger: list it for finance, reverse a wrong write-off.",
    ),
    "transfer": (
        "csa_closure.cli.transfer",
        "transfer",
        "Move debts to the Child Maintenance Service: export packages, import acknowledgements.",
    ),
    "notify": (
        "csa_closure.cli.notify",
        "notify",
        "Letters to parents: build batches, approve them, send them, keep their statuses.",
    ),
    "docs": (
        "csa_closure.cli.docs",
        "docs",
        "Show the documentation bundled with csa-closure: the README, each runbook, the rules "
        "guide and the JSON reference.",
    ),
}


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    # SIGTERM ends a stage as cleanly as Ctrl-C does (see CsaGroup.invoke)
    signal.signal(signal.SIGTERM, _terminate)
    # and Ctrl-C always interrupts, even when started with SIGINT ignored (in the background)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="csa-closure")
