"""Contract tests: NotifyChannel against the REAL notifications-python-client, with Notify's
HTTP API mocked by requests_mock. They pin the request bodies, the error mapping, the retries
and the reconcile-by-reference paging."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import jwt
import pytest
import requests
from notifications_python_client import NotificationsAPIClient
from notifications_python_client.errors import HTTP503Error

from csa_closure.channels import (
    AmbiguousSend,
    ChannelForbidden,
    ChannelMisconfigured,
    ChannelUnavailable,
    DailyLimitReached,
    LetterChannel,
    LetterRejected,
    NotifyChannel,
    NotifyStatus,
    RetryPolicy,
    TokenBucket,
    status_from_notify,
)
from csa_closure.domain.states import LetterStatus as OutboxStatus
from csa_closure.letters import (
    LetterFacts,
    RecipientParty,
    load_letters_config,
    new_reference,
    prepare_letter,
)

BASE = "https://notify.test"
SERVICE_ID = "0c2a0b8e-1234-4f6a-9d2e-0a1b2c3d4e5f"
SECRET = "7d4f1c2b-5678-4e3a-8b9c-1d2e3f4a5b6c"
API_KEY = f"csa_live-{SERVICE_ID}-{SECRET}"
SEND_URL = f"{BASE}/v2/notifications/letter"
LIST_URL = f"{BASE}/v2/notifications"
CONFIG = load_letters_config(env={})
NOTIFY_ID = "740e5834-3a29-46b4-9a6f-16142fde533a"


def error_body(status: int, error: str, message: str) -> dict[str, Any]:
    return {"status_code": status, "errors": [{"error": error, "message": message}]}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def channel(sleeps: Sleeps) -> NotifyChannel:
    client = NotificationsAPIClient(API_KEY, base_url=BASE)
    return NotifyChannel(client, limiter=None, retry=RetryPolicy(seed=7), sleep=sleeps)


@pytest.fixture
def letter() -> Any:
    party = RecipientParty(
        "CSCS:P000000001",
        given_names="Alice",
        family_name="Pwcperson",
        address_line_1="1 Carer Close",
        address_line_3="Caretown",
        postcode="LS1 1BA",
    )
    facts = LetterFacts("C123456789", 123456, date(2019, 3, 31))
    return prepare_letter(new_reference(), "representation", "PWC", party, facts, CONFIG)


def accepted(reference: str) -> dict[str, Any]:
    return {
        "id": NOTIFY_ID,
        "reference": reference,
        "content": {"subject": "s", "body": "b"},
        "uri": f"{BASE}/v2/notifications/{NOTIFY_ID}",
        "template": {"id": "2a9bda12-8b25-4cc8-a508-9e1f2d6700f7", "version": 3, "uri": "u"},
        "scheduled_for": None,
    }


# --- sending: the request ---------------------------------------------------------------


def test_a_send_posts_template_personalisation_and_reference(
    channel: NotifyChannel, letter: Any, requests_mock: Any
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json=accepted(letter.reference))
    receipt = channel.send(letter)
    assert (receipt.notify_id, receipt.reference, receipt.template_version) == (
        NOTIFY_ID,
        letter.reference,
        3,
    )
    (request,) = requests_mock.request_history
    assert request.method == "POST"
    assert request.json() == {
        "template_id": "2a9bda12-8b25-4cc8-a508-9e1f2d6700f7",
        "reference": letter.reference,
        "personalisation": {
            "address_line_1": "Alice Pwcperson",
            "address_line_2": "1 Carer Close",
            "address_line_3": "Caretown",
            "address_line_4": "LS1 1BA",
            "name": "Alice Pwcperson",
            "case_reference": "C123456789",
            "amount_owed": "£1,234.56",
            "letter_date": "31 March 2019",
            "reply_by": "30 May 2019",
        },
    }
    token = request.headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert claims["iss"] == SERVICE_ID
    assert isinstance(channel, LetterChannel)


# --- sending: the error mapping -----------------------------------------------------------


def test_a_429_rate_limit_is_retried_with_backoff_and_sends_once(
    channel: NotifyChannel, letter: Any, requests_mock: Any, sleeps: Sleeps
) -> None:
    limited = error_body(
        429,
        "RateLimitError",
        "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
    )
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 429, "json": limited},
            {"status_code": 429, "json": limited},
            {"status_code": 201, "json": accepted(letter.reference)},
        ],
    )
    assert channel.send(letter).notify_id == NOTIFY_ID
    assert requests_mock.call_count == 3
    assert len(sleeps) == 2
    assert 1.0 <= sleeps[0] <= 2.0 and 2.0 <= sleeps[1] <= 3.0  # 1s, 2s, plus jitter < 1s
    assert channel.slept == pytest.approx(sum(sleeps))


def test_backoff_jitter_is_seeded(letter: Any, requests_mock: Any) -> None:
    limited = error_body(429, "RateLimitError", "Exceeded rate limit")
    requests_mock.post(SEND_URL, status_code=429, json=limited)
    runs = []
    for _ in range(2):
        waits = Sleeps()
        channel = NotifyChannel(
            NotificationsAPIClient(API_KEY, base_url=BASE),
            limiter=None,
            retry=RetryPolicy(attempts=5, seed=11),
            sleep=waits,
        )
        with pytest.raises(ChannelUnavailable):
            channel.send(letter)
        runs.append(list(waits))
    assert runs[0] == runs[1]
    assert [int(w) for w in runs[0]] == [1, 2, 4, 8]


def test_a_rate_limit_that_never_lifts_stops_with_nothing_sent(
    channel: NotifyChannel, letter: Any, requests_mock: Any, sleeps: Sleeps
) -> None:
    requests_mock.post(SEND_URL, status_code=429, json=error_body(429, "RateLimitError", "x"))
    with pytest.raises(ChannelUnavailable, match="nothing was sent") as caught:
        channel.send(letter)
    assert requests_mock.call_count == 6 and len(sleeps) == 5
    assert caught.value.stops_batch


def test_a_429_daily_limit_stops_without_retrying(
    channel: NotifyChannel, letter: Any, requests_mock: Any, sleeps: Sleeps
) -> None:
    requests_mock.post(
        SEND_URL,
        status_code=429,
        json=error_body(429, "TooManyRequestsError", "Exceeded send limits (20000) for today"),
    )
    with pytest.raises(DailyLimitReached, match="resume the batch tomorrow"):
        channel.send(letter)
    assert requests_mock.call_count == 1 and sleeps == []


def test_a_400_fails_the_letter_with_a_reason_and_no_personal_data(
    channel: NotifyChannel, letter: Any, requests_mock: Any, sleeps: Sleeps
) -> None:
    requests_mock.post(
        SEND_URL,
        status_code=400,
        json=error_body(
            400, "ValidationError", "Must be a real UK postcode (got LS1 1BA for Alice Pwcperson)"
        ),
    )
    with pytest.raises(LetterRejected) as caught:
        channel.send(letter)
    rejected = caught.value
    assert rejected.code == "NOTIFY_BAD_POSTCODE" and not rejected.stops_batch
    assert rejected.reason.startswith("ValidationError: Must be a real UK postcode")
    for value in ("LS1 1BA", "Alice", "Pwcperson"):
        assert value not in rejected.reason and value not in str(rejected)
    assert requests_mock.call_count == 1 and sleeps == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Cannot send letters with a team api key", "NOTIFY_TEAM_KEY"),
        ("Cannot send letters when service is in trial mode", "NOTIFY_TRIAL_MODE"),
        ("Service is not allowed to send letters", "NOTIFY_SERVICE_CANNOT_SEND_LETTERS"),
        ("Template has been deleted", "NOTIFY_TEMPLATE_DELETED"),
        ("email template is not suitable for letter notification", "NOTIFY_WRONG_TEMPLATE_TYPE"),
        ("Missing personalisation: reply_by", "NOTIFY_MISSING_PERSONALISATION"),
        ("Template not found", "NOTIFY_TEMPLATE_NOT_FOUND"),
    ],
)  # fmt: skip
def test_a_400_that_will_fail_every_letter_says_to_stop_the_batch(
    channel: NotifyChannel, letter: Any, requests_mock: Any, message: str, code: str
) -> None:
    requests_mock.post(SEND_URL, status_code=400, json=error_body(400, "BadRequestError", message))
    with pytest.raises(LetterRejected) as caught:
        channel.send(letter)
    assert caught.value.code == code and caught.value.stops_batch


@pytest.mark.parametrize(
    ("message", "code", "cause"),
    [
        ("Cannot send letters with a team api key", "NOTIFY_TEAM_KEY", "is a team key"),
        ("Cannot send letters when service is in trial mode", "NOTIFY_TRIAL_MODE", "trial mode"),
    ],
)
def test_a_403_for_a_team_key_or_trial_mode_names_the_real_cause(
    channel: NotifyChannel, letter: Any, requests_mock: Any, message: str, code: str, cause: str
) -> None:
    requests_mock.post(SEND_URL, status_code=403, json=error_body(403, "BadRequestError", message))
    with pytest.raises(ChannelForbidden, match=cause) as caught:
        channel.send(letter)
    assert caught.value.code == code and caught.value.stops_batch
    assert "system clock" not in str(caught.value)


def test_a_403_stops_the_batch_and_says_to_check_the_key(
    channel: NotifyChannel, letter: Any, requests_mock: Any
) -> None:
    requests_mock.post(
        SEND_URL,
        status_code=403,
        json=error_body(403, "AuthError", "Invalid token: API key not found"),
    )
    with pytest.raises(ChannelForbidden, match="check that NOTIFY_API_KEY") as caught:
        channel.send(letter)
    assert caught.value.stops_batch and SECRET not in str(caught.value)
    assert requests_mock.call_count == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_on_a_send_is_ambiguous_and_never_retried(
    channel: NotifyChannel, letter: Any, requests_mock: Any, sleeps: Sleeps, status: int
) -> None:
    requests_mock.post(
        SEND_URL, status_code=status, json=error_body(status, "Exception", "Internal server error")
    )
    with pytest.raises(AmbiguousSend) as caught:
        channel.send(letter)
    assert caught.value.reference == letter.reference
    assert caught.value.code == f"AMBIGUOUS_SERVER_ERROR_{status}"
    assert "reconcile it by reference" in str(caught.value)
    assert requests_mock.call_count == 1 and sleeps == []


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (requests.exceptions.ReadTimeout, "TIMEOUT"),
        (requests.exceptions.ConnectTimeout, "TIMEOUT"),
        (requests.exceptions.ConnectionError, "CONNECTION"),
        (requests.exceptions.ChunkedEncodingError, "NETWORK"),
    ],
)
def test_a_network_failure_on_a_send_is_ambiguous_and_never_retried(
    channel: NotifyChannel,
    letter: Any,
    requests_mock: Any,
    sleeps: Sleeps,
    failure: type[Exception],
    cause: str,
) -> None:
    requests_mock.post(SEND_URL, exc=failure)
    with pytest.raises(AmbiguousSend) as caught:
        channel.send(letter)
    assert caught.value.cause == cause
    assert requests_mock.call_count == 1 and sleeps == []


def test_the_client_reports_network_failures_as_a_503_with_the_cause(requests_mock: Any) -> None:
    """The assumption the mapping rests on, pinned against the installed client."""
    requests_mock.post(SEND_URL, exc=requests.exceptions.ReadTimeout)
    client = NotificationsAPIClient(API_KEY, base_url=BASE)
    with pytest.raises(HTTP503Error) as caught:
        client.send_letter_notification("t", {"address_line_1": "x"}, reference="r")
    assert caught.value.status_code == 503 and caught.value.response is None
    assert isinstance(caught.value.__cause__, requests.exceptions.ReadTimeout)


def test_an_unreadable_reply_to_a_send_is_ambiguous(
    channel: NotifyChannel, letter: Any, requests_mock: Any
) -> None:
    requests_mock.post(SEND_URL, status_code=201, text="<html>proxy</html>")
    with pytest.raises(AmbiguousSend, match="UNREADABLE_REPLY"):
        channel.send(letter)
    requests_mock.post(SEND_URL, status_code=201, json={"no": "id"})
    with pytest.raises(AmbiguousSend, match="UNREADABLE_REPLY"):
        channel.send(letter)


def test_an_unexpected_4xx_stops_with_nothing_sent(
    channel: NotifyChannel, letter: Any, requests_mock: Any
) -> None:
    requests_mock.post(SEND_URL, status_code=404, json=error_body(404, "NotFound", "nope"))
    with pytest.raises(ChannelMisconfigured, match="NOTIFY_BASE_URL"):
        channel.send(letter)


def test_logs_never_carry_personal_data_or_the_key(
    channel: NotifyChannel, letter: Any, requests_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoing = error_body(400, "ValidationError", "Alice Pwcperson at 1 Carer Close, LS1 1BA")
    limited = error_body(429, "RateLimitError", "x")
    requests_mock.post(
        SEND_URL, [{"status_code": 429, "json": limited}, {"status_code": 400, "json": echoing}]
    )
    with pytest.raises(LetterRejected):
        channel.send(letter)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged  # the client and the channel did log
    for secret in ("Alice", "Pwcperson", "Carer", "LS1 1BA", SECRET, API_KEY):
        assert secret not in logged


# --- lookups -------------------------------------------------------------------------------


def notification(notify_id: str, reference: str, status: str, created: str) -> dict[str, Any]:
    return {
        "id": notify_id,
        "reference": reference,
        "type": "letter",
        "status": status,
        "template": {"id": "2a9bda12-8b25-4cc8-a508-9e1f2d6700f7", "version": 1, "uri": "u"},
        "created_at": created,
        "line_1": "Alice Pwcperson",
        "line_2": "1 Carer Close",
        "postcode": "LS1 1BA",
    }


def test_status_lookups_map_notify_statuses_and_keep_no_address(
    channel: NotifyChannel, requests_mock: Any
) -> None:
    requests_mock.get(
        f"{LIST_URL}/{NOTIFY_ID}",
        json=notification(NOTIFY_ID, "csa-ref", "received", "2019-03-31T10:00:00.000000Z"),
    )
    info = channel.get_status(NOTIFY_ID)
    assert info is not None
    assert info.status is NotifyStatus.RECEIVED and info.notify_status == "received"
    assert info.created_at == datetime(2019, 3, 31, 10, tzinfo=UTC)
    assert "Alice" not in repr(info) and "LS1" not in repr(info)


def test_a_letter_past_retention_is_none(channel: NotifyChannel, requests_mock: Any) -> None:
    requests_mock.get(
        f"{LIST_URL}/{NOTIFY_ID}",
        status_code=404,
        json=error_body(404, "NoResultFound", "No result found"),
    )
    assert channel.get_status(NOTIFY_ID) is None
    assert channel.get_statuses([NOTIFY_ID]) == {NOTIFY_ID: None}


def test_lookups_are_retried_on_5xx_and_network_failures(
    channel: NotifyChannel, requests_mock: Any, sleeps: Sleeps
) -> None:
    requests_mock.get(
        f"{LIST_URL}/{NOTIFY_ID}",
        [
            {"status_code": 502, "json": error_body(502, "Exception", "x")},
            {"exc": requests.exceptions.ConnectionError},
            {"status_code": 429, "json": error_body(429, "RateLimitError", "x")},
            {"json": notification(NOTIFY_ID, "r", "accepted", "2019-03-31T10:00:00Z")},
        ],
    )
    info = channel.get_status(NOTIFY_ID)
    assert info is not None and info.status is NotifyStatus.ACCEPTED
    assert requests_mock.call_count == 4 and len(sleeps) == 3


def test_lookups_that_keep_failing_stop_cleanly(channel: NotifyChannel, requests_mock: Any) -> None:
    requests_mock.get(f"{LIST_URL}/{NOTIFY_ID}", status_code=503, json={})
    with pytest.raises(ChannelUnavailable, match="nothing was changed"):
        channel.get_status(NOTIFY_ID)
    requests_mock.get(
        f"{LIST_URL}/{NOTIFY_ID}", status_code=403, json=error_body(403, "AuthError", "x")
    )
    with pytest.raises(ChannelForbidden):
        channel.get_status(NOTIFY_ID)


def test_a_notify_id_must_be_a_uuid(channel: NotifyChannel, requests_mock: Any) -> None:
    with pytest.raises(ValueError):
        channel.get_status("../../v2/templates")
    assert requests_mock.call_count == 0


def test_find_by_reference_pages_with_older_than(
    channel: NotifyChannel, requests_mock: Any
) -> None:
    ids = [f"00000000-0000-4000-8000-00000000000{n}" for n in range(4)]
    ref = "csa-0123456789abcdef0123"
    pages = [
        {
            "notifications": [
                notification(ids[3], ref, "received", "2019-04-03T00:00:00Z"),
                notification(ids[2], ref, "technical-failure", "2019-04-02T00:00:00Z"),
            ],
            "links": {"current": "c", "next": f"{LIST_URL}?older_than={ids[2]}"},
        },
        {
            "notifications": [notification(ids[1], ref, "accepted", "2019-04-01T00:00:00Z")],
            "links": {"current": "c", "next": f"{LIST_URL}?older_than={ids[1]}"},
        },
        {"notifications": [], "links": {"current": "c"}},
    ]
    requests_mock.get(LIST_URL, [{"json": page} for page in pages])
    found = channel.find_by_reference(ref)
    assert [n.notify_id for n in found] == [ids[1], ids[2], ids[3]]  # oldest first
    assert [n.status for n in found] == [
        NotifyStatus.ACCEPTED,
        NotifyStatus.TECHNICAL_FAILURE,
        NotifyStatus.RECEIVED,
    ]
    queries = [r.qs for r in requests_mock.request_history]
    assert queries[0] == {"reference": [ref], "template_type": ["letter"]}
    assert queries[1] == {"reference": [ref], "template_type": ["letter"], "older_than": [ids[2]]}
    assert queries[2] == {"reference": [ref], "template_type": ["letter"], "older_than": [ids[1]]}


def test_find_by_reference_stops_without_a_next_link(
    channel: NotifyChannel, requests_mock: Any
) -> None:
    ref = "csa-0123456789abcdef0123"
    requests_mock.get(
        LIST_URL,
        json={
            "notifications": [notification(NOTIFY_ID, ref, "accepted", "2019-04-01T00:00:00Z")],
            "links": {},
        },
    )
    assert len(channel.find_by_reference(ref)) == 1
    assert requests_mock.call_count == 1
    requests_mock.get(LIST_URL, json={"notifications": [], "links": {}})
    assert channel.find_by_reference(ref) == []


@pytest.mark.parametrize(
    ("notify", "ours", "final"),
    [
        ("created", NotifyStatus.ACCEPTED, False),
        ("pending-virus-check", NotifyStatus.ACCEPTED, False),
        ("sending", NotifyStatus.ACCEPTED, False),
        ("accepted", NotifyStatus.ACCEPTED, False),
        ("received", NotifyStatus.RECEIVED, False),  # a return can still come
        ("returned-letter", NotifyStatus.RETURNED_LETTER, True),
        ("permanent-failure", NotifyStatus.PERMANENT_FAILURE, True),
        ("technical-failure", NotifyStatus.TECHNICAL_FAILURE, True),
        ("cancelled", NotifyStatus.CANCELLED, True),
        ("validation-failed", NotifyStatus.PERMANENT_FAILURE, True),
        ("virus-scan-failed", NotifyStatus.PERMANENT_FAILURE, True),
        ("something-new", NotifyStatus.ACCEPTED, False),
    ],
)
def test_notify_statuses_map_to_ours(notify: str, ours: NotifyStatus, final: bool) -> None:
    assert status_from_notify(notify) is ours
    assert ours.is_final is final


def test_notify_statuses_are_outbox_statuses_too() -> None:
    outbox = {s.value for s in OutboxStatus}
    assert {s.value for s in NotifyStatus} <= outbox
    assert "pending" not in {s.value for s in NotifyStatus}  # the outbox's "built, not sent"


def test_what_each_final_status_means() -> None:
    assert {s for s in NotifyStatus if s.needs_tracing} == {
        NotifyStatus.RETURNED_LETTER,
        NotifyStatus.PERMANENT_FAILURE,
    }
    # a technical failure is never printed, and nothing here sends it again by itself
    assert NotifyStatus.TECHNICAL_FAILURE.voided and not NotifyStatus.TECHNICAL_FAILURE.dispatched
    assert {s for s in NotifyStatus if s.dispatched} == {
        NotifyStatus.RECEIVED,
        NotifyStatus.RETURNED_LETTER,
    }


# --- construction and throttling -----------------------------------------------------------


def test_the_key_comes_from_the_environment_and_is_never_shown(requests_mock: Any) -> None:
    with pytest.raises(ChannelMisconfigured, match="NOTIFY_API_KEY is not set"):
        NotifyChannel.from_env({})
    with pytest.raises(ChannelMisconfigured, match="does not look like") as caught:
        NotifyChannel.from_env({"NOTIFY_API_KEY": "hunter2-not-a-key"})
    assert "hunter2" not in str(caught.value)
    channel = NotifyChannel.from_env(
        {"NOTIFY_API_KEY": API_KEY, "NOTIFY_BASE_URL": BASE}, limiter=None
    )
    assert SECRET not in repr(channel)
    requests_mock.get(LIST_URL, json={"notifications": [], "links": {}})
    assert channel.find_by_reference("csa-0123456789abcdef0123") == []
    assert requests_mock.request_history[0].url.startswith(BASE)


def test_every_request_takes_a_token_from_the_rate_limiter(letter: Any, requests_mock: Any) -> None:
    now = [0.0]
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate_per_minute=60, burst=2, clock=lambda: now[0], sleep=sleep)
    channel = NotifyChannel(
        NotificationsAPIClient(API_KEY, base_url=BASE), limiter=bucket, sleep=sleep
    )
    requests_mock.post(SEND_URL, status_code=201, json=accepted(letter.reference))
    for _ in range(5):
        channel.send(letter)
    assert requests_mock.call_count == 5
    assert waited == pytest.approx([1.0, 1.0, 1.0])  # 2 from the burst, then 1 a second


def test_requests_mock_saw_json_bodies(
    channel: NotifyChannel, letter: Any, requests_mock: Any
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json=accepted(letter.reference))
    channel.send(letter)
    body = json.loads(requests_mock.request_history[0].body)
    assert set(body) == {"template_id", "personalisation", "reference"}
