"""A fake GOV.UK Notify service, for tests and the demo.

:class:`FakeNotify` answers Notify's letter API (send, get one, list by reference/status with
``older_than`` paging) from a small SQLite file, so separate processes — a send killed with
``kill -9`` and the re-run — see the same service, and a test can count exactly how many letters
it accepted for each reference. It simulates, all seeded and deterministic:

- acceptance, and status progression over (simulated) days: ``accepted``, then ``received``;
  at configured rates ``permanent-failure`` and ``technical-failure``, and returns (weeks
  later) which, as at Notify, the API never shows (a returned letter stays ``received``): they
  are in the returned-letters report only (:meth:`FakeNotify.returned_letters`), with an empty
  reference for letters uploaded as a print file (:meth:`FakeNotify.upload_print_file`, which
  also gives the upload report); status data disappears after the retention period (7 days);
- templates (GET /v2/template/{id}) as the letters configuration has them, or as a test
  overrides them (another type or body);
- refusals of every letter (``Faults.service_refusal``): the service may not send letters, a
  template deleted or of the wrong type, a team key, trial mode;
- 429 ``RateLimitError`` (at a rate, or a real per-minute cap on the fake clock), the daily
  limit (429 ``TooManyRequestsError``), 5xx errors and dropped connections before acceptance,
  and the worst cases: a timeout or a 5xx *after* the letter was accepted;
- Notify's validation: template id, address lines and postcode, missing placeholders (400);
  and its authentication (403 for a wrong key).

:class:`FakeNotifyChannel` is the real :class:`~csa_closure.channels.notify.NotifyChannel`
over the real ``NotificationsAPIClient``, whose ``requests`` session has the fake mounted as a
transport adapter: the same JWT, JSON, HTTP error and error-mapping code runs as in production.

The file holds what was sent (personal data, as Notify would), so it is created owner-only.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import requests
from notifications_python_client import NotificationsAPIClient
from requests.adapters import BaseAdapter

from csa_closure.channels.notify import NotifyChannel, RetryPolicy, fold_placeholder
from csa_closure.channels.ratelimit import TokenBucket
from csa_closure.channels.status import RETENTION_DAYS
from csa_closure.letters.address import AddressProblemCode, check_lines
from csa_closure.letters.config import LettersConfig
from csa_closure.letters.fields import ADDRESS_KEYS

FAKE_BASE_URL = "https://fake-notify.invalid"
FAKE_SERVICE_ID = "5b1f3f0e-7d1c-4c55-9b7e-2f3a9d4c8e10"
FAKE_SECRET = "9c0d7e2a-1b3f-4a5e-8d6c-7f0e1a2b3c4d"
FAKE_API_KEY = f"csa_closure_fake-{FAKE_SERVICE_ID}-{FAKE_SECRET}"
DAILY_LETTER_LIMIT = 20_000
PAGE_SIZE = 250


class FaultKind(StrEnum):
    RATE_LIMIT = "rate_limit"  # 429 RateLimitError; nothing accepted
    DAILY_LIMIT = "daily_limit"  # 429 TooManyRequestsError; nothing accepted
    SERVER_ERROR = "server_error"  # 500 before acceptance; nothing accepted
    CONNECTION_ERROR = "connection_error"  # the request never arrived
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"  # accepted; the caller sees a read timeout
    SERVER_ERROR_AFTER_ACCEPT = "server_error_after_accept"  # accepted; the caller sees a 502
    FORBIDDEN = "forbidden"  # 403 AuthError
    BAD_REQUEST = "bad_request"  # 400 ValidationError
    # refusals every letter gets, as Notify words them (see SERVICE_REFUSALS)
    SERVICE_CANNOT_SEND_LETTERS = "service_cannot_send_letters"
    TEMPLATE_DELETED = "template_deleted"
    WRONG_TEMPLATE_TYPE = "wrong_template_type"
    TEAM_KEY = "team_key"
    TRIAL_MODE = "trial_mode"


SERVICE_REFUSALS = {
    FaultKind.SERVICE_CANNOT_SEND_LETTERS: (
        400,
        "BadRequestError",
        "Service is not allowed to send letters",
    ),
    FaultKind.TEMPLATE_DELETED: (400, "BadRequestError", "Template has been deleted"),
    FaultKind.WRONG_TEMPLATE_TYPE: (
        400,
        "BadRequestError",
        "email template is not suitable for letter notification",
    ),
    FaultKind.TEAM_KEY: (403, "BadRequestError", "Cannot send letters with a team api key"),
    FaultKind.TRIAL_MODE: (
        403,
        "BadRequestError",
        "Cannot send letters when service is in trial mode",
    ),
}


_AFTER_ACCEPT = frozenset({FaultKind.TIMEOUT_AFTER_ACCEPT, FaultKind.SERVER_ERROR_AFTER_ACCEPT})


@dataclass(frozen=True)
class Faults:
    """Failures to inject. Rates are probabilities per request, drawn from a generator seeded by
    the fake's seed and the request's number, so a run is repeatable. ``on_request`` fails a
    given request (numbered from 1 across every process using the file); ``on_reference`` fails
    the first send of a letter with that reference."""

    rate_limit: float = 0.0
    server_error: float = 0.0
    connection_error: float = 0.0
    timeout_after_accept: float = 0.0
    server_error_after_accept: float = 0.0
    on_request: Mapping[int, FaultKind] = field(default_factory=dict)
    on_reference: Mapping[str, FaultKind] = field(default_factory=dict)
    per_minute_limit: int | None = None  # a real cap on the fake clock, like Notify's 3,000
    service_refusal: FaultKind | None = None  # one of SERVICE_REFUSALS, for every send
    daily_limit: int = DAILY_LETTER_LIMIT


@dataclass(frozen=True)
class Fates:
    """What becomes of accepted letters: the rest are ``received`` after
    ``received_after_days``."""

    returned: float = 0.0
    permanent_failure: float = 0.0
    technical_failure: float = 0.0
    received_after_days: float = 1.0
    returned_after_days: float = 21.0
    failed_after_days: float = 1.0


@dataclass(frozen=True)
class FakeNotification:
    seq: int
    notify_id: str
    reference: str | None
    template_id: str
    personalisation: Mapping[str, Any] = field(repr=False)
    created_at: datetime
    status: str  # as of the fake's clock
    visible: bool  # inside the retention period


@dataclass(frozen=True)
class FakeReply:
    status: int
    body: Any = None
    transport_error: str | None = None  # "timeout" | "connection": raise instead of replying


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    reference TEXT,
    template_id TEXT NOT NULL,
    personalisation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    day TEXT NOT NULL,
    fate TEXT NOT NULL,
    received_at TEXT NOT NULL,
    fate_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_notifications_reference ON notifications (reference);
CREATE INDEX IF NOT EXISTS ix_notifications_day ON notifications (day);
CREATE TABLE IF NOT EXISTS requests (
    n INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    method TEXT NOT NULL,
    kind TEXT NOT NULL,
    reference TEXT,
    outcome TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS minute_counts (minute TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS day_counts (day TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reference_faults (reference TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    file_name TEXT NOT NULL,
    row_number INTEGER NOT NULL
);
"""


def _error(status: int, error: str, message: str) -> FakeReply:
    return FakeReply(
        status, {"status_code": status, "errors": [{"error": error, "message": message}]}
    )


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeNotify:
    """The fake service over one SQLite file (``None`` or ``":memory:"``: in memory)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        faults: Faults | None = None,
        fates: Fates | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        retention_days: float = RETENTION_DAYS,
        templates: LettersConfig | None = None,
        page_size: int = PAGE_SIZE,
        template_overrides: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.faults = faults or Faults()
        # template id -> (type, body) served instead of the configured letter template
        self._template_overrides = dict(template_overrides or {})
        self.fates = fates or Fates()
        self.seed = seed
        self._clock = clock or (lambda: datetime.now(UTC))
        self.retention = timedelta(days=retention_days)
        self.page_size = page_size
        self._templates = _template_placeholders(templates) if templates else None
        target = ":memory:" if path is None or str(path) == ":memory:" else Path(path)
        if isinstance(target, Path):
            # owner-only from the start: the file holds what was sent
            with suppress(FileExistsError):
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(str(target), timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # the file's counters as this connection last saw them; see :meth:`_counters`
        self._state: _Counters | None = None
        self._in_transaction = False
        self._rng = random.Random()  # re-seeded for each draw (see :meth:`_draw`)
        self._tokens: dict[str, bool] = {}  # see :meth:`_check_token`
        self._decoded_rows: dict[str, _Decoded] = {}  # see :meth:`_decoded`

    def close(self) -> None:
        self._db.close()

    # --- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        return self._clock() + timedelta(seconds=self._counters().offset)

    def advance(self, *, days: float = 0.0, seconds: float = 0.0) -> datetime:
        """Move the service's clock forward (seen by every process using the file)."""
        with self._transaction():
            state = self._counters()
            offset = state.offset + days * 86_400 + seconds
            self._set_meta("offset_seconds", repr(offset))
            state.offset = offset
        return self.now()

    # --- the API ---------------------------------------------------------------------------

    def handle(self, method: str, url: str, body: Any, authorization: str | None) -> FakeReply:
        """Answer one HTTP request as Notify would."""
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._transaction():
            now = self.now()
            kind = _request_kind(method, path)
            reference = body.get("reference") if isinstance(body, dict) else None
            state = self._counters()
            n = state.last_request + 1
            reply = self._authenticate(authorization)
            if reply is None:
                fault = self._fault(n, kind, reference)
                reply = self._before_accept(fault, now)
                if reply is None:
                    reply = self._route(method, path, query, body, now, kind, fault)
            # the request's one row, written once its outcome is known
            self._db.execute(
                "INSERT INTO requests (n, at, method, kind, reference, outcome)"
                " VALUES (?,?,?,?,?,?)",
                (
                    n,
                    _iso(now),
                    method,
                    kind,
                    reference if isinstance(reference, str) else None,
                    reply.transport_error or str(reply.status),
                ),
            )
            state.last_request = n
        return reply

    def _route(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        body: Any,
        now: datetime,
        kind: str,
        fault: FaultKind | None,
    ) -> FakeReply:
        if kind == "send":
            reply = self._send(body, now, fault)
        elif kind == "get":
            reply = self._get_one(path.rsplit("/", 1)[-1], now)
        elif kind == "list":
            reply = self._list(query, now)
        elif kind == "template":
            reply = self._template(path.rsplit("/", 1)[-1])
        else:
            reply = _error(404, "NotFound", "The requested URL was not found on the server.")
        return reply

    def _authenticate(self, authorization: str | None) -> FakeReply | None:
        if not authorization or not authorization.startswith("Bearer "):
            return _error(401, "AuthError", "Unauthorized: authentication token must be provided")
        token = authorization[len("Bearer ") :]
        accepted = self._tokens.get(token)
        if accepted is None:
            accepted = self._check_token(token)
        return None if accepted else _error(403, "AuthError", "Invalid token: API key not found")

    def _check_token(self, token: str) -> bool:
        """Whether the token is signed with the fake's secret and issued by its service. The
        client makes a token a second (``iat``), so the answer is kept for that token: it
        cannot change when the token has no time claims the check reads (``exp``, ``nbf``;
        ``iat`` is not checked); a token with them, or one refused as malformed, is checked
        again each time."""
        try:
            claims = jwt.decode(
                token, key=FAKE_SECRET, algorithms=["HS256"], options={"verify_iat": False}
            )
        except jwt.InvalidTokenError:
            return False
        accepted = claims.get("iss") == FAKE_SERVICE_ID
        if "exp" not in claims and "nbf" not in claims:
            if len(self._tokens) >= 64:
                self._tokens.clear()
            self._tokens[token] = accepted
        return accepted

    def _fault(self, n: int, kind: str, reference: str | None) -> FaultKind | None:
        faults = self.faults
        if n in faults.on_request:
            return FaultKind(faults.on_request[n])
        if kind == "send" and faults.service_refusal is not None:
            return FaultKind(faults.service_refusal)
        if kind == "send" and reference is not None and reference in faults.on_reference:
            first = self._db.execute(
                "INSERT OR IGNORE INTO reference_faults (reference) VALUES (?)", (reference,)
            ).rowcount
            if first:
                return FaultKind(faults.on_reference[reference])
        draws = [
            (FaultKind.RATE_LIMIT, faults.rate_limit),
            (FaultKind.SERVER_ERROR, faults.server_error),
            (FaultKind.CONNECTION_ERROR, faults.connection_error),
            (FaultKind.TIMEOUT_AFTER_ACCEPT, faults.timeout_after_accept),
            (FaultKind.SERVER_ERROR_AFTER_ACCEPT, faults.server_error_after_accept),
        ]
        if not any(rate > 0 for _, rate in draws):
            return None  # random() is never below 0: no draw could fail this request
        rng = self._draw(f"{self.seed}:request:{n}")
        for fault, rate in draws:  # every draw is made, so the sequence never shifts
            if rng.random() < rate and (kind == "send" or fault not in _AFTER_ACCEPT):
                return fault
        return None

    def _before_accept(self, fault: FaultKind | None, now: datetime) -> FakeReply | None:
        if fault is FaultKind.FORBIDDEN:
            return _error(403, "AuthError", "Invalid token: API key not found")
        if fault is FaultKind.RATE_LIMIT or self._over_minute_cap(now):
            return _error(
                429,
                "RateLimitError",
                "Exceeded rate limit for key type LIVE of 3000 requests per 60 seconds",
            )
        if fault is FaultKind.DAILY_LIMIT:
            return self._daily_limit_reply()
        if fault is FaultKind.SERVER_ERROR:
            return _error(500, "Exception", "Internal server error")
        if fault is FaultKind.CONNECTION_ERROR:
            return FakeReply(0, transport_error="connection")
        if fault is FaultKind.BAD_REQUEST:
            return _error(400, "ValidationError", "Must be a real UK postcode")
        if fault in SERVICE_REFUSALS:
            return _error(*SERVICE_REFUSALS[fault])
        return None

    def _over_minute_cap(self, now: datetime) -> bool:
        cap = self.faults.per_minute_limit
        if cap is None:
            return False
        minute = now.strftime("%Y-%m-%dT%H:%M")
        self._db.execute(
            "INSERT INTO minute_counts (minute, n) VALUES (?, 1)"
            " ON CONFLICT (minute) DO UPDATE SET n = n + 1",
            (minute,),
        )
        (count,) = self._db.execute(
            "SELECT n FROM minute_counts WHERE minute = ?", (minute,)
        ).fetchone()
        return bool(count > cap)

    def _daily_limit_reply(self) -> FakeReply:
        return _error(
            429,
            "TooManyRequestsError",
            f"Exceeded send limits ({self.faults.daily_limit}) for today",
        )

    # --- sending ---------------------------------------------------------------------------

    def _send(self, body: Any, now: datetime, fault: FaultKind | None) -> FakeReply:
        if not isinstance(body, dict):
            return _error(400, "BadRequestError", "Invalid JSON supplied in POST data")
        problem = self._validate(body)
        if problem is not None:
            return problem
        day = now.date().isoformat()
        state = self._counters()
        sent_today = state.days.get(day)
        if sent_today is None:
            row = self._db.execute("SELECT n FROM day_counts WHERE day = ?", (day,)).fetchone()
            sent_today = 0 if row is None else int(row[0])
        if sent_today >= self.faults.daily_limit:
            state.days[day] = sent_today
            return self._daily_limit_reply()
        self._db.execute(
            "INSERT INTO day_counts (day, n) VALUES (?, 1)"
            " ON CONFLICT (day) DO UPDATE SET n = n + 1",
            (day,),
        )
        state.days[day] = sent_today + 1
        notification = self._accept(body, now, day)
        if fault is FaultKind.TIMEOUT_AFTER_ACCEPT:
            return FakeReply(0, transport_error="timeout")
        if fault is FaultKind.SERVER_ERROR_AFTER_ACCEPT:
            return _error(502, "Exception", "Bad gateway")
        return FakeReply(201, notification)

    def _validate(self, body: Mapping[str, Any]) -> FakeReply | None:
        template_id = body.get("template_id")
        try:
            uuid.UUID(str(template_id))
        except ValueError:
            return _error(400, "ValidationError", "template_id is not a valid UUID")
        personalisation = body.get("personalisation")
        if not isinstance(personalisation, dict):
            return _error(400, "ValidationError", "personalisation is a required property")
        reference = body.get("reference")
        if reference is not None and not isinstance(reference, str):
            return _error(400, "ValidationError", "reference is not of type string")
        if self._templates is not None:
            wanted = self._templates.get(str(template_id))
            if wanted is None:
                return _error(400, "BadRequestError", "Template not found")
            given = {_fold(k) for k in personalisation}
            missing = [name for name in wanted if _fold(name) not in given]
            if missing:
                return _error(400, "BadRequestError", f"Missing personalisation: {missing[0]}")
        if not str(personalisation.get("address_line_1") or "").strip():
            return _error(
                400, "ValidationError", "personalisation address_line_1 is a required property"
            )
        return _address_reply(personalisation)

    def _accept(self, body: Mapping[str, Any], now: datetime, day: str) -> dict[str, Any]:
        state = self._counters()
        seq = state.last_seq + 1
        notify_id = self._notify_id(seq)
        fate, fate_after = self._fate(seq)
        received_at = now + timedelta(days=self.fates.received_after_days)
        self._db.execute(
            "INSERT INTO notifications (seq, id, reference, template_id, personalisation,"
            " created_at, day, fate, received_at, fate_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                notify_id,
                body.get("reference"),
                str(body["template_id"]),
                json.dumps(body["personalisation"], sort_keys=True),
                _iso(now),
                day,
                fate,
                _iso(received_at),
                _iso(now + timedelta(days=fate_after)),
            ),
        )
        state.last_seq = seq
        return {
            "id": notify_id,
            "reference": body.get("reference"),
            "content": {"subject": "Letter", "body": "(letter text)"},
            "uri": f"{FAKE_BASE_URL}/v2/notifications/{notify_id}",
            "template": {
                "id": str(body["template_id"]),
                "version": 1,
                "uri": f"{FAKE_BASE_URL}/v2/template/{body['template_id']}",
            },
            "scheduled_for": None,
            "postage": "second",
        }

    def _notify_id(self, seq: int) -> str:
        return str(uuid.UUID(int=self._draw(f"{self.seed}:id:{seq}").getrandbits(128), version=4))

    def _draw(self, seed: str) -> random.Random:
        """The fake's one generator, seeded with ``seed``: the same numbers as a new
        ``random.Random(seed)``, without making one per draw."""
        self._rng.seed(seed)
        return self._rng

    def _fate(self, seq: int) -> tuple[str, float]:
        fates = self.fates
        draw = self._draw(f"{self.seed}:fate:{seq}").random()
        for fate, rate, after in (
            ("technical-failure", fates.technical_failure, fates.failed_after_days),
            ("permanent-failure", fates.permanent_failure, fates.failed_after_days),
            ("returned-letter", fates.returned, fates.returned_after_days),
        ):
            if draw < rate:
                return fate, after
            draw -= rate
        return "received", fates.received_after_days

    # --- looking up ------------------------------------------------------------------------

    def _template(self, template_id: str) -> FakeReply:
        """A template as Notify's API shows it: a letter template using the configured
        placeholders (or, from ``template_overrides``, another type or body)."""
        override = self._template_overrides.get(template_id)
        if override is None:
            names = (self._templates or {}).get(template_id)
            if names is None:
                return _error(404, "NoResultFound", "No result found")
            override = ("letter", "\n".join("((" + name + "))" for name in names))
        kind, body = override
        return FakeReply(
            200,
            {
                "id": template_id,
                "type": kind,
                "version": 1,
                "name": "Letter",
                "subject": "Letter" if kind != "sms" else None,
                "body": body,
            },
        )

    def _get_one(self, notify_id: str, now: datetime) -> FakeReply:
        try:
            uuid.UUID(notify_id)
        except ValueError:
            return _error(400, "ValidationError", "notification_id is not a valid UUID")
        row = self._db.execute(_SELECT + " WHERE id = ?", (notify_id,)).fetchone()
        if row is None or not self._visible(row, now):
            return _error(404, "NoResultFound", "No result found")
        return FakeReply(200, self._public(row, now))

    def _list(self, query: Mapping[str, str], now: datetime) -> FakeReply:
        template_type = query.get("template_type")
        if template_type not in (None, "letter", "sms", "email"):
            return _error(
                400, "ValidationError", f"{template_type} is not one of [sms, email, letter]"
            )
        rows: list[tuple[Any, ...]] = []
        if template_type in (None, "letter"):
            sql = _SELECT + " WHERE created_at > ?"
            args: list[Any] = [_iso(now - self.retention)]
            if "reference" in query:
                sql, args = sql + " AND reference = ?", [*args, query["reference"]]
            older_than = query.get("older_than")
            if older_than:
                anchor = self._db.execute(
                    "SELECT seq FROM notifications WHERE id = ?", (older_than,)
                ).fetchone()
                sql, args = sql + " AND seq < ?", [*args, anchor[0] if anchor else 0]
            for row in self._db.execute(sql + " ORDER BY seq DESC", args):
                if "status" in query and self._status(row, now) != query["status"]:
                    continue
                rows.append(row)
                if len(rows) == self.page_size:
                    break
        items = [self._public(row, now) for row in rows]
        links = {"current": f"{FAKE_BASE_URL}/v2/notifications?{urlencode(query)}"}
        if items:
            links["next"] = f"{FAKE_BASE_URL}/v2/notifications?" + urlencode(
                {**query, "older_than": items[-1]["id"]}
            )
        return FakeReply(200, {"notifications": items, "links": links})

    def _visible(self, row: tuple[Any, ...], now: datetime) -> bool:
        return bool(self._decoded(row)[1] + self.retention > now)

    def _decoded(self, row: tuple[Any, ...]) -> _Decoded:
        """A letter's address lines (from its stored personalisation) and its instants, decoded
        once: a letter is never changed once accepted, and sync lists the same letters again
        and again. Keyed by the letter's id (unique in the file); at most ``_DECODED_KEPT``
        letters are kept."""
        decoded = self._decoded_rows.get(row[1])
        if decoded is None:
            personalisation = json.loads(row[4])
            lines = [str(personalisation[k]) for k in ADDRESS_KEYS if personalisation.get(k)]
            decoded = (
                {f"line_{i}": line for i, line in enumerate(lines, start=1)},
                _parse(row[5]),
                _parse(row[8]),
                _parse(row[9]),
            )
            if len(self._decoded_rows) >= _DECODED_KEPT:
                self._decoded_rows.clear()
            self._decoded_rows[row[1]] = decoded
        return decoded

    def _status(self, row: tuple[Any, ...], now: datetime) -> str:
        _, _, received_at, fate_at = self._decoded(row)
        fate = row[7]
        if fate in ("technical-failure", "permanent-failure"):
            return fate if now >= fate_at else "accepted"
        if now < received_at:
            return "accepted"
        # a returned letter stays ``received`` in the API, as at Notify: the return is only in
        # the returned-letters report (:meth:`returned_letters`)
        return "received"

    def _public(self, row: tuple[Any, ...], now: datetime) -> dict[str, Any]:
        """A notification as Notify's API shows it, address lines included (as Notify does)."""
        status = self._status(row, now)
        reply: dict[str, Any] = {
            "id": row[1],
            "reference": row[2],
            "type": "letter",
            "status": status,
            "template": {"id": row[3], "version": 1, "uri": f"/v2/template/{row[3]}/1"},
            "body": "(letter text)",
            "subject": "Letter",
            "created_at": row[5],
            "sent_at": row[5],
            "completed_at": row[9] if status != "accepted" else None,
            "postage": "second",
        }
        reply.update(self._decoded(row)[0])
        return reply

    # --- inspection for tests and the demo -------------------------------------------------

    def notifications(self, reference: str | None = None) -> list[FakeNotification]:
        """Every letter the fake accepted (whatever the retention), oldest first."""
        sql, args = _SELECT, []
        if reference is not None:
            sql, args = sql + " WHERE reference = ?", [reference]
        now = self.now()
        return [
            FakeNotification(
                seq=row[0],
                notify_id=row[1],
                reference=row[2],
                template_id=row[3],
                personalisation=json.loads(row[4]),
                created_at=_parse(row[5]),
                status=self._status(row, now),
                visible=self._visible(row, now),
            )
            for row in self._db.execute(sql + " ORDER BY seq", args)
        ]

    def count(self, reference: str | None = None) -> int:
        """How many letters the fake accepted, in all or with one reference."""
        if reference is None:
            (n,) = self._db.execute("SELECT count(*) FROM notifications").fetchone()
        else:
            (n,) = self._db.execute(
                "SELECT count(*) FROM notifications WHERE reference = ?", (reference,)
            ).fetchone()
        return int(n)

    def counts_by_reference(self) -> dict[str | None, int]:
        rows = self._db.execute(
            "SELECT reference, count(*) FROM notifications GROUP BY reference ORDER BY reference"
        )
        return {reference: int(n) for reference, n in rows}

    def request_log(self) -> list[tuple[int, str, str | None, str]]:
        """(request number, kind, reference, outcome) for every request, in order."""
        rows = self._db.execute("SELECT n, kind, reference, outcome FROM requests ORDER BY n")
        return [(int(n), kind, ref, outcome) for n, kind, ref, outcome in rows]

    def upload_print_file(
        self, path: str | os.PathLike[str], template_id: str
    ) -> list[tuple[int, str]]:
        """Take a print file (Notify's bulk-upload CSV, as ``channels.printfile`` writes it) as
        Notify takes an uploaded spreadsheet: one letter a row, with no reference (a letter
        uploaded as a file has none). Returns Notify's upload report: (row number from 1,
        notification id) for each row."""
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        report = []
        with self._transaction():
            now = self.now()
            state = self._counters()
            for number, row in enumerate(rows, start=1):
                lines = [row.get(f"address line {n}") or "" for n in range(1, 7)]
                lines.append(row.get("postcode") or "")
                personalisation = {f"address_line_{n}": v for n, v in enumerate(lines, 1) if v}
                seq = state.last_seq + 1
                notify_id = self._notify_id(seq)
                fate, fate_after = self._fate(seq)
                self._db.execute(
                    "INSERT INTO notifications (seq, id, reference, template_id, personalisation,"
                    " created_at, day, fate, received_at, fate_at)"
                    " VALUES (?,?,NULL,?,?,?,?,?,?,?)",
                    (
                        seq,
                        notify_id,
                        template_id,
                        json.dumps(personalisation, sort_keys=True),
                        _iso(now),
                        now.date().isoformat(),
                        fate,
                        _iso(now + timedelta(days=self.fates.received_after_days)),
                        _iso(now + timedelta(days=fate_after)),
                    ),
                )
                self._db.execute(
                    "INSERT INTO uploads (id, file_name, row_number) VALUES (?, ?, ?)",
                    (notify_id, Path(path).name, number),
                )
                state.last_seq = seq
                report.append((number, notify_id))
        return report

    def returned_letters(self) -> list[tuple[str, str | None, datetime]]:
        """(notify id, reference, returned at) for letters returned by now, whatever the
        retention: like Notify's returned-letters report (the reference empty for letters
        uploaded as a file)."""
        now = self.now()
        rows = self._db.execute(
            "SELECT id, reference, fate_at FROM notifications"
            " WHERE fate = 'returned-letter' ORDER BY fate_at, seq"
        )
        return [(i, ref, _parse(at)) for i, ref, at in rows if _parse(at) <= now]

    def write_returned_letters_report(self, path: str | os.PathLike[str]) -> int:
        """Write the returned-letters report as Notify's dashboard gives it (its columns, in its
        order: ``Spreadsheet row number`` counts the file's letter rows from 1; the reference
        is empty for an uploaded file's letters). Returns the rows written."""
        uploads = {
            i: (name, n)
            for i, name, n in self._db.execute("SELECT id, file_name, row_number FROM uploads")
        }
        templates = dict(self._db.execute("SELECT id, template_id FROM notifications"))
        rows = self.returned_letters()
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(RETURNED_REPORT_COLUMNS)
            for notify_id, reference, at in rows:
                name, number = uploads.get(notify_id, ("", ""))
                writer.writerow(
                    [notify_id, reference or "", at.strftime("%Y-%m-%d %H:%M"), "", "Letter",
                     templates.get(notify_id, ""), 1, name, number, ""]
                )  # fmt: skip
        return len(rows)

    # --- storage ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._refresh()  # checked once the write lock is held
            self._in_transaction = True
            yield
        except BaseException:
            self._state = None  # what this transaction counted is rolled back with it
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction = False
        self._db.execute("COMMIT")

    def _counters(self) -> _Counters:
        """The clock offset, the last request and letter numbers and the day counts, kept in
        memory between requests instead of read from the file each time. Every ``FakeNotify``
        has its own connection, and another one (another thread's or process's) may have
        written since: SQLite's ``data_version`` changes exactly when another connection has
        committed, so the counters are read again then. In a transaction this runs once, after
        ``BEGIN IMMEDIATE`` takes the write lock, so nobody else can change them until the
        commit; a rollback forgets them. One ``FakeNotify`` is not for several threads at
        once (neither is its connection)."""
        if self._in_transaction and self._state is not None:
            return self._state
        return self._refresh()

    def _refresh(self) -> _Counters:
        state = self._state
        (version,) = self._db.execute("PRAGMA data_version").fetchone()
        if state is None or state.version != version:
            (seq,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM notifications").fetchone()
            (n,) = self._db.execute("SELECT coalesce(max(n), 0) FROM requests").fetchone()
            offset = float(self._meta("offset_seconds", "0"))
            state = self._state = _Counters(int(version), offset, int(seq), int(n))
        return state

    def _meta(self, key: str, default: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


# a letter's address lines as Notify's API shows them (line_1, ...), created_at, received_at
# and fate_at; see FakeNotify._decoded
_Decoded = tuple[dict[str, str], datetime, datetime, datetime]
_DECODED_KEPT = 200_000


@dataclass
class _Counters:
    """What :meth:`FakeNotify._counters` keeps between requests."""

    version: int  # the connection's ``PRAGMA data_version`` when these were read
    offset: float  # seconds the service's clock is ahead (``meta.offset_seconds``)
    last_seq: int  # max(notifications.seq)
    last_request: int  # max(requests.n)
    days: dict[str, int] = field(default_factory=dict)  # day_counts read so far


# Notify's returned-letters report, as its dashboard downloads it
RETURNED_REPORT_COLUMNS = (
    "Notification ID",
    "Reference",
    "Date sent",
    "Sent by",
    "Template name",
    "Template ID",
    "Template version",
    "Spreadsheet file name",
    "Spreadsheet row number",
    "Uploaded letter file name",
)

_SELECT = (
    "SELECT seq, id, reference, template_id, personalisation, created_at, day, fate,"
    " received_at, fate_at FROM notifications"
)

_ADDRESS_MESSAGES = {
    AddressProblemCode.TOO_FEW_LINES: "Address must be at least 3 lines",
    AddressProblemCode.TOO_MANY_LINES: "Address must be no more than 7 lines",
    AddressProblemCode.BAD_POSTCODE: "Must be a real UK postcode",
    AddressProblemCode.INVALID_START_CHARACTER: (
        'Address lines must not start with any of the following characters: @ ( ) = [ ] " \\ / ,'
        " < > ~"
    ),
    AddressProblemCode.NO_FIXED_ABODE: "Must be a real address",
    AddressProblemCode.NO_ALPHANUMERIC: (
        "The first 2 lines of the address must both include at least one alphanumeric character"
    ),
    # Notify refuses a BFPO address naming a country; the fake, keeping no list of countries,
    # refuses a BFPO address without a postcode whose last line before BFPO has no digit.
    AddressProblemCode.BFPO_NO_UNIT: "The last line of a BFPO address must not be a country",
}


def _address_reply(personalisation: Mapping[str, Any]) -> FakeReply | None:
    keys = (
        list(ADDRESS_KEYS)
        if "address_line_7" in personalisation
        else [*ADDRESS_KEYS[:6], "postcode"]
    )
    # Notify joins the lines and splits them again: a line break inside a value is a new line
    lines = "\n".join(str(personalisation.get(k) or "") for k in keys).splitlines()
    problem = check_lines(lines, max_line_length=10_000, control=False)
    if problem is None or problem.code not in _ADDRESS_MESSAGES:
        return None
    return _error(400, "ValidationError", _ADDRESS_MESSAGES[problem.code])


def _request_kind(method: str, path: str) -> str:
    if method == "POST" and path == "/v2/notifications/letter":
        return "send"
    if method == "GET" and path == "/v2/notifications":
        return "list"
    if method == "GET" and path.startswith("/v2/notifications/"):
        return "get"
    if method == "GET" and path.startswith("/v2/template/"):
        return "template"
    return "other"


_fold = fold_placeholder


def _template_placeholders(config: LettersConfig) -> dict[str, tuple[str, ...]]:
    return {t.template_id: t.placeholder_names for t in config.templates.values()}


class FakeNotifyAdapter(BaseAdapter):
    """A ``requests`` transport that hands each request to a :class:`FakeNotify`."""

    def __init__(self, service: FakeNotify) -> None:
        super().__init__()
        self.service = service

    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        raw = request.body
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        body = json.loads(text) if isinstance(text, str) and text else None
        authorization = request.headers.get("Authorization")
        reply = self.service.handle(
            request.method or "GET",
            request.url or "",
            body,
            authorization if isinstance(authorization, str) else None,
        )
        if reply.transport_error == "timeout":
            raise requests.exceptions.ReadTimeout("read timed out (simulated)", request=request)
        if reply.transport_error:
            raise requests.exceptions.ConnectionError(
                "connection dropped (simulated)", request=request
            )
        response = requests.Response()
        response.status_code = reply.status
        response._content = json.dumps(reply.body).encode("utf-8")
        response.headers["Content-Type"] = "application/json"
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        response.reason = "simulated"
        return response

    def close(self) -> None:
        pass


class FakeNotifyChannel(NotifyChannel):
    """:class:`NotifyChannel` against a :class:`FakeNotify` at ``path``. By default it neither
    throttles nor sleeps (pass ``limiter`` and ``sleep`` to); ``service`` is the fake, for
    counting and moving its clock."""

    name = "fake-notify"

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        faults: Faults | None = None,
        fates: Fates | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        retention_days: float = RETENTION_DAYS,
        templates: LettersConfig | None = None,
        page_size: int = PAGE_SIZE,
        limiter: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        api_key: str = FAKE_API_KEY,
        max_pages: int = 1_000,
        template_overrides: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.service = FakeNotify(
            path,
            faults=faults,
            fates=fates,
            seed=seed,
            clock=clock,
            retention_days=retention_days,
            templates=templates,
            page_size=page_size,
            template_overrides=template_overrides,
        )
        client = NotificationsAPIClient(api_key, base_url=FAKE_BASE_URL)
        client.request_session.mount(FAKE_BASE_URL, FakeNotifyAdapter(self.service))
        # nothing leaves the process: no proxy settings to read from the environment on each
        # request (requests does that per call, which costs more than the fake's own work)
        client.request_session.trust_env = False
        super().__init__(
            client,
            limiter=limiter,
            retry=retry or RetryPolicy(seed=seed),
            sleep=sleep or (lambda _seconds: None),
            max_pages=max_pages,
        )

    def close(self) -> None:
        self.service.close()
