"""Who must be told before a debt is written off (policy.md, write-off notices).

One rule, read two ways: the letters stage builds a ``write_off_notice`` for each parent owed
one, and resolve writes a pending debt off only once each parent owed one has been told.

A parent is owed a write-off notice, on the as-of date D, when the debt's outcome is not
``write_off_silent``, the parent is alive on D (no date of death, or one after D), and, for
the person with care, the debt is owed to the PWC (the Secretary of State's debts are not
the PWC's money, so the PWC is not written to about them). The NRP is told of every notified
write-off.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from csa_closure.domain.states import Creditor, Outcome


def alive_on(prefix: str, as_of: date) -> pl.Expr:
    """True where the ``pwc`` or ``nrp`` parent has no date of death on or before ``as_of``."""
    died = pl.col(f"{prefix}_deceased_on")
    return died.is_null() | (died > pl.lit(as_of))


def owed_write_off_notice(recipient: str, as_of: date) -> pl.Expr:
    """True for a debt row whose write-off needs a notice to ``recipient`` (``PWC``/``NRP``).

    Reads the columns ``outcome``, ``creditor`` and ``<recipient>_deceased_on``.
    """
    if recipient not in ("PWC", "NRP"):
        raise ValueError(f"a write-off notice goes to the PWC or the NRP, not {recipient!r}")
    notified = pl.col("outcome").fill_null("") != Outcome.WRITE_OFF_SILENT.value
    owed = notified & alive_on(recipient.lower(), as_of)
    if recipient == "PWC":
        owed = owed & (pl.col("creditor") == Creditor.PWC.value)
    return owed
