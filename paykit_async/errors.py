"""The one exception tree of paykit_async.

    PaykitError
    ├── TransportError        the request did not complete (network, TLS, timeout); ``.sent`` says
    │                         whether the provider may have received it (True, False or None = unknown)
    ├── HTTPStatusError       the provider answered with an unexpected HTTP status (5xx, 429, ...)
    ├── DecodeError           the reply is not the expected XML/JSON/form (HTML certificate page,
    │                         truncated body, XML attack)
    ├── SignatureError        a reply or notification failed signature verification; never retried
    ├── ProviderError         the provider refused the request (``.code``, ``.message``, ``.retryable``)
    ├── ValidationError       bad input, raised before any I/O (also a ``ValueError``)
    ├── IdempotencyConflict   an idempotency key was reused for a different request
    ├── IdempotencyStoreError the idempotency store failed (unreadable or read-only file, locked
    │                         too long, server down); raised before anything is sent
    └── RefundOutcomeUnknown  the provider may or may not have executed a refund; settle it later
                              with the same refund number (``.refund_no``), never with a new one

Messages never contain API keys, secrets or certificate passwords. This module imports only
:mod:`paykit_async.retry_after` from the package (the ground floor).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .retry_after import parse_retry_after

__all__ = [
    "DecodeError",
    "HTTPStatusError",
    "IdempotencyConflict",
    "IdempotencyStoreError",
    "PaykitError",
    "ProviderError",
    "RefundOutcomeUnknown",
    "SignatureError",
    "TransportError",
    "ValidationError",
]


class PaykitError(Exception):
    """Base class of every error paykit_async raises on purpose.

    ``retryable`` says whether sending the *same* request again may succeed; ``outcome_unknown``
    says whether the provider may have executed the request although no verified answer arrived.
    ``request_id`` is the provider's id of the request that failed (WeChat Pay v3's
    ``Request-ID`` header) when the provider sent one — quote it to the provider's support.
    """

    retryable: bool = False
    outcome_unknown: bool = False
    request_id: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransportError(PaykitError):
    """The request could not be completed: connection refused, TLS failure, timeout, reset.

    ``sent`` is False when the request certainly never reached the provider (connection or TLS
    handshake failed), None when it may have (timeout or reset after writing). ``retryable`` is
    False for failures that only a configuration change can fix — the server's certificate failed
    verification, or the server rejected the client certificate: retrying, or failing over to
    another domain, cannot help, and the message says what to change.
    """

    retryable = True

    def __init__(self, message: str, *, sent: bool | None = None, retryable: bool = True) -> None:
        super().__init__(message)
        self.sent = sent
        self.outcome_unknown = sent is not False
        self.retryable = retryable


class HTTPStatusError(PaykitError):
    """The provider answered with an HTTP status the protocol does not expect (5xx, 429, 404...).

    5xx and 429 are retryable; ``retry_after`` carries the server's ``Retry-After`` hint in seconds.
    The outcome is unknown for every status but 429: a status arrives only after the request was
    sent, and a bare status (no verified, documented error in the body) cannot prove that nothing
    was executed — a proxy, load balancer or gateway may answer 4xx after the provider received
    the request. A refund is then settled by query. 429 alone says the request was refused before
    it was processed (RFC 6585: the over-limit reply of the providers and of the rate-limit layer);
    it is retried, and when the retries run out nothing was done.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.body = body
        self.retryable = status_code >= 500 or status_code == 429
        self.outcome_unknown = status_code != 429

    @classmethod
    def from_reply(
        cls, provider: str, operation: str, status_code: int, headers: Mapping[str, str], body: bytes
    ) -> HTTPStatusError:
        """The error for a reply with an unexpected status, honouring its ``Retry-After`` hint."""
        return cls(
            f"{provider} answered HTTP {status_code} to {operation}",
            status_code=status_code,
            retry_after=parse_retry_after(headers.get("retry-after")),
            body=body[:2048],
        )


class DecodeError(PaykitError):
    """The reply body could not be decoded: not XML/JSON, an HTML certificate page, an XML attack.

    A reply cut off in transit is retryable (the same request is sent again); a refused document
    (DOCTYPE, entities) or a certificate page is not.
    """

    def __init__(self, message: str, *, retryable: bool = False, after_send: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.outcome_unknown = after_send


class SignatureError(PaykitError):
    """A reply or notification failed signature verification. Never retried.

    The provider may still have executed the request: treat the outcome as unknown and settle it
    with a verified query.
    """

    outcome_unknown = True


class ProviderError(PaykitError):
    """The provider answered, verifiably, that it refused the request.

    ``code`` is the provider's error code (WeChat ``err_code``, eftPay ``return_status``, ...),
    ``message`` its human text, ``raw`` every received field. ``retryable`` comes from the
    provider's documented table; ``retry_after`` is a minimum delay some codes require.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.raw: Mapping[str, Any] = dict(raw) if raw is not None else {}


class ValidationError(PaykitError, ValueError):
    """Bad input, raised before any I/O. ``field`` names the offending argument when there is one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class IdempotencyConflict(PaykitError):
    """An idempotency key was reused with a different request; nothing was sent."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class IdempotencyStoreError(PaykitError):
    """The idempotency store could not be used: a file that is not a database, read-only or locked
    by another process for too long, a Redis server that is down.

    Raised before anything is sent, so nothing was refunded. A failure while *recording* an
    outcome after the provider answered is never raised as this error: the known result is
    returned (and the failure logged), or :class:`RefundOutcomeUnknown` when the result is unknown.
    """


class RefundOutcomeUnknown(PaykitError):
    """The provider may have executed the refund but no verified answer settled it.

    Retry later with the same ``refund_no`` (the same idempotency key does this for you) or query
    the provider; never issue the refund again under a new number.
    """

    outcome_unknown = True

    def __init__(self, message: str, *, refund_no: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.refund_no = refund_no
        self.__cause__ = cause
        self.request_id = getattr(cause, "request_id", None)
