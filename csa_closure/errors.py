"""Errors an operator can act on.

Every error raised to the CLI is a ``CsaClosureError`` with a message that names the row,
field, rule or command involved and says what to do. Messages never carry personal data.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code any command returns: the one home of the numbers.

    Documented once, in the "Exit codes" table of ``docs/json-output.md`` (a test checks the
    table against this enum); ``runbooks/README.md`` says what the operator does about each.
    """

    OK = 0
    REFUSED = 1  # the operation was refused as asked (the message says why)
    BAD_INPUT = 2  # usage, a malformed file or rule set, a refused option value
    SCHEMA_NOT_CURRENT = 3  # run `csa-closure db upgrade`
    BUSY = 4  # another run holds the work (a lease) or changed it underneath
    UNBALANCED = 5  # money does not reconcile; the figures are still printed
    VERIFY_FAILED = 6  # an archive or package fails verification, or a letter batch stopped
    GATE_CLOSED = 7  # the decommission gate is closed
    NOT_READY = 8  # a stage that needs an earlier one run first; the message names it
    ALL_REJECTED = 9  # a file import in which every row was rejected
    DATABASE_UNAVAILABLE = 10  # the store could not be opened; the message says why
    WRITE_FAILED = 11  # a file (or the store) could not be written: full disk, read-only
    UNEXPECTED = 70  # an unexpected error (details with -vv)
    CONNECTION_LOST = 75  # a working database connection was lost; re-run when it is back
    INTERRUPTED = 130  # stopped by Ctrl-C (SIGINT): the open chunk rolled back; re-run
    TERMINATED = 143  # stopped by SIGTERM: the open chunk rolled back; re-run


class CsaClosureError(Exception):
    """An error with a message fit to show an operator as it is."""

    exit_code: ExitCode = ExitCode.REFUSED


class UsageError(CsaClosureError):
    """The operator asked for something that cannot be done as asked."""

    exit_code = ExitCode.BAD_INPUT


class SchemaNotCurrent(CsaClosureError):
    """The working store's schema is not at the revision this code needs."""

    exit_code = ExitCode.SCHEMA_NOT_CURRENT


class NotReady(CsaClosureError):
    """The stage could do nothing because an earlier stage has not run; the message names
    the command to run first."""

    exit_code = ExitCode.NOT_READY


class DatabaseUnavailable(CsaClosureError):
    """The store could not be opened (the message names the cause and the path or host)."""

    exit_code = ExitCode.DATABASE_UNAVAILABLE


class LeaseHeld(CsaClosureError):
    """Another operator's run owns the work this run needs."""

    exit_code = ExitCode.BUSY


class LeaseLost(CsaClosureError):
    """This run's lease expired and another run took it over; the run stops."""

    exit_code = ExitCode.BUSY


class InvalidTransition(CsaClosureError):
    """A debt was asked to move in a way the state machine does not allow."""


class ConcurrentChange(CsaClosureError):
    """Rows changed under this run (another writer); the chunk was rolled back."""

    exit_code = ExitCode.BUSY


class Unbalanced(CsaClosureError):
    """Money does not reconcile to the penny; the run is not marked complete.

    ``result`` carries the reconciliation, so the operator still sees every figure.
    """

    exit_code = ExitCode.UNBALANCED

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class InputError(CsaClosureError):
    """An input file or rule set is malformed; nothing was written."""

    exit_code = ExitCode.BAD_INPUT


class Terminated(KeyboardInterrupt):
    """The process was sent SIGTERM. It unwinds like Ctrl-C (the open chunk rolls back, the
    run is marked interrupted and its leases released) and exits ``ExitCode.TERMINATED``."""
