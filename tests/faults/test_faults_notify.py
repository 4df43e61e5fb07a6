"""GOV.UK Notify failing in every way its contract lists, mixed, across a whole batch.

A generated 300-case book is pulled and assessed and every letter due goes into one batch.
The fake Notify then misbehaves throughout, seeded: rate limits (429, retried), 500s before
acceptance, dropped connections, timeouts and 502s *after* it accepted the letter, a 400 for
some letters, a 403 once, and its own daily limit; our daily quota is set too. The operator
runs ``notify send`` again after every stop, a few minutes later, and on the next day when
the day's letters are used up, until the batch is sent.

Then every letter of the batch is accounted for: accepted and received by Notify exactly once
(counted at the fake), or failed with its reason (and never received), or held or cancelled
with theirs: none lost, none twice, none left in flight. Each final-chance letter that went
started its debt's response window on the day it went; each that failed flagged its debt.
Every kind of fault really happened (the fake's request log says so). On SQLite and
PostgreSQL.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import text

from csa_closure.context import Context
from csa_closure.letters import is_reference
from csa_closure.reconcile import reconcile
from csa_closure.simulation.fake_notify import FaultKind, Faults
from csa_closure.simulation.legacy import generate_legacy
from csa_closure.stages.assess import assess
from csa_closure.stages.letters_outbox import BatchStopped, SendOptions, send_batch
from csa_closure.stages.pull import pull
from tests.conftest import SteppingClock
from tests.support.notify import CONFIG, built_batch, clocked, fake, later, outbox

pytestmark = pytest.mark.slow

NOTIFY_DAILY_LIMIT = 70  # the fake Notify's own limit
WENT = ("accepted", "received")  # Notify has the letter
OUR_DAILY_LIMIT = 90  # our quota (counts ambiguous and refused sends too)
FAULTS = {
    "rate_limit": 0.15,
    "server_error": 0.04,
    "connection_error": 0.04,
    "timeout_after_accept": 0.04,
    "server_error_after_accept": 0.04,
}


@pytest.fixture(scope="module")
def legacy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    generate_legacy(str(path), cases=300, seed=11, ensure_coverage=True)
    return path


def _send_until_done(
    ctx: Context, clock: SteppingClock, batch_id: int, channel: object
) -> list[str]:
    """The operator's days: send, and after a stop run again a few minutes later, or the
    next day when the day's letters are used up. Returns why each run ended."""
    endings: list[str] = []
    day = ctx.as_of
    options = SendOptions(daily_limit=OUR_DAILY_LIMIT, intent_group=5)
    for _ in range(60):
        try:
            result = send_batch(ctx.on(day), batch_id, channel, CONFIG, options=options)  # type: ignore[arg-type]
        except BatchStopped as stopped:
            result = stopped.result
        endings.append(result.stop_code or result.batch_status)
        if result.batch_status == "sent" and not result.remaining:
            return endings
        if result.stop_code in ("QUOTA_USED", "DAILY_LIMIT"):
            day += timedelta(days=1)
            later(clock, days=1)
        else:
            later(clock, minutes=10)  # Notify shows what it accepted after a while
    raise AssertionError(f"the batch never finished: {endings}")


def test_every_letter_goes_exactly_once_or_fails_with_its_reason_whatever_notify_does(
    ctx: Context, legacy_file: Path, tmp_path: Path
) -> None:
    ctx, clock = clocked(ctx)
    pull(ctx, str(legacy_file))
    assess(ctx)
    batch_id = built_batch(ctx)
    batch = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    references = batch["reference"].to_list()
    assert len(references) > 150
    rng = random.Random(7)
    refused = set(rng.sample(sorted(references), 6))  # Notify answers these with a 400
    faults = Faults(
        **FAULTS,  # type: ignore[arg-type]
        on_reference=dict.fromkeys(refused, FaultKind.BAD_REQUEST),
        on_request={40: FaultKind.FORBIDDEN},  # once, a 403: the key was refused
        daily_limit=NOTIFY_DAILY_LIMIT,
    )
    channel = fake(tmp_path, clock, faults=faults, seed=3)

    endings = _send_until_done(ctx, clock, batch_id, channel)

    # every kind of trouble happened, and the operator had to come back on several days
    outcomes = Counter(outcome for *_, outcome in channel.service.request_log())
    assert {"429", "500", "connection", "timeout", "502", "403", "400", "201"} <= set(outcomes)
    assert "FORBIDDEN" in endings and "DAILY_LIMIT" in endings
    assert len({d for d in outbox(ctx)["letter_date"].drop_nulls()}) >= 3

    # every letter of the batch is accounted for
    final = outbox(ctx).filter(pl.col("batch_id") == batch_id)
    statuses = Counter(final["status"])
    # (a letter reconciled a day after it went is found already received)
    assert set(statuses) <= {*WENT, "failed", "held", "cancelled"}, statuses
    received = channel.service.counts_by_reference()
    for letter in final.iter_rows(named=True):
        ref = letter["reference"]
        if letter["status"] in WENT:
            assert received.get(ref) == 1, ref  # exactly once, counted at Notify
            assert letter["notify_id"] == channel.service.notifications(ref)[0].notify_id
        else:
            assert ref not in received, ref  # never reached a parent
            reason = letter["failure_reason"] or letter["held_reason"]
            assert reason and is_reference(ref) and reason.split(":")[0].isupper()
    went = sum(statuses[s] for s in WENT)
    assert sum(received.values()) == went
    assert set(received) <= set(references)
    failed = set(final.filter(pl.col("status") == "failed")["reference"])
    assert failed == refused - set(final.filter(pl.col("status") != "failed")["reference"])
    assert all(
        r.startswith("NOTIFY_")
        for r in final.filter(pl.col("status") == "failed")["failure_reason"]
    )

    # Notify's daily limit and our quota held every day
    per_day = Counter(n.created_at.date() for n in channel.service.notifications())
    assert max(per_day.values()) <= NOTIFY_DAILY_LIMIT
    with ctx.engine.connect() as conn:
        quota = conn.execute(text("SELECT day, sent_count FROM send_quota")).all()
        windows = conn.execute(
            text(
                "SELECT d.state, d.letter_date, d.needs_tracing, d.review_reason, l.status, "
                "l.letter_date AS sent_on FROM letters l JOIN debts d ON d.debt_id = l.debt_id "
                "WHERE l.batch_id = :b AND l.purpose = 'representation'"
            ),
            {"b": batch_id},
        ).all()
    assert all(q.sent_count <= OUR_DAILY_LIMIT for q in quota)
    assert sum(q.sent_count for q in quota) >= went  # never undercounts

    # a final chance that went started its window the day it went; one that failed did not
    assert windows
    for w in windows:
        if w.status in WENT:
            assert w.state == "awaiting_response" and w.letter_date == w.sent_on
        elif w.status == "failed":
            assert w.state == "awaiting_letter" and w.needs_tracing
            assert (w.review_reason or "").startswith("LETTER_FAILED:NOTIFY_")
    assert reconcile(ctx).balanced
