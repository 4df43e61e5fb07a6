"""Errors an operator can act on.

Every error raised to the CLI is a ``CsaClosureError`` with a message that names the row,
field, rule or command involved and says what to do. Messages never carry personal data.
"""

from __future__ import annotations


class CsaClosureError(Exception):
    """An error with a message fit to show an operator as it is."""

    exit_code = 1


class UsageError(CsaClosureError):
    """The operator asked for something that cannot be done as asked."""

    exit_code = 2


class SchemaNotCurrent(CsaClosureError):
    """The working store's schema is not at the revision this code needs."""

    exit_code = 3


class LeaseHeld(CsaClosureError):
    """Another operator's run owns the work this run needs."""

    exit_code = 4


class LeaseLost(CsaClosureError):
    """This run's lease expired and another run took it over; the run stops."""

    exit_code = 4


class InvalidTransition(CsaClosureError):
    """A debt was asked to move in a way the state machine does not allow."""


class ConcurrentChange(CsaClosureError):
    """Rows changed under this run (another writer); the chunk was rolled back."""

    exit_code = 4


class Unbalanced(CsaClosureError):
    """Money does not reconcile to the penny; the run is not marked complete.

    ``result`` carries the reconciliation, so the operator still sees every figure.
    """

    exit_code = 5

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class InputError(CsaClosureError):
    """An input file or rule set is malformed; nothing was written."""

    exit_code = 2
