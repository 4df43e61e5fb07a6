"""GOV.UK Notify, through the official ``notifications-python-client``.

One letter per call. What the caller gets back:

- a :class:`SendReceipt` when Notify accepted the letter (201);
- :class:`AmbiguousSend` when it cannot be known: a timeout, a dropped connection (the client
  reports these as a 503 with no response and the real error in ``__cause__``), a 5xx, or a
  reply that cannot be read. The letter may have been accepted: never resend it before
  :func:`~csa_closure.channels.reconcile.reconcile` has looked it up by reference;
- :class:`LetterRejected` for a 400 (the reason with any personalisation value withheld);
- :class:`DailyLimitReached` for a 429 ``TooManyRequestsError``;
- :class:`ChannelForbidden` for a 403;
- :class:`ChannelUnavailable` when Notify still rate limits (429 ``RateLimitError``) after every
  retry: nothing was sent.

Only a 429 ``RateLimitError`` is retried on a send, because a send is not idempotent. Lookups
(status, reconcile by reference) are, so they are also retried on 5xx and network failures.
Retries back off exponentially with seeded jitter; every request first takes a token from the
client-side rate limiter.

The API key comes from the environment (``NOTIFY_API_KEY``), is never logged, and is never put
in a message. Notify's replies carry the address; only ids, references and statuses are kept.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import requests
from notifications_python_client import NotificationsAPIClient
from notifications_python_client.errors import APIError, InvalidResponse
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from csa_closure.channels.errors import (
    AmbiguousSend,
    ChannelError,
    ChannelForbidden,
    ChannelMisconfigured,
    ChannelUnavailable,
    DailyLimitReached,
    LetterRejected,
)
from csa_closure.channels.ratelimit import TokenBucket
from csa_closure.channels.status import NotificationInfo, SendReceipt, status_from_notify
from csa_closure.letters.compose import OutgoingLetter

log = logging.getLogger(__name__)

API_KEY_ENV = "NOTIFY_API_KEY"
BASE_URL_ENV = "NOTIFY_BASE_URL"
DEFAULT_BASE_URL = "https://api.notifications.service.gov.uk"
DEFAULT_TIMEOUT_SECONDS = 30.0
MAX_REASON_LENGTH = 200
WITHHELD = "[withheld]"

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits ``min(maximum, initial * 2**(n-1))``
    plus up to ``jitter`` seconds, drawn from a generator seeded with ``seed``."""

    attempts: int = 6
    initial: float = 1.0
    maximum: float = 60.0
    jitter: float = 1.0
    seed: int | None = 0


class _Retryable(Exception):
    """Internal: try the request again (rate limited, or a lookup that failed in transit)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _NotFound(Exception):
    """Internal: a lookup found nothing (404)."""


_UNSET: Any = object()


class NotifyChannel:
    """Letters through GOV.UK Notify. ``client`` is a ``NotificationsAPIClient`` (or any
    object with its methods); :meth:`from_env` builds one from ``NOTIFY_API_KEY``."""

    name = "govuk-notify"

    def __init__(
        self,
        client: NotificationsAPIClient,
        *,
        limiter: TokenBucket | None = _UNSET,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        max_pages: int = 1_000,
    ) -> None:
        self._client = client
        self._limiter = TokenBucket(sleep=sleep) if limiter is _UNSET else limiter
        self._retry = retry
        self._rng = random.Random(retry.seed)
        self._sleep = sleep
        self._max_pages = max_pages
        self.slept = 0.0  # seconds spent in retry backoff
        _quiet_client_log()

    def __repr__(self) -> str:  # never the client: it holds the key
        return f"{type(self).__name__}(name={self.name!r})"

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        key_variable: str = API_KEY_ENV,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        **options: Any,
    ) -> NotifyChannel:
        """A channel whose key is read from ``$NOTIFY_API_KEY`` and base URL from the argument,
        ``$NOTIFY_BASE_URL`` or Notify's live URL."""
        env = os.environ if env is None else env
        key = env.get(key_variable, "").strip()
        _check_api_key(key, key_variable)
        url = base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
        client = NotificationsAPIClient(key, base_url=url, timeout=timeout)
        return cls(client, **options)

    # --- sending ---------------------------------------------------------------------------

    def send(self, letter: OutgoingLetter) -> SendReceipt:
        """Send one letter. See the module docstring for what each failure means."""

        def attempt() -> Any:
            self._throttle()
            try:
                return self._client.send_letter_notification(
                    template_id=letter.template_id,
                    personalisation=dict(letter.personalisation),
                    reference=letter.reference,
                )
            except APIError as exc:
                raise _send_error(exc, letter) from None

        try:
            reply = self._with_retries(attempt)
        except _Retryable as exc:
            raise ChannelUnavailable(
                f"letter {letter.reference} not sent: Notify still refused it after"
                f" {self._retry.attempts} attempts ({exc.why}); nothing was sent, try later",
                status_code=429,
            ) from None
        notify_id = reply.get("id") if isinstance(reply, dict) else None
        if not isinstance(notify_id, str) or not notify_id:
            raise AmbiguousSend(letter.reference, "UNREADABLE_REPLY")
        version = (reply.get("template") or {}).get("version")
        log.info("letter %s accepted by Notify as %s", letter.reference, notify_id)
        return SendReceipt(
            letter.reference, notify_id, version if isinstance(version, int) else None
        )

    # --- looking up ------------------------------------------------------------------------

    def find_by_reference(self, reference: str) -> list[NotificationInfo]:
        """Every letter Notify holds with ``reference`` (oldest first), paging through
        ``get_all_notifications(reference=..., template_type="letter", older_than=...)``.
        Notify only holds letters inside its retention period."""
        found = [n for n in self.iter_letters(reference=reference) if n.reference == reference]
        found.reverse()  # Notify lists newest first; a stable sort keeps that order for ties
        return sorted(found, key=lambda n: n.created_at or datetime.max.replace(tzinfo=UTC))

    def iter_letters(
        self, *, reference: str | None = None, status: str | None = None
    ) -> Iterator[NotificationInfo]:
        """Every letter Notify holds (newest first), optionally by reference or status: the
        cheap way to poll many statuses (250 a request)."""
        older_than: str | None = None
        seen: set[str] = set()
        for _ in range(self._max_pages):
            try:
                page = self._lookup(partial(self._list_page, reference, status, older_than))
            except _NotFound:
                return
            items = [n for n in page.get("notifications") or [] if isinstance(n, dict)]
            fresh = [n for n in items if str(n.get("id")) not in seen]
            if not fresh:
                return
            for item in fresh:
                seen.add(str(item.get("id")))
                yield _info(item)
            if not ((page.get("links") or {}).get("next")):
                return
            older_than = str(items[-1].get("id"))
        raise ChannelUnavailable(
            f"Notify returned more than {self._max_pages} pages of letters; stopped paging"
        )

    def _list_page(
        self, reference: str | None, status: str | None, older_than: str | None
    ) -> dict[str, Any]:
        page = self._client.get_all_notifications(
            status=status, template_type="letter", reference=reference, older_than=older_than
        )
        return page if isinstance(page, dict) else {}

    def get_status(self, notify_id: str) -> NotificationInfo | None:
        """The letter's status, or ``None`` if Notify has no such letter (never accepted, or
        older than its retention period)."""
        if not _is_uuid(notify_id):
            raise ValueError("a Notify notification id is a UUID")
        try:
            item = self._lookup(lambda: self._client.get_notification_by_id(notify_id))
        except _NotFound:
            return None
        return _info(item)

    def get_statuses(self, notify_ids: Iterable[str]) -> dict[str, NotificationInfo | None]:
        return {notify_id: self.get_status(notify_id) for notify_id in notify_ids}

    def get_template(self, template_id: str) -> TemplateInfo | None:
        """The template as Notify has it (``get_template`` in the official client: GET
        /v2/template/{id}), or ``None`` if this service has no such template."""
        try:
            item = self._lookup(lambda: self._client.get_template(template_id))
        except _NotFound:
            return None
        version = item.get("version")
        return TemplateInfo(
            template_id=str(item.get("id") or template_id),
            template_type=str(item.get("type") or ""),
            version=version if isinstance(version, int) else None,
            placeholders=template_placeholders(item.get("subject"), item.get("body")),
        )

    # --- plumbing --------------------------------------------------------------------------

    def _throttle(self) -> None:
        if self._limiter is not None:
            self._limiter.acquire()

    def _lookup(self, call: Callable[[], T]) -> T:
        def attempt() -> T:
            self._throttle()
            try:
                return call()
            except APIError as exc:
                raise _lookup_error(exc) from None

        try:
            return self._with_retries(attempt)
        except _Retryable as exc:
            raise ChannelUnavailable(
                f"Notify lookups are failing ({exc.why}) after {self._retry.attempts} attempts;"
                " nothing was changed, try later",
                status_code=503,
            ) from None

    def _with_retries(self, attempt: Callable[[], T]) -> T:
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self._retry.attempts),
            wait=self._wait,
            sleep=self._backoff_sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(attempt)

    def _wait(self, state: RetryCallState) -> float:
        policy = self._retry
        base = min(policy.maximum, policy.initial * 2 ** (state.attempt_number - 1))
        return base + self._rng.uniform(0, policy.jitter)

    def _backoff_sleep(self, seconds: float) -> None:
        self.slept += seconds
        self._sleep(seconds)


@dataclass(frozen=True)
class TemplateInfo:
    """What we read of a Notify template: its type and the placeholders it uses."""

    template_id: str
    template_type: str  # "letter", "email" or "sms"
    version: int | None
    placeholders: tuple[str, ...]  # as the template writes them, each once, in order


_PLACEHOLDER = re.compile(r"\(\(([^()]+?)\)\)")


def template_placeholders(*texts: Any) -> tuple[str, ...]:
    """The placeholders of a template's subject and body: ``((name))``, and the name of a
    conditional ``((name??text))``."""
    names: list[str] = []
    for text in texts:
        for match in _PLACEHOLDER.finditer(str(text or "")):
            name = match.group(1).split("??")[0].strip()
            if name and fold_placeholder(name) not in {fold_placeholder(n) for n in names}:
                names.append(name)
    return tuple(names)


def fold_placeholder(name: str) -> str:
    """A placeholder name as Notify matches it: case, spaces, ``_`` and ``-`` ignored."""
    return name.replace(" ", "").replace("_", "").replace("-", "").lower()


# --- error mapping -------------------------------------------------------------------------


def notify_error(exc: APIError) -> tuple[str | None, str]:
    """Notify's error name (``RateLimitError``, ``ValidationError`` ...) and message(s), from
    the reply ``{"status_code": .., "errors": [{"error": .., "message": ..}]}``."""
    response = getattr(exc, "response", None)
    if response is None:
        return None, ""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        names = [e.get("error") for e in errors if isinstance(e, dict)]
        messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
        return (names[0] if names else None), "; ".join(m for m in messages if m)
    return None, str(body.get("message", ""))


def _transport_failure(exc: APIError) -> str | None:
    """For a request that never got a reply: TIMEOUT, CONNECTION or NETWORK."""
    if getattr(exc, "response", None) is not None:
        return None
    cause = exc.__cause__
    if isinstance(cause, requests.exceptions.Timeout):
        return "TIMEOUT"
    if isinstance(cause, requests.exceptions.ConnectionError):
        return "CONNECTION"
    return "NETWORK"


def _send_error(exc: APIError, letter: OutgoingLetter) -> Exception:
    reference = letter.reference
    transport = _transport_failure(exc)
    if transport is not None:
        return AmbiguousSend(reference, transport)
    status = exc.status_code
    if isinstance(exc, InvalidResponse):
        return AmbiguousSend(reference, "UNREADABLE_REPLY", status_code=status)
    if status >= 500:
        return AmbiguousSend(reference, f"SERVER_ERROR_{status}", status_code=status)
    error, message = notify_error(exc)
    if status == 429:
        if error == "TooManyRequestsError":
            return DailyLimitReached()
        return _Retryable(f"429 {error or 'rate limited'}")
    if status == 400:
        return _rejection(reference, error, message, letter.personalisation.values())
    if status in (401, 403):
        return _forbidden(status, error, message)
    return ChannelMisconfigured(
        f"letter {reference} not sent: Notify answered {status} {error or ''}".rstrip()
        + f"; nothing was sent: check {BASE_URL_ENV} and the client version",
        status_code=status,
    )


def _lookup_error(exc: APIError) -> Exception:
    transport = _transport_failure(exc)
    if transport is not None:
        return _Retryable(transport)
    status = exc.status_code
    if isinstance(exc, InvalidResponse) or status >= 500:
        return _Retryable(f"{status} from Notify")
    error, message = notify_error(exc)
    if status == 429:
        if error == "TooManyRequestsError":
            return DailyLimitReached()
        return _Retryable(f"429 {error or 'rate limited'}")
    if status == 404:
        return _NotFound()
    if status in (401, 403):
        return _forbidden(status, error, message)
    return ChannelMisconfigured(
        f"Notify refused a lookup: {status} {error or ''} {_truncate(message)}".strip(),
        status_code=status,
    )


def _forbidden(status: int, error: str | None, message: str = "") -> ChannelForbidden:
    lowered = message.lower()
    for needle, code in _SERVICE_WIDE[:2]:  # a team key, trial mode: the key's own kind
        if needle in lowered:
            refused = ChannelForbidden(
                f"Notify refused the send ({status} {error or 'AuthError'}): "
                f"{SERVICE_WIDE_CAUSES[code]}; the batch is stopped",
                status_code=status,
            )
            refused.code = code
            return refused
    return ChannelForbidden(
        f"Notify refused the API key ({status} {error or 'AuthError'}): check that"
        f" {API_KEY_ENV} holds this service's live key and that the system clock is right;"
        " the batch is stopped",
        status_code=status,
    )


# Refusals every letter of the batch would get: Notify's words (lower case), our code. The send
# stops after the first one, with the cause below (runbooks/03-letters.md).
_SERVICE_WIDE = (
    ("team api key", "NOTIFY_TEAM_KEY"),
    ("trial mode", "NOTIFY_TRIAL_MODE"),
    ("service is not allowed to send letters", "NOTIFY_SERVICE_CANNOT_SEND_LETTERS"),
    ("template has been deleted", "NOTIFY_TEMPLATE_DELETED"),
    ("template is not suitable for", "NOTIFY_WRONG_TEMPLATE_TYPE"),
    ("missing personalisation", "NOTIFY_MISSING_PERSONALISATION"),
    ("template not found", "NOTIFY_TEMPLATE_NOT_FOUND"),
    ("template_id", "NOTIFY_TEMPLATE_NOT_FOUND"),
)
SERVICE_WIDE_CAUSES = {
    "NOTIFY_TEAM_KEY": (
        f"{API_KEY_ENV} is a team key, which cannot send letters: use the service's live key"
    ),
    "NOTIFY_TRIAL_MODE": (
        "the Notify service is in trial mode, which cannot send letters: ask Notify to make"
        " the service live"
    ),
    "NOTIFY_SERVICE_CANNOT_SEND_LETTERS": (
        "the Notify service is not allowed to send letters: a service manager must turn on"
        " letters in the service's settings in Notify"
    ),
    "NOTIFY_TEMPLATE_DELETED": (
        "a template in the letters configuration has been deleted in Notify: restore it in"
        " Notify or configure the id of the template that replaces it"
    ),
    "NOTIFY_WRONG_TEMPLATE_TYPE": (
        "a template id in the letters configuration is not a letter template (an email or text"
        " message one): configure the letter template's id"
    ),
    "NOTIFY_MISSING_PERSONALISATION": (
        "a template needs a placeholder the letters configuration does not send: add it to the"
        " configuration's placeholders for that template"
    ),
    "NOTIFY_TEMPLATE_NOT_FOUND": (
        "a template id in the letters configuration is not one of this service's templates:"
        " check the ids against Notify"
    ),
}
_PER_LETTER = (
    ("postcode", "NOTIFY_BAD_POSTCODE"),
    ("real address", "NOTIFY_BAD_ADDRESS"),
    ("address", "NOTIFY_BAD_ADDRESS"),
)


def _rejection(
    reference: str, error: str | None, message: str, values: Iterable[str]
) -> LetterRejected:
    lowered = message.lower()
    reason = _truncate(_withhold(f"{error or 'BadRequestError'}: {message}".strip(), values))
    for needle, code in _SERVICE_WIDE:
        if needle in lowered:
            return LetterRejected(reference, code, reason, stops_batch=True)
    for needle, code in _PER_LETTER:
        if needle in lowered:
            return LetterRejected(reference, code, reason)
    return LetterRejected(reference, "NOTIFY_REJECTED", reason)


def _withhold(text: str, values: Iterable[str]) -> str:
    """``text`` with every personalisation value we sent replaced: Notify's messages are not
    meant to quote them, but a failure reason must never carry personal data."""
    for value in sorted(
        {str(v) for v in values if len(str(v).strip()) >= 2}, key=len, reverse=True
    ):
        start = text.lower().find(value.lower())
        while start != -1:
            text = text[:start] + WITHHELD + text[start + len(value) :]
            start = text.lower().find(value.lower(), start + len(WITHHELD))
    return text


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 1] + "…"


# --- replies ---------------------------------------------------------------------------


def _info(item: Mapping[str, Any]) -> NotificationInfo:
    """Ids, status and times only: the reply's address lines are not read."""
    raw = str(item.get("status") or "")
    template = item.get("template") or {}
    return NotificationInfo(
        notify_id=str(item.get("id")),
        reference=item.get("reference"),
        status=status_from_notify(raw),
        notify_status=raw,
        created_at=_instant(item.get("created_at")),
        template_id=template.get("id") if isinstance(template, dict) else None,
    )


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def _check_api_key(key: str, variable: str) -> None:
    if not key:
        raise ChannelMisconfigured(
            f"{variable} is not set: export the service's Notify API key in the environment"
        )
    if len(key) < 74 or not (_is_uuid(key[-73:-37]) and _is_uuid(key[-36:])):
        raise ChannelMisconfigured(
            f"{variable} does not look like a Notify API key"
            " (key name, service id and secret, as Notify shows it once when it is created)"
        )


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    why = getattr(exc, "why", type(exc).__name__)
    wait = state.next_action.sleep if state.next_action else 0.0
    log.info(
        "Notify request retried (attempt %d, %s), waiting %.1fs", state.attempt_number, why, wait
    )


class _WithholdClientMessages(logging.Filter):
    """The client logs Notify's error message on every failure; Notify's messages can echo
    what was sent, so the message is withheld (method, URL and status stay)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            isinstance(record.msg, str)
            and record.msg.startswith("API %s request on %s failed")
            and isinstance(record.args, tuple)
            and len(record.args) == 4
        ):
            record.args = (*record.args[:3], WITHHELD)
        return True


def _quiet_client_log() -> None:
    client_log = logging.getLogger("notifications_python_client.base")
    if not any(isinstance(f, _WithholdClientMessages) for f in client_log.filters):
        client_log.addFilter(_WithholdClientMessages())


__all__ = [
    "API_KEY_ENV",
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "ChannelError",
    "NotifyChannel",
    "RetryPolicy",
    "notify_error",
]
