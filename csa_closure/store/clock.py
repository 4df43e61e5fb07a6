"""Wall-clock instants, for recording when something happened.

Decisions never depend on these: they use the run's as-of date. Instants only stamp rows
(``recorded_at``) and time leases, so tests may pass their own clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
