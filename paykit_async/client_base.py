"""What every provider client shares: transport setup, the middleware pipeline, ``async with``,
and checking a refund without sending it."""

from __future__ import annotations

import inspect
import os
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from .errors import DecodeError, RefundOutcomeUnknown, ValidationError
from .pipeline.clock import Clock, MonotonicClock
from .pipeline.core import Dialect, Exchange, Middleware, Operation, Outcome, Pipeline
from .pipeline.retry import RetryBudget, RetryMiddleware, RetryPolicy
from .refund_numbers import RefundNumberRule, new_refund_no
from .transport.base import Transport
from .transport.httpx_transport import HttpxTransport
from .transport.tls import ClientCertificate
from .transport.wire import Timeouts, TransportSettings

if TYPE_CHECKING:
    from typing_extensions import Self

    from .pipeline.ratelimit import RateLimit, RateLimitMiddleware
    from .pipeline.stores.base import IdempotencyStore

__all__ = ["BaseClient", "ClientOptions", "read_refund_reply"]

T = TypeVar("T")


def read_refund_reply(operation: Operation, read: Callable[[], T], *, refund_no: str | None = None) -> T:
    """``read()``: type the verified reply of the refund ``operation``.

    The reply was verified, but a field that cannot be read (an amount that is not an integer,
    a status of the wrong type) means neither success nor failure can be reported: the
    :class:`DecodeError` becomes :class:`RefundOutcomeUnknown` carrying the refund number —
    ``refund_no`` when given (the number actually sent, :attr:`Outcome.refund_no`), else the
    operation's.
    """
    try:
        return read()
    except DecodeError as error:
        refund_no = refund_no or operation.refund_no or ""
        raise RefundOutcomeUnknown(
            f"the verified refund reply for {refund_no} could not be read: {error.message}; "
            "query the refund before acting",
            refund_no=refund_no,
            cause=error,
        ) from error


class ClientOptions(TypedDict, total=False):
    """Keyword options every provider client accepts (``**options: Unpack[ClientOptions]``)."""

    ca_file: str | os.PathLike[str] | None
    retry: RetryPolicy | None
    transport: Transport | None
    middleware: Sequence[Middleware]
    idempotency_store: IdempotencyStore | None
    timeouts: Timeouts | None
    max_connections: int
    retry_budget: RetryBudget | None
    clock: Clock | None
    idempotency_lease: float | None
    idempotency_wait: float
    idempotency_retry_failed: bool
    rate_limit: RateLimit | int | None


#: Set while :meth:`BaseClient.validate_refund` runs: ``_call`` hands the operation back instead.
_validating: ContextVar[bool] = ContextVar("paykit_validating", default=False)


class _Validated(BaseException):
    """Carries the operation out of ``refund()`` when only validating (never seen by callers).

    A ``BaseException`` so that no ``except Exception`` in a client's ``refund()`` can swallow it.
    """

    def __init__(self, operation: Operation) -> None:
        super().__init__()
        self.operation = operation


class BaseClient:
    """Owns one transport (and so one connection pool and one SSL context) and one pipeline.

    Middleware order, outermost first: idempotency (when a store is given), retry, then the
    user's ``middleware`` — which therefore run once per attempt — then the exchange.

    Idempotency options: ``idempotency_lease`` (seconds a claim stays exclusive; default the
    larger of 120 s and twice the retry deadline), ``idempotency_wait`` (seconds to wait for another
    worker sending the same key, default 30, never past the deadline) and
    ``idempotency_retry_failed`` (re-send a key whose recorded outcome is a definite refusal,
    under the same refund number, instead of replaying the refusal; default False).

    ``rate_limit``: at most this many requests per second for this client's merchant — a number
    (this client only) or a :class:`~paykit_async.pipeline.ratelimit.RateLimit` whose ``storage``
    names a Redis shared by every process refunding for the merchant. Requests wait for their
    turn (bounded by the call's deadline); over-limit replies slow the sender down. It is the
    innermost layer, so it paces every request actually sent: each attempt and settle query.
    """

    provider: str = ""
    refund_merchant: str = ""
    """The merchant account a derived refund number belongs to (set by each provider client)."""

    def __init__(
        self,
        *,
        dialect: Dialect,
        base_url: str,
        cert: ClientCertificate | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        retry: RetryPolicy | None = None,
        transport: Transport | None = None,
        middleware: Sequence[Middleware] = (),
        idempotency_store: IdempotencyStore | None = None,
        timeouts: Timeouts | None = None,
        max_connections: int = 100,
        retry_budget: RetryBudget | None = None,
        clock: Clock | None = None,
        idempotency_lease: float | None = None,
        idempotency_wait: float = 30.0,
        idempotency_retry_failed: bool = False,
        rate_limit: RateLimit | int | None = None,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValidationError(
                "must start with https:// (or http:// for a local simulator)", field="base_url"
            )
        self.base_url = base_url.rstrip("/")
        self.cert = cert
        self.retry_policy = retry if retry is not None else RetryPolicy()
        self.retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self.idempotency_store = idempotency_store
        self.max_connections = max_connections
        self.transport: Transport = transport if transport is not None else HttpxTransport()
        self.transport.configure(
            TransportSettings(
                certificate=cert,
                ca_file=None if ca_file is None else os.fspath(ca_file),
                timeouts=timeouts if timeouts is not None else Timeouts(),
                max_connections=max_connections,
            )
        )
        # One clock for the retry and idempotency layers: they share each call's deadline.
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        layers: list[Middleware] = []
        if idempotency_store is not None:
            from .pipeline.idempotency import IdempotencyMiddleware

            deadline = self.retry_policy.deadline
            if idempotency_lease is None:
                idempotency_lease = 120.0 if deadline is None else max(120.0, 2 * deadline)
            layers.append(
                IdempotencyMiddleware(
                    idempotency_store,
                    lease=idempotency_lease,
                    wait=idempotency_wait,
                    deadline=deadline,
                    retry_failed=idempotency_retry_failed,
                    clock=self.clock,
                )
            )
        layers.append(RetryMiddleware(self.retry_policy, budget=self.retry_budget, clock=self.clock))
        layers.extend(middleware)
        self.rate_limiter: RateLimitMiddleware | None = None
        if rate_limit is not None:
            from .pipeline.ratelimit import RateLimitMiddleware

            # The merchant is known only once the provider client's constructor has finished.
            self.rate_limiter = RateLimitMiddleware(
                rate_limit, key=lambda: f"{self.provider}/{self.refund_merchant}"
            )
            layers.append(self.rate_limiter)
        self.dialect = dialect
        self.pipeline = Pipeline(layers, Exchange(dialect=dialect, transport=self.transport))

    def add_middleware(self, middleware: Middleware, *, outer: bool = False) -> None:
        """Add a middleware after construction (integrations such as :mod:`paykit_async.otel`).

        By default it runs once per attempt, innermost (nearest the wire, after the ``middleware=``
        given to the constructor); with ``outer=True`` it wraps the whole call — idempotency,
        retries, waits and settle queries — and runs once per operation. Add middlewares before
        the client is used concurrently.
        """
        layers = self.pipeline.middlewares
        layers = (middleware, *layers) if outer else (*layers, middleware)
        self.pipeline = Pipeline(layers, self.pipeline.handler)

    async def validate_refund(self, **request: Any) -> Operation:
        """Run every check ``refund(**request)`` makes before any I/O, and send nothing.

        Returns the :class:`Operation` the refund would send (its fields and refund number — the
        derived one when the request has an ``idempotency_key``); raises the same
        :class:`ValidationError` ``refund()`` would, unknown or missing arguments included. It is
        ``refund()`` itself, stopped where it would enter the pipeline, so the two cannot disagree.
        """
        refund = getattr(self, "refund", None)
        if refund is None:
            raise ValidationError(f"{type(self).__name__} has no refund()")
        try:
            inspect.signature(refund).bind(**request)
        except TypeError as error:
            raise ValidationError(str(error)) from None
        token = _validating.set(True)
        try:
            await refund(**request)
        except _Validated as validated:
            return validated.operation
        finally:
            _validating.reset(token)
        raise ValidationError(f"{type(self).__name__}.refund() returned without building a request")

    def derived_refund_no(self, idempotency_key: str) -> str | None:
        """The refund number ``refund()`` uses for ``idempotency_key`` when given no number.

        A documented function of (provider, :attr:`refund_merchant`, key) — see
        :func:`~paykit_async.refund_numbers.derive_refund_no` — so a repeated call sends the
        provider the same number even when no idempotency store remembers the first. None when the
        provider has no merchant refund number (PAYJS: the order is the refund's identity).
        """
        rule = getattr(self, "refund_number_rule", None)
        if not isinstance(rule, RefundNumberRule) or not rule.generated or not rule.provider:
            return None
        return rule.derive(merchant=self.refund_merchant, key=idempotency_key)

    def _refund_number(self, given: str | None, idempotency_key: str | None) -> str:
        """The refund number a ``refund()`` call sends: the caller's, else the one derived from
        its idempotency key, else a fresh random one."""
        if given is not None:
            return given
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not idempotency_key:
                raise ValidationError("must be a non-empty str", field="idempotency_key")
            derived = self.derived_refund_no(idempotency_key)
            if derived is not None:
                return derived
        rule = getattr(self, "refund_number_rule", None)
        return new_refund_no(length=rule.derived_length if isinstance(rule, RefundNumberRule) else 32)

    def _call(self, operation: Operation) -> Awaitable[Outcome]:
        # Not a coroutine of its own: one frame less for every resumption of the request.
        if _validating.get():
            raise _Validated(operation)
        return self.pipeline(operation)

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def aclose(self) -> None:
        """Close the transport's connections."""
        await self.transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
