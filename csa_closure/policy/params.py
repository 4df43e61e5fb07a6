"""Named, typed rule parameters: thresholds in pence, windows in days, months or years,
recovery rates, and switches.

Types and how a value is written (in ``parameters.toml`` and in ``--set NAME=VALUE``):

==========  ====================================  ==================================
type        in parameters.toml                    in --set
==========  ====================================  ==================================
pence       whole pence: ``value = 6500``         ``6500``
days        whole days: ``value = 90``            ``90``
months      calendar months: ``value = 3``        ``3``
years       calendar years: ``value = 10``        ``10``
rate        a decimal in quotes, 0 to 1, at       ``0.60``
            most 4 places: ``value = "0.60"``
bool        ``value = true``                      ``true`` / ``false``
==========  ====================================  ==================================

Rates are held exactly, as integer basis points (``"0.60"`` is 6000), never as floats. In a
condition a parameter reads as an integer (pence, days, months, years, and rates in basis
points) or a boolean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from csa_closure.policy.conditions.ast import FUNCTIONS, ValueType
from csa_closure.policy.conditions.lexer import CLOCK_WORDS, KEYWORDS, UNSUPPORTED_WORDS

BASIS_POINTS = 10_000  # 1.0000


class ParamType(StrEnum):
    PENCE = "pence"
    DAYS = "days"
    MONTHS = "months"
    YEARS = "years"
    RATE = "rate"
    BOOL = "bool"


# Inclusive bounds for the whole-number types: wide enough for any policy, narrow enough that
# no date or money calculation can overflow.
_BOUNDS: dict[ParamType, tuple[int, int]] = {
    ParamType.PENCE: (0, 10**12),  # up to £10bn
    ParamType.DAYS: (0, 36_600),
    ParamType.MONTHS: (0, 1_200),
    ParamType.YEARS: (0, 100),
}

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_RATE = re.compile(r"(?:0|1)?(?:\.\d+)?")
_RESERVED = KEYWORDS | UNSUPPORTED_WORDS | CLOCK_WORDS | set(FUNCTIONS)


class ParameterValueError(ValueError):
    """A parameter value of the wrong type or out of range; the message says what to write."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParamType
    value: int | bool  # rates in basis points
    description: str
    file_value: int | bool | None = None  # the value in the file, when --set changed it

    @property
    def overridden(self) -> bool:
        return self.file_value is not None

    @property
    def condition_type(self) -> ValueType:
        return ValueType.BOOLEAN if self.type is ParamType.BOOL else ValueType.INTEGER

    @property
    def rate(self) -> Decimal:
        """A rate as an exact decimal (``Decimal("0.6")`` for 6000 basis points)."""
        if self.type is not ParamType.RATE:
            raise TypeError(f"{self.name} is not a rate")
        return Decimal(int(self.value)) / BASIS_POINTS

    def canonical_value(self) -> int | bool | str:
        """The value as stored in the canonical form: rates as a 4-place decimal string."""
        if self.type is ParamType.RATE:
            return format_rate(int(self.value))
        return self.value

    def display(self) -> str:
        """The value for people: £65.00, 3 months, 0.60, true."""
        return display_value(self.type, self.value)


def display_value(ptype: ParamType, value: int | bool) -> str:
    if ptype is ParamType.BOOL:
        return "true" if value else "false"
    if ptype is ParamType.RATE:
        return format_rate(int(value), places=2)
    if ptype is ParamType.PENCE:
        whole, part = divmod(int(value), 100)
        return f"£{whole:,}.{part:02d}"
    unit = ptype.value if value != 1 else ptype.value[:-1]
    return f"{value} {unit}"


def format_rate(basis_points: int, places: int = 4) -> str:
    """``6000`` -> ``"0.6000"``; with ``places=2``, at least 2 places: ``"0.60"``."""
    text = f"{Decimal(basis_points) / BASIS_POINTS:.4f}"
    while places < 4 and text.endswith("0") and len(text.split(".")[1]) > places:
        text = text[:-1]
    return text


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a parameter, or None if it can."""
    if not _NAME.fullmatch(name):
        return (
            "a parameter name must start with a lower-case letter and use only a-z, 0-9 and _ "
            "(at most 63 characters)"
        )
    if name.upper() in _RESERVED:
        return f"{name!r} is a reserved word of the condition language"
    return None


def parse_type(raw: Any) -> ParamType:
    try:
        return ParamType(raw)
    except ValueError:
        raise ParameterValueError(
            f"unknown type {raw!r}; types: {', '.join(t.value for t in ParamType)}"
        ) from None


def from_toml(ptype: ParamType, raw: Any) -> int | bool:
    """The value of a parameter as written in parameters.toml."""
    if ptype is ParamType.BOOL:
        if not isinstance(raw, bool):
            raise ParameterValueError(f"a bool value is written true or false, not {raw!r}")
        return raw
    if ptype is ParamType.RATE:
        if isinstance(raw, float | int) and not isinstance(raw, bool):
            raise ParameterValueError(
                f'write a rate in quotes, e.g. value = "{raw}", so it stays exact '
                "(TOML numbers with a decimal point are binary floats)"
            )
        if not isinstance(raw, str):
            raise ParameterValueError(f'a rate is a decimal in quotes, e.g. "0.60", not {raw!r}')
        return parse_rate(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ParameterValueError(_whole_hint(ptype, raw))
    return _in_bounds(ptype, raw)


def from_text(ptype: ParamType, text: str) -> int | bool:
    """The value of a parameter as written in ``--set NAME=VALUE``."""
    text = text.strip()
    if ptype is ParamType.BOOL:
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise ParameterValueError(f"a bool value is true or false, not {text!r}")
        return lowered == "true"
    if ptype is ParamType.RATE:
        return parse_rate(text)
    if not re.fullmatch(r"[0-9]+", text):
        raise ParameterValueError(_whole_hint(ptype, text))
    return _in_bounds(ptype, int(text))


def parse_rate(text: str) -> int:
    """Basis points of a rate written as a decimal from 0 to 1 with at most 4 places."""
    if not text or not _RATE.fullmatch(text) or text == ".":
        raise ParameterValueError(f'a rate is a decimal from 0 to 1, e.g. "0.60", not {text!r}')
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise ParameterValueError(f"{text!r} is not a decimal number") from None
    if not Decimal(0) <= rate <= Decimal(1):
        raise ParameterValueError(f"a rate is from 0 to 1, not {text}")
    basis_points = rate * BASIS_POINTS
    if basis_points != basis_points.to_integral_value():
        raise ParameterValueError(f"a rate has at most 4 decimal places, not {text}")
    return int(basis_points)


def _whole_hint(ptype: ParamType, raw: Any) -> str:
    if ptype is ParamType.PENCE:
        return f"money is whole pence, e.g. 6500 for £65.00, not {raw!r}"
    return f"{ptype.value} are a whole number, not {raw!r}"


def _in_bounds(ptype: ParamType, value: int) -> int:
    low, high = _BOUNDS[ptype]
    if not low <= value <= high:
        raise ParameterValueError(f"{ptype.value} must be from {low} to {high}, not {value}")
    return value
