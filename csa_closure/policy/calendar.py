"""Calendar arithmetic of the policy, in plain Python (the reference for the polars code).

"D minus N calendar months (or years)" is the same day of the month N months (years) before
D; where that day does not exist, the last day of that month: 31 May 2019 minus 3 months is
28 February 2019, and 29 February 2020 minus 10 years is 28 February 2010.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date


def minus_months(d: date, months: int) -> date:
    """``d`` minus ``months`` calendar months, clamped to the end of the month."""
    index = d.year * 12 + (d.month - 1) - months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    return date(year, month, min(d.day, monthrange(year, month)[1]))


def minus_years(d: date, years: int) -> date:
    """``d`` minus ``years`` calendar years, clamped (29 Feb minus 1 year is 28 Feb)."""
    return minus_months(d, 12 * years)


def whole_years(start: date, as_of: date) -> int:
    """The largest N with ``start`` on or before ``as_of`` minus N calendar years.

    So ``whole_years(start, D) >= 10`` exactly when ``start <= minus_years(D, 10)``: the
    policy's "10 years or older". Negative when ``start`` is after ``as_of``.
    """
    years = as_of.year - start.year
    if start > minus_years(as_of, years):
        years -= 1
    return years
