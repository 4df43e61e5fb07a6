"""What can go wrong on a channel, in the terms the outbox acts on.

Every message names the letter by its reference (never by anything personal) and says what to
do. ``code`` is a short, stable string for ``letters.failure_reason`` and events.

==========================  ==============================================  ==================
error                       meaning                                         the outbox should
==========================  ==============================================  ==================
``AmbiguousSend``           timeout, dropped connection, 5xx, unreadable     mark the letter
                            reply: Notify may have accepted the letter       ``unknown``;
                                                                             reconcile by
                                                                             reference before
                                                                             any resend
``LetterRejected``          400: Notify refused this letter                  fail the letter
                                                                             (and stop the
                                                                             batch if
                                                                             ``stops_batch``)
``DailyLimitReached``       429 TooManyRequestsError                         stop; resume
                                                                             tomorrow
``ChannelForbidden``        403: the API key was refused                     stop the batch
``ChannelMisconfigured``    no key, a malformed key, an unexpected 4xx       stop the batch
``ChannelUnavailable``      still rate limited, or a lookup still failing,   stop; nothing was
                            after every retry                                sent; try later
==========================  ==============================================  ==================
"""

from __future__ import annotations

from csa_closure.errors import CsaClosureError


class ChannelError(CsaClosureError):
    """A letter channel could not do what was asked."""

    code = "CHANNEL_ERROR"
    stops_batch = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AmbiguousSend(ChannelError):
    """The send may or may not have reached Notify. Never resend before reconciling."""

    stops_batch = False

    def __init__(self, reference: str, cause: str, *, status_code: int | None = None) -> None:
        super().__init__(
            f"letter {reference}: the send may have been accepted ({cause}); mark it unknown and"
            " reconcile it by reference before any resend",
            status_code=status_code,
        )
        self.reference = reference
        self.cause = cause
        self.code = f"AMBIGUOUS_{cause}"


class LetterRejected(ChannelError):
    """Notify refused this letter (400). ``reason`` holds no personal data."""

    stops_batch = False

    def __init__(
        self, reference: str, code: str, reason: str, *, stops_batch: bool = False
    ) -> None:
        super().__init__(f"letter {reference} rejected: {reason}", status_code=400)
        self.reference = reference
        self.code = code
        self.reason = reason
        self.stops_batch = stops_batch


class DailyLimitReached(ChannelError):
    code = "DAILY_LIMIT"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Notify's daily limit for this service is reached (429 TooManyRequestsError):"
            " stop and resume the batch tomorrow",
            status_code=429,
        )


class ChannelForbidden(ChannelError):
    code = "FORBIDDEN"


class ChannelMisconfigured(ChannelError):
    code = "MISCONFIGURED"


class ChannelUnavailable(ChannelError):
    code = "UNAVAILABLE"
