"""The client-side token bucket and the reconcile decisions, without any service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csa_closure.channels import (
    NotificationInfo,
    NotifyStatus,
    ReconcileDecision,
    TokenBucket,
    reconcile,
)
from csa_closure.channels.ratelimit import DEFAULT_RATE_PER_MINUTE, NOTIFY_REQUESTS_PER_MINUTE


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_burst_goes_at_once_then_the_steady_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_minute=600, burst=5, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])
    clock.now += 10  # idle: the bucket refills up to the burst, no more
    assert [bucket.acquire() for _ in range(5)] == [0.0] * 5
    assert bucket.acquire() == pytest.approx(0.1)


def test_no_sleep_needed_when_requests_are_slower_than_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_minute=60, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        assert bucket.acquire() == 0.0
        clock.now += 1.0
    assert clock.slept == []


@given(st.integers(min_value=1, max_value=5_000), st.integers(min_value=1, max_value=200))
def test_any_minute_stays_under_notifys_limit(requests: int, burst: int) -> None:
    clock = Clock()
    bucket = TokenBucket(DEFAULT_RATE_PER_MINUTE, burst, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(requests):
        bucket.acquire()
        times.append(clock.now)
    # Over the whole run: at most the burst plus the rate for the time that passed.
    elapsed = times[-1] - times[0]
    assert requests <= burst + elapsed * DEFAULT_RATE_PER_MINUTE / 60 + 1e-6
    if burst <= 50:  # the default burst: any 60 s window stays under 3,000
        start = 0
        for end, t in enumerate(times):
            while t - times[start] >= 60:
                start += 1
            assert end - start + 1 <= NOTIFY_REQUESTS_PER_MINUTE


def test_a_sleep_that_returns_early_does_not_raise_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate_per_minute=60, burst=1, clock=clock, sleep=lambda s: None)
    bucket.acquire()
    for _ in range(5):
        bucket.acquire()  # the clock never moves: every token must still be waited for
    assert bucket.waited == pytest.approx(5.0)


def test_a_bucket_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate_per_minute=0)
    with pytest.raises(ValueError):
        TokenBucket(burst=0)


# --- reconcile -------------------------------------------------------------------------------

T0 = datetime(2019, 4, 1, 9, tzinfo=UTC)
REF = "csa-0123456789abcdef0123"


class Holds:
    """A channel stand-in that holds the given letters for every reference."""

    name = "stub"

    def __init__(self, *statuses: NotifyStatus) -> None:
        self.found = [
            NotificationInfo(f"id-{n}", REF, status, status.value, T0 + timedelta(seconds=n))
            for n, status in enumerate(statuses)
        ]
        self.asked = 0

    def find_by_reference(self, reference: str) -> list[NotificationInfo]:
        self.asked += 1
        return list(self.found)


def decide(channel: Holds, after: timedelta) -> tuple[ReconcileDecision, str | None]:
    result = reconcile(channel, REF, attempted_at=T0, now=T0 + after)  # type: ignore[arg-type]
    return result.decision, result.adopted.notify_id if result.adopted else None


def test_reconcile_decisions() -> None:
    hour = timedelta(hours=1)
    assert decide(Holds(NotifyStatus.ACCEPTED), hour) == (ReconcileDecision.SENT, "id-0")
    assert decide(Holds(NotifyStatus.RECEIVED, NotifyStatus.ACCEPTED), hour) == (
        ReconcileDecision.DUPLICATED,
        "id-0",
    )
    assert decide(Holds(), hour) == (ReconcileDecision.RESEND, None)
    # Notify: "Do not try to send the letter again" after a technical failure; a caseworker
    # settles it, reconcile never resends it.
    assert decide(Holds(NotifyStatus.TECHNICAL_FAILURE), hour) == (
        ReconcileDecision.TECHNICAL_FAILURE,
        "id-0",
    )
    assert decide(Holds(NotifyStatus.TECHNICAL_FAILURE, NotifyStatus.ACCEPTED), hour) == (
        ReconcileDecision.SENT,
        "id-1",
    )
    # A permanent failure or a cancellation was Notify's letter: never sent again by itself.
    assert decide(Holds(NotifyStatus.CANCELLED), hour)[0] is ReconcileDecision.SENT
    assert decide(Holds(), timedelta(days=6))[0] is ReconcileDecision.CANNOT_TELL
    assert decide(Holds(NotifyStatus.ACCEPTED), timedelta(days=6))[0] is ReconcileDecision.SENT


def test_reconcile_waits_before_asking_too_soon() -> None:
    channel = Holds()
    assert decide(channel, timedelta(minutes=4))[0] is ReconcileDecision.WAIT
    assert channel.asked == 0
