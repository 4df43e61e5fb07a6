"""The fake Notify service: acceptance, statuses over simulated days, faults, persistence."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from csa_closure.channels import (
    AmbiguousSend,
    ChannelForbidden,
    ChannelUnavailable,
    DailyLimitReached,
    LetterRejected,
    NotifyStatus,
    ReconcileDecision,
    RetryPolicy,
    reconcile,
)
from csa_closure.letters import (
    LetterFacts,
    OutgoingLetter,
    RecipientParty,
    load_letters_config,
    new_reference,
    prepare_letter,
)
from csa_closure.simulation.fake_notify import (
    FAKE_BASE_URL,
    FAKE_SECRET,
    FAKE_SERVICE_ID,
    FakeNotifyChannel,
    Fates,
    FaultKind,
    Faults,
)

CONFIG = load_letters_config(env={})
T0 = datetime(2019, 4, 1, 9, 0, tzinfo=UTC)
PARTY = RecipientParty(
    "CSCS:P000000001",
    given_names="Alice",
    family_name="Pwcperson",
    address_line_1="1 Carer Close",
    address_line_3="Caretown",
    postcode="LS1 1BA",
)


def make_letter(reference: str | None = None, party: RecipientParty = PARTY) -> OutgoingLetter:
    facts = LetterFacts("C123456789", 123456, date(2019, 4, 1))
    return prepare_letter(
        reference or new_reference(), "representation", "PWC", party, facts, CONFIG
    )


def fake(path: Path, **options: Any) -> FakeNotifyChannel:
    options.setdefault("clock", lambda: T0)
    options.setdefault("templates", CONFIG)
    return FakeNotifyChannel(path / "notify.db", **options)


def test_letters_are_accepted_counted_and_kept_in_an_owner_only_file(tmp_path: Path) -> None:
    channel = fake(tmp_path)
    letters = [make_letter() for _ in range(3)]
    receipts = [channel.send(letter) for letter in letters]
    assert len({r.notify_id for r in receipts}) == 3
    assert channel.service.count() == 3
    assert all(channel.service.count(letter.reference) == 1 for letter in letters)
    assert (tmp_path / "notify.db").stat().st_mode & 0o777 == 0o600
    kept = channel.service.notifications(letters[0].reference)[0]
    assert kept.personalisation == dict(letters[0].personalisation)
    assert "Alice" not in repr(kept)


def test_another_process_sees_the_same_service(tmp_path: Path) -> None:
    first = fake(tmp_path)
    letter = make_letter()
    receipt = first.send(letter)
    first.service.advance(days=2)
    second = fake(tmp_path)  # a new connection: as a re-run after a crash would open it
    assert second.service.count(letter.reference) == 1
    info = second.get_status(receipt.notify_id)
    assert info is not None and info.status is NotifyStatus.RECEIVED


def test_statuses_progress_over_simulated_days_and_expire_after_retention(tmp_path: Path) -> None:
    channel = fake(tmp_path)
    receipt = channel.send(make_letter())

    def status() -> NotifyStatus | None:
        info = channel.get_status(receipt.notify_id)
        return None if info is None else info.status

    assert status() is NotifyStatus.ACCEPTED
    channel.service.advance(days=1)
    assert status() is NotifyStatus.RECEIVED
    channel.service.advance(days=6, seconds=-1)
    assert status() is NotifyStatus.RECEIVED
    channel.service.advance(seconds=1)  # 7 days: Notify no longer holds the status
    assert status() is None
    assert channel.find_by_reference(channel.service.notifications()[0].reference or "") == []


@pytest.mark.parametrize(
    ("fates", "final", "days"),
    [
        # a return stays "received" in the API, as at Notify: it is in the report only
        (Fates(returned=1.0, returned_after_days=3), NotifyStatus.RECEIVED, 3),
        (Fates(permanent_failure=1.0), NotifyStatus.PERMANENT_FAILURE, 1),
        (Fates(technical_failure=1.0, failed_after_days=0), NotifyStatus.TECHNICAL_FAILURE, 0),
    ],
)
def test_fates_at_configured_rates(
    tmp_path: Path, fates: Fates, final: NotifyStatus, days: int
) -> None:
    channel = fake(tmp_path, fates=fates)
    receipt = channel.send(make_letter())
    channel.service.advance(days=days)
    info = channel.get_status(receipt.notify_id)
    assert info is not None and info.status is final


def test_returned_letters_weeks_later_come_from_the_report(tmp_path: Path) -> None:
    channel = fake(tmp_path, fates=Fates(returned=1.0, returned_after_days=21))
    letter = make_letter()
    receipt = channel.send(letter)
    channel.service.advance(days=20)
    assert channel.service.returned_letters() == []
    channel.service.advance(days=1)
    assert channel.get_status(receipt.notify_id) is None  # outside the 7-day retention
    ((notify_id, reference, _),) = channel.service.returned_letters()
    assert (notify_id, reference) == (receipt.notify_id, letter.reference)


def test_fate_rates_are_seeded(tmp_path: Path) -> None:
    outcomes = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        channel = fake(tmp_path / run, seed=3, fates=Fates(returned=0.2, permanent_failure=0.1))
        for _ in range(200):
            channel.send(make_letter())
        channel.service.advance(days=30)
        returned = {i for i, _, _ in channel.service.returned_letters()}
        outcomes.append(
            [
                "returned-letter" if n.notify_id in returned else n.status
                for n in channel.service.notifications()
            ]
        )
    assert outcomes[0] == outcomes[1]
    assert 20 <= outcomes[0].count("returned-letter") <= 60
    assert 5 <= outcomes[0].count("permanent-failure") <= 40


def test_random_rate_limits_are_retried_and_every_letter_sent_once(tmp_path: Path) -> None:
    channel = fake(tmp_path, seed=5, faults=Faults(rate_limit=0.3), retry=RetryPolicy(attempts=20))
    letters = [make_letter() for _ in range(50)]
    for letter in letters:
        channel.send(letter)
    log = channel.service.request_log()
    assert sum(1 for *_, outcome in log if outcome == "429") > 5
    assert all(channel.service.count(letter.reference) == 1 for letter in letters)
    assert channel.slept > 0


def test_a_per_minute_cap_on_the_fake_clock(tmp_path: Path) -> None:
    clock = [T0]
    channel = fake(
        tmp_path,
        clock=lambda: clock[0],
        faults=Faults(per_minute_limit=3),
        sleep=lambda s: clock.__setitem__(0, clock[0] + timedelta(seconds=s)),
        retry=RetryPolicy(attempts=10, initial=20, maximum=60),
    )
    letters = [make_letter() for _ in range(7)]
    for letter in letters:
        channel.send(letter)
    assert channel.service.count() == 7
    assert sum(1 for *_, outcome in channel.service.request_log() if outcome == "429") >= 2


def test_the_daily_limit_stops_sending_until_the_next_day(tmp_path: Path) -> None:
    channel = fake(tmp_path, faults=Faults(daily_limit=3))
    for _ in range(3):
        channel.send(make_letter())
    late = make_letter()
    with pytest.raises(DailyLimitReached):
        channel.send(late)
    assert channel.service.count(late.reference) == 0
    channel.service.advance(days=1)
    channel.send(late)
    assert channel.service.count(late.reference) == 1


def test_a_timeout_after_acceptance_is_ambiguous_and_reconciles_as_sent(tmp_path: Path) -> None:
    letter = make_letter()
    channel = fake(
        tmp_path, faults=Faults(on_reference={letter.reference: FaultKind.TIMEOUT_AFTER_ACCEPT})
    )
    with pytest.raises(AmbiguousSend) as caught:
        channel.send(letter)
    assert caught.value.cause == "TIMEOUT"
    assert channel.service.count(letter.reference) == 1  # it was delivered all the same
    result = reconcile(channel, letter.reference, attempted_at=T0, now=T0 + timedelta(minutes=10))
    assert result.decision is ReconcileDecision.SENT
    assert result.adopted is not None
    assert result.adopted.notify_id == channel.service.notifications()[0].notify_id


def test_a_5xx_after_acceptance_is_ambiguous_too(tmp_path: Path) -> None:
    letter = make_letter()
    channel = fake(
        tmp_path,
        faults=Faults(on_reference={letter.reference: FaultKind.SERVER_ERROR_AFTER_ACCEPT}),
    )
    with pytest.raises(AmbiguousSend, match="SERVER_ERROR_502"):
        channel.send(letter)
    assert channel.service.count(letter.reference) == 1


@pytest.mark.parametrize(
    ("fault", "cause"),
    [(FaultKind.SERVER_ERROR, "SERVER_ERROR_500"), (FaultKind.CONNECTION_ERROR, "CONNECTION")],
)
def test_a_failure_before_acceptance_reconciles_to_a_safe_resend(
    tmp_path: Path, fault: FaultKind, cause: str
) -> None:
    letter = make_letter()
    channel = fake(tmp_path, faults=Faults(on_reference={letter.reference: fault}))
    with pytest.raises(AmbiguousSend) as caught:
        channel.send(letter)
    assert caught.value.cause == cause
    assert channel.service.count(letter.reference) == 0
    too_soon = reconcile(channel, letter.reference, attempted_at=T0, now=T0 + timedelta(minutes=1))
    assert too_soon.decision is ReconcileDecision.WAIT
    result = reconcile(channel, letter.reference, attempted_at=T0, now=T0 + timedelta(minutes=10))
    assert result.decision is ReconcileDecision.RESEND
    channel.send(letter)  # the fault applies to the first send only
    assert channel.service.count(letter.reference) == 1


def test_a_reference_whose_only_letter_failed_technically_is_never_resent(
    tmp_path: Path,
) -> None:
    letter = make_letter()
    channel = fake(
        tmp_path,
        faults=Faults(on_reference={letter.reference: FaultKind.TIMEOUT_AFTER_ACCEPT}),
        fates=Fates(technical_failure=1.0, failed_after_days=0),
    )
    with pytest.raises(AmbiguousSend):
        channel.send(letter)
    result = reconcile(channel, letter.reference, attempted_at=T0, now=T0 + timedelta(minutes=10))
    assert result.decision is ReconcileDecision.TECHNICAL_FAILURE
    assert result.adopted is not None
    assert result.adopted.status is NotifyStatus.TECHNICAL_FAILURE
    assert channel.service.count(letter.reference) == 1


def test_scheduled_faults_by_request_number(tmp_path: Path) -> None:
    channel = fake(
        tmp_path,
        faults=Faults(on_request={2: FaultKind.RATE_LIMIT, 4: FaultKind.SERVER_ERROR}),
    )
    channel.send(make_letter())  # request 1
    channel.send(make_letter())  # 2 is rate limited, 3 accepted
    with pytest.raises(AmbiguousSend):
        channel.send(make_letter())  # 4
    assert [outcome for *_, outcome in channel.service.request_log()] == [
        "201",
        "429",
        "201",
        "500",
    ]


def test_a_wrong_key_is_forbidden(tmp_path: Path) -> None:
    key = "wrong-5b1f3f0e-7d1c-4c55-9b7e-2f3a9d4c8e10-00000000-0000-4000-8000-000000000000"
    channel = fake(tmp_path, api_key=key)
    with pytest.raises(ChannelForbidden):
        channel.send(make_letter())
    assert channel.service.count() == 0


def test_every_request_s_token_is_checked_though_answers_are_kept_per_token(
    tmp_path: Path,
) -> None:
    service = fake(tmp_path).service
    template_id = next(iter(CONFIG.templates.values())).template_id
    url = f"{FAKE_BASE_URL}/v2/template/{template_id}"

    def token(key: str = FAKE_SECRET, **claims: Any) -> str:
        return "Bearer " + jwt.encode(
            {"iss": FAKE_SERVICE_ID, "iat": 1_554_109_200, **claims}, key, algorithm="HS256"
        )

    good = token()
    wrong_key = token("0" * 36)
    wrong_issuer = token(iss="00000000-0000-4000-8000-000000000000")
    expired = token(exp=1_554_109_201)  # long before the machine's clock
    for _ in range(3):  # the same tokens again, in another order each time
        assert service.handle("GET", url, None, good).status == 200
        assert service.handle("GET", url, None, wrong_key).status == 403
        assert service.handle("GET", url, None, expired).status == 403
        assert service.handle("GET", url, None, wrong_issuer).status == 403
        assert service.handle("GET", url, None, good[:-2]).status == 403
        assert service.handle("GET", url, None, None).status == 401


def test_notify_validation_rejects_bad_letters(tmp_path: Path) -> None:
    channel = fake(tmp_path)
    good = make_letter()
    bad_postcode = OutgoingLetter(
        new_reference(),
        good.kind,
        good.template_id,
        {**good.personalisation, "address_line_4": "Caretown"},
    )
    with pytest.raises(LetterRejected) as caught:
        channel.send(bad_postcode)
    assert caught.value.code == "NOTIFY_BAD_POSTCODE" and not caught.value.stops_batch
    missing = dict(good.personalisation)
    del missing["reply_by"]
    with pytest.raises(LetterRejected) as caught:
        channel.send(OutgoingLetter(new_reference(), good.kind, good.template_id, missing))
    assert caught.value.code == "NOTIFY_MISSING_PERSONALISATION" and caught.value.stops_batch
    unknown = "11111111-1111-4111-8111-111111111111"
    with pytest.raises(LetterRejected) as caught:
        channel.send(OutgoingLetter(new_reference(), good.kind, unknown, good.personalisation))
    assert caught.value.code == "NOTIFY_TEMPLATE_NOT_FOUND" and caught.value.stops_batch
    assert channel.service.count() == 0


def test_listing_pages_through_every_letter(tmp_path: Path) -> None:
    channel = fake(tmp_path, page_size=2)
    reference = new_reference()
    for _ in range(5):  # a reference Notify holds five times (it does not make them unique)
        channel.send(make_letter(reference))
    other = make_letter()
    channel.send(other)
    found = channel.find_by_reference(reference)
    assert len(found) == 5 and all(n.reference == reference for n in found)
    assert [n.notify_id for n in found] == [
        n.notify_id for n in channel.service.notifications(reference)
    ]
    assert len(list(channel.iter_letters())) == 6
    channel.service.advance(days=1)
    assert len(list(channel.iter_letters(status="received"))) == 6
    assert list(channel.iter_letters(status="accepted")) == []
    duplicated = reconcile(channel, reference, attempted_at=T0, now=T0 + timedelta(hours=1))
    assert duplicated.decision is ReconcileDecision.DUPLICATED
    assert duplicated.adopted is not None
    assert duplicated.adopted.notify_id == found[0].notify_id


def test_the_same_seed_and_faults_replay_exactly(tmp_path: Path) -> None:
    runs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        channel = fake(
            tmp_path / run,
            seed=9,
            faults=Faults(rate_limit=0.2, server_error=0.1, timeout_after_accept=0.1),
        )
        references = [f"csa-{n:020x}" for n in range(40)]
        for reference in references:
            with contextlib.suppress(AmbiguousSend):
                channel.send(make_letter(reference))
        runs.append(
            (
                channel.service.request_log(),
                [(n.notify_id, n.reference) for n in channel.service.notifications()],
            )
        )
    assert runs[0] == runs[1]


def test_the_fake_channel_can_throttle_when_asked(tmp_path: Path) -> None:
    from csa_closure.channels import TokenBucket

    now = [0.0]
    bucket = TokenBucket(
        rate_per_minute=120,
        burst=1,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    channel = fake(tmp_path, limiter=bucket)
    for _ in range(5):
        channel.send(make_letter())
    assert bucket.waited == pytest.approx(2.0)


def test_unavailable_when_rate_limited_for_good(tmp_path: Path) -> None:
    channel = fake(tmp_path, faults=Faults(rate_limit=1.0), retry=RetryPolicy(attempts=3))
    with pytest.raises(ChannelUnavailable):
        channel.send(make_letter())
    assert channel.service.count() == 0


# --- a send killed part-way, and the re-run --------------------------------------------------

SENDER = textwrap.dedent(
    """
    import os, signal, sqlite3, sys
    from datetime import UTC, date, datetime, timedelta
    from csa_closure.channels import AmbiguousSend
    from csa_closure.simulation.fake_notify import FakeNotifyChannel, Faults, FaultKind
    from csa_closure.channels import ReconcileDecision, reconcile
    from csa_closure.letters import LetterFacts, RecipientParty, load_letters_config
    from csa_closure.letters import prepare_letter

    db, fake_path, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = load_letters_config(env={})
    timeouts = {f"csa-{n:020x}": FaultKind.TIMEOUT_AFTER_ACCEPT for n in (3, 11)}
    channel = FakeNotifyChannel(fake_path, templates=config, faults=Faults(on_reference=timeouts))
    outbox = sqlite3.connect(db, isolation_level=None)
    party = RecipientParty("CS2:1", given_names="Alice", family_name="Pwcperson",
                           address_line_1="1 Carer Close", postcode="LS1 1BA",
                           address_line_3="Caretown")
    accepted = 0
    # 1. reconcile letters left unknown (or sending) by an earlier run, before any resend
    for (reference,) in outbox.execute(
            "SELECT reference FROM letters WHERE status IN ('sending', 'unknown')").fetchall():
        result = reconcile(channel, reference, attempted_at=datetime(2000, 1, 1, tzinfo=UTC),
                           now=datetime(2000, 1, 2, tzinfo=UTC), retention_days=36500)
        if result.decision in (ReconcileDecision.SENT, ReconcileDecision.DUPLICATED):
            outbox.execute("UPDATE letters SET status = 'sent', notify_id = ? WHERE reference = ?",
                           (result.adopted.notify_id, reference))
        elif result.decision is ReconcileDecision.RESEND:
            outbox.execute("UPDATE letters SET status = 'pending' WHERE reference = ?",
                           (reference,))
    # 2. send what is pending: the intent is committed before the call
    for (reference,) in outbox.execute(
            "SELECT reference FROM letters WHERE status = 'pending' ORDER BY reference"
    ).fetchall():
        outbox.execute("UPDATE letters SET status = 'sending' WHERE reference = ?", (reference,))
        letter = prepare_letter(reference, "representation", "PWC", party,
                                LetterFacts("C000000001", 100, date(2019, 4, 1)), config)
        try:
            receipt = channel.send(letter)
        except AmbiguousSend:
            outbox.execute("UPDATE letters SET status = 'unknown' WHERE reference = ?",
                           (reference,))
            continue
        accepted += 1
        if accepted == kill_after:  # the worst moment: accepted, not yet recorded
            os.kill(os.getpid(), signal.SIGKILL)
        outbox.execute("UPDATE letters SET status = 'sent', notify_id = ? WHERE reference = ?",
                       (receipt.notify_id, reference))
    """
)


def test_a_send_killed_part_way_and_rerun_sends_every_letter_exactly_once(tmp_path: Path) -> None:
    db, fake_path, script = tmp_path / "outbox.db", tmp_path / "notify.db", tmp_path / "send.py"
    script.write_text(SENDER)
    references = [f"csa-{n:020x}" for n in range(20)]
    with sqlite3.connect(db) as outbox:
        outbox.execute(
            "CREATE TABLE letters (reference TEXT PRIMARY KEY, status TEXT, notify_id TEXT)"
        )
        outbox.executemany(
            "INSERT INTO letters VALUES (?, 'pending', NULL)", [(r,) for r in references]
        )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def run(kill_after: int) -> int:
        args = [sys.executable, str(script), str(db), str(fake_path), str(kill_after)]
        return subprocess.run(args, env=env, capture_output=True, timeout=120).returncode

    assert run(kill_after=5) == -signal.SIGKILL
    assert run(kill_after=4) == -signal.SIGKILL  # killed again, part-way through the re-run
    assert run(kill_after=0) == 0
    assert run(kill_after=0) == 0  # one more run finds nothing to do

    channel = FakeNotifyChannel(fake_path)
    assert channel.service.counts_by_reference() == {r: 1 for r in references}
    with sqlite3.connect(db) as outbox:
        rows = outbox.execute("SELECT status, notify_id FROM letters").fetchall()
    assert {status for status, _ in rows} == {"sent"}
    assert {n for _, n in rows} == {n.notify_id for n in channel.service.notifications()}
