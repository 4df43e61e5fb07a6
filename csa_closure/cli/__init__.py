"""The ``csa-closure`` command: a thin Click layer over the library.

Each command parses its options, builds the context, calls one library function and renders
the result. Command groups live one per module and are registered here.
"""

from __future__ import annotations

import logging
import signal
from datetime import date
from pathlib import Path
from typing import Any

import click
import sqlalchemy.exc
from click.core import ParameterSource

from csa_closure import __version__
from csa_closure.cli.causes import database_cause, file_cause
from csa_closure.cli.options import ISO_DATE, CliState
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
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            log.debug("database connection error", exc_info=True)
            raise database_cause(exc, _db_url(ctx)) from exc
        except sqlalchemy.exc.DatabaseError as exc:
            # (not a connection error: only "not a SQLite file" is a cause we name)
            log.debug("database error", exc_info=True)
            cause = database_cause(exc, _db_url(ctx))
            if cause.exit_code == ExitCode.DATABASE_UNAVAILABLE and "not a SQLite" in str(
                cause.message
            ):
                raise cause from exc
            raise UnexpectedError(exc) from exc
        except OSError as exc:
            log.debug("file error", exc_info=True)
            known = file_cause(exc)
            if known is None:
                raise UnexpectedError(exc) from exc
            raise known from exc
        except Exception as exc:
            # Database and driver messages can quote the row being written, so the details
            # (and the traceback) are only shown when asked for with -vv.
            log.debug("unexpected error", exc_info=True)
            raise UnexpectedError(exc) from exc


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


@click.group(cls=CsaGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def _register() -> None:
    from csa_closure.cli import archive, db, decommission, report

    cli.add_command(db.db)
    cli.add_command(report.report)

    from csa_closure.cli import assess, demo, explain, pull, rules, sample

    cli.add_command(pull.pull)
    cli.add_command(pull.quarantine_group)
    cli.add_command(assess.assess)
    cli.add_command(rules.rules)
    cli.add_command(explain.explain)
    cli.add_command(sample.sample)
    cli.add_command(demo.demo)

    cli.add_command(archive.archive)
    cli.add_command(decommission.decommission)

    from csa_closure.cli import ledger, resolve, responses, review, transfer

    cli.add_command(responses.responses)
    cli.add_command(resolve.resolve)
    cli.add_command(review.review)
    cli.add_command(ledger.ledger)
    cli.add_command(transfer.transfer)

    from csa_closure.cli import docs, notify

    cli.add_command(notify.notify)
    cli.add_command(docs.docs)


_register()


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main() -> None:
    # SIGTERM ends a stage as cleanly as Ctrl-C does (see CsaGroup.invoke)
    signal.signal(signal.SIGTERM, _terminate)
    # and Ctrl-C always interrupts, even when started with SIGINT ignored (in the background)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="csa-closure")
