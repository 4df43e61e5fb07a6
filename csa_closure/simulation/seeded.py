"""The random source of the simulated world (legacy replica, responses, acknowledgements).

All randomness comes from ``SeededRandom``: a counter-based generator (SplitMix64 over a
stream key and the row number) evaluated in polars over whole columns. It is integer-only,
so the same seed gives the same values on every machine and under every polars version (a
library generator's stream may change between releases; this one cannot), and each named
stream is independent of the others, so adding a new stream never shifts existing ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import polars as pl

_U64 = pl.UInt64
_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _lit(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=_U64)


def _shift_right(expr: pl.Expr, bits: int) -> pl.Expr:
    return expr // _lit(1 << bits)


def _splitmix64(state: pl.Expr) -> pl.Expr:
    # UInt64 arithmetic in polars wraps, as SplitMix64 needs.
    z = state
    z = (z ^ _shift_right(z, 30)) * _lit(_MIX1)
    z = (z ^ _shift_right(z, 27)) * _lit(_MIX2)
    return z ^ _shift_right(z, 31)


def splitmix64_reference(key: int, index: int) -> int:
    """The same function in plain Python, for tests."""
    z = (key + (index + 1) * _GAMMA) & _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def _as_series(value: int | pl.Series, n: int) -> pl.Series:
    if isinstance(value, pl.Series):
        return value.cast(pl.Int64)
    return pl.repeat(value, n, dtype=pl.Int64, eager=True)


class SeededRandom:
    """Independent, reproducible random columns, one named stream per use."""

    def __init__(self, seed: int, namespace: str = "") -> None:
        self.seed = int(seed)
        self.namespace = namespace

    def key(self, stream: str) -> int:
        digest = hashlib.sha256(f"{self.seed}/{self.namespace}/{stream}".encode()).digest()
        return int.from_bytes(digest[:8], "big")

    def u64(self, stream: str, n: int) -> pl.Series:
        """``n`` uniform 64-bit values."""
        key = self.key(stream)
        index = pl.int_range(1, n + 1, dtype=_U64)
        return pl.select(_splitmix64(_lit(key) + index * _lit(_GAMMA)).alias(stream)).to_series()

    def below(self, stream: str, n: int, bound: int | pl.Series) -> pl.Series:
        """Integers in ``[0, bound)`` (``bound`` a number or one per row, each >= 1).

        Modulo bias is below bound / 2**64: immaterial for any bound used here.
        """
        values = self.u64(stream, n)
        if isinstance(bound, pl.Series):
            out = values % bound.cast(_U64)
        else:
            if bound < 1:
                raise ValueError("bound must be at least 1")
            out = values % bound
        return out.cast(pl.Int64).alias(stream)

    def between(
        self, stream: str, n: int, low: int | pl.Series, high: int | pl.Series
    ) -> pl.Series:
        """Integers in ``[low, high]`` inclusive; ``low``/``high`` a number or one per row.

        Where a row's ``high`` is below its ``low`` the row gets ``low``.
        """
        if not isinstance(low, pl.Series) and not isinstance(high, pl.Series):
            if high < low:
                raise ValueError("high must not be below low")
            return (self.below(stream, n, high - low + 1) + low).alias(stream)
        low_s = _as_series(low, n)
        high_s = _as_series(high, n)
        span = (high_s - low_s + 1).clip(lower_bound=1)
        return (self.below(stream, n, span) + low_s).alias(stream)

    def chance(self, stream: str, n: int, probability: float) -> pl.Series:
        """Booleans, true with ``probability``."""
        threshold = min(int(probability * (1 << 64)), _MASK + 1)
        if threshold <= 0:
            return pl.repeat(False, n, dtype=pl.Boolean, eager=True).alias(stream)
        if threshold > _MASK:
            return pl.repeat(True, n, dtype=pl.Boolean, eager=True).alias(stream)
        return (self.u64(stream, n) < threshold).alias(stream)

    def pick(self, stream: str, n: int, weights: Sequence[int]) -> pl.Series:
        """Indices into ``weights`` (whole numbers), each drawn in proportion to its weight."""
        total = sum(weights)
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError("weights must be non-negative with a positive total")
        bounds, running = [], 0
        for weight in weights[:-1]:
            running += weight
            bounds.append((running << 64) // total)
        values = self.u64(stream, n)
        if not bounds:
            return pl.repeat(0, n, dtype=pl.Int64, eager=True).alias(stream)
        edges = pl.Series("edges", bounds, dtype=_U64)
        return edges.search_sorted(values, side="right").cast(pl.Int64).alias(stream)

    def order(self, stream: str, n: int) -> pl.Series:
        """A permutation of ``0..n-1``."""
        return self.u64(stream, n).arg_sort().cast(pl.Int64).alias(stream)
