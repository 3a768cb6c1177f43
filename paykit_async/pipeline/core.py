"""Operations, outcomes and the onion of middlewares that turns one into the other.

A middleware is ``async (operation, call_next) -> Outcome``. The runner composes the chain once,
outermost first; the innermost handler is the exchange (encode + sign → transport → decode +
verify). The provider clients build their chains as::

    Idempotency → Retry → user middlewares (once per attempt) → exchange

A :class:`Pacer` installed with :func:`pacing` is awaited right before the exchange, so it paces
requests actually sent — every attempt and settle query — and never an outcome replayed from an
idempotency store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

import attrs

from ..errors import PaykitError
from ..transport.base import Transport
from ..transport.wire import WireRequest, WireResponse

__all__ = [
    "Dialect",
    "Exchange",
    "Handler",
    "Middleware",
    "Operation",
    "Outcome",
    "Pacer",
    "Pipeline",
    "Settler",
    "WireRecord",
    "pacing",
    "recording_wire",
    "request_id_of",
    "watch_sending",
    "wire_received",
    "wire_sent",
]

#: Response headers that carry the provider's id of a request (WeChat Pay v3: ``Request-ID``).
REQUEST_ID_HEADERS = ("request-id", "x-request-id")


@attrs.frozen(kw_only=True)
class Outcome:
    """A verified reply: ``fields`` are every received field (``.raw`` of the typed result).

    ``attempts`` counts the requests sent; ``settled_by_query`` is set when an unknown outcome was
    resolved by the provider's query; ``replayed`` when an idempotency store returned a recorded
    outcome without calling the provider. ``request_id`` is the provider's id of the request that
    produced the reply (a ``Request-ID`` header), when it sends one. ``refund_no`` is set when a
    layer sent the provider another refund number than the operation's (an idempotency store
    resuming the number of an earlier attempt): the number the reply is about, which a client
    reports even when the reply does not echo it.
    """

    fields: Mapping[str, Any]
    status_code: int = 200
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False
    request_id: str | None = None
    refund_no: str | None = None


Settler = Callable[["Operation"], Awaitable[Outcome | None]]
"""Asks the provider whether a refund exists: an Outcome when it does, None when it certainly
does not; raises when the provider cannot say."""


@attrs.frozen(kw_only=True)
class Operation:
    """One provider call: where it goes and its business fields, before signing.

    ``fields`` are strings and leave out what is fresh per attempt (``nonce_str``, eftPay's
    ``time``) and the signature, which the exchange adds. ``refund_no_field`` names the field
    holding the refund number for refunds (``out_refund_no``, ``refund_no``, ...); the retry layer
    re-sends that number unchanged and the idempotency layer fixes it before the first attempt.
    ``refund_no_generated`` is True when the client minted that number for this call (the caller
    gave none): only then may an idempotency key replace it with the number recorded earlier; a
    number the caller chose must match the recorded one.
    """

    provider: str
    name: str
    url: str
    fields: Mapping[str, str]
    refund_no_field: str | None = None
    refund_no_generated: bool = False
    idempotency_key: str | None = None
    settle: Settler | None = attrs.field(default=None, eq=False, repr=False)
    attempt: int = 1

    @property
    def refund_no(self) -> str | None:
        """The refund number this operation carries, if it is a refund."""
        if self.refund_no_field is None:
            return None
        return self.fields.get(self.refund_no_field)

    @property
    def is_refund(self) -> bool:
        return self.refund_no_field is not None


Handler = Callable[[Operation], Awaitable[Outcome]]
Middleware = Callable[[Operation, Handler], Awaitable[Outcome]]
"""``await middleware(operation, call_next)``. A middleware whose only await is ``call_next``
(it never waits on anything of its own: a lock, a queue, I/O) may say so with a true
``passes_attempt_bound`` attribute; an attempt through it is then bounded as the transport bounds
it, and the retry layer needs no deadline scope of its own around it (see :class:`Pipeline`)."""


class Dialect(Protocol):
    """A provider's wire rules: how an operation becomes bytes and how a reply becomes an outcome.

    ``decode`` verifies the reply signature and raises ``ProviderError``, ``SignatureError``,
    ``DecodeError`` or ``HTTPStatusError`` — the provider-specific error classification.
    """

    def encode(self, operation: Operation) -> WireRequest: ...

    def decode(self, operation: Operation, response: WireResponse) -> Outcome: ...


@attrs.frozen(kw_only=True)
class Exchange:
    """The innermost handler: encode and sign, send, decode and verify.

    Every provider's exchange is this one; a provider that must do more subclasses it and
    overrides :meth:`decode_again` (called only when decoding failed) and, if an attempt through
    it can wait on anything but the transport, :meth:`attempt_bound`.
    """

    dialect: Dialect
    transport: Transport

    async def __call__(self, operation: Operation) -> Outcome:
        request = self.dialect.encode(operation)
        # wire_sent and wire_received, inlined (one context lookup): this runs on every attempt.
        record = _WIRE_RECORD.get()
        if record is not None:
            record.method = request.method
            record.url = request.url
        response = await self.transport.send(request)
        request_id = request_id_of(response.headers)
        if record is not None:
            record.status_code = response.status_code
            record.request_id = request_id
        try:
            outcome = self.dialect.decode(operation, response)
        except PaykitError as error:
            try:
                outcome = await self.decode_again(operation, response, error)
            except PaykitError as final:
                final.request_id = final.request_id or request_id
                raise
        return outcome if request_id is None else attrs.evolve(outcome, request_id=request_id)

    async def decode_again(self, operation: Operation, response: WireResponse, error: PaykitError) -> Outcome:
        """After ``decode`` raised ``error``: an outcome from the same reply, or raise. Raises
        ``error`` here; WeChat Pay v3 verifies again once a missing certificate is downloaded."""
        raise error

    def attempt_bound(self) -> float | None:
        """Seconds within which one call certainly returns or raises, or None if unknown: the
        transport's ``attempt_bound`` (a total timeout bounding every send)."""
        bound = getattr(self.transport, "attempt_bound", None)
        return bound if isinstance(bound, int | float) else None


class WireRecord:
    """What the exchange saw of one attempt on the wire, for observers (tracing, metrics).

    Filled only inside :func:`recording_wire` (so mutable, unlike the value types here); never
    holds a header value other than the request id, nor any part of a body.
    """

    __slots__ = ("method", "request_id", "status_code", "url")

    def __init__(self) -> None:
        self.method: str | None = None
        self.url: str | None = None
        self.status_code: int | None = None
        self.request_id: str | None = None

    def __repr__(self) -> str:
        return f"<WireRecord {self.method} {self.url} -> {self.status_code}>"


_WIRE_RECORD: ContextVar[WireRecord | None] = ContextVar("paykit_wire_record", default=None)


@contextlib.contextmanager
def recording_wire() -> Iterator[WireRecord]:
    """Within the block, exchanges in this task note their method, URL, status and request id
    in the yielded :class:`WireRecord` (a middleware's view of the wire, without wrapping it)."""
    record = WireRecord()
    token = _WIRE_RECORD.set(record)
    try:
        yield record
    finally:
        _WIRE_RECORD.reset(token)


def wire_sent(request: WireRequest) -> None:
    """Exchanges call this before sending (a no-op outside :func:`recording_wire`)."""
    record = _WIRE_RECORD.get()
    if record is not None:
        record.method = request.method
        record.url = request.url


def wire_received(response: WireResponse) -> str | None:
    """Exchanges call this on a response; returns its request id (see :func:`request_id_of`)."""
    request_id = request_id_of(response.headers)
    record = _WIRE_RECORD.get()
    if record is not None:
        record.status_code = response.status_code
        record.request_id = request_id
    return request_id


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The provider's request id in lower-cased response ``headers``, if any (at most 128 chars)."""
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value[:128]
    return None


class Pacer(Protocol):
    """Something that makes a request wait for its turn (a rate limiter)."""

    async def acquire(self) -> None: ...


_pacer: ContextVar[Pacer | None] = ContextVar("paykit_pacer", default=None)
_sending: ContextVar[list[bool] | None] = ContextVar("paykit_sending", default=None)


@contextlib.contextmanager
def watch_sending() -> Iterator[list[bool]]:
    """A cell that turns ``[True]`` once a request of this task reaches the exchange inside the
    block — after pacing and the middlewares. The retry layer uses it to tell an attempt cut off
    before anything was sent (``sent=False``) from one cut off in flight."""
    cell = [False]
    token = _sending.set(cell)
    try:
        yield cell
    finally:
        _sending.reset(token)


@contextlib.contextmanager
def pacing(pacer: Pacer | None) -> Iterator[None]:
    """Within the block (in this task), every request a :class:`Pipeline` sends first awaits
    ``pacer.acquire()``. ``refund_many`` uses it so that its rate counts requests actually sent."""
    token = _pacer.set(pacer)
    try:
        yield
    finally:
        _pacer.reset(token)


class Pipeline:
    """Runs an operation through ``middlewares`` (outermost first) down to ``handler``.

    The chain is built once here, not per call, and adds no coroutine of its own between the
    layers: every suspension of a request resumes each frame of its chain, so a pass-through
    frame costs on every network event, not once. The handler is paced by the :func:`pacing`
    in effect, if any.

    Each layer's ``call_next`` tells how long an attempt through it can take at most
    (``attempt_bound()``, None if unknown): the transport's bound when nothing in between can wait —
    no pacer, and only middlewares with a true ``passes_attempt_bound``.
    """

    __slots__ = ("_entry", "handler", "middlewares")

    def __init__(self, middlewares: Sequence[Middleware], handler: Handler) -> None:
        self.middlewares = tuple(middlewares)
        self.handler = handler
        entry: Handler = _Paced(handler)
        for middleware in reversed(self.middlewares):
            entry = _Bound(middleware, entry)
        self._entry = entry

    def __call__(self, operation: Operation) -> Awaitable[Outcome]:
        return self._entry(operation)


class _Paced:
    """The innermost handler, paced by the :func:`pacing` in effect; marks the attempt as sent.

    ``attempt_bound()`` tells the layer above how long an attempt can take at most, when it can
    tell: the handler is an :class:`Exchange` that states its bound (the transport's total timeout)
    and no pacer is in effect, so nothing else can wait.
    """

    __slots__ = ("_exchange", "_handler")

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._exchange = handler if isinstance(handler, Exchange) else None

    def __call__(self, operation: Operation) -> Awaitable[Outcome]:
        pacer = _pacer.get()
        if pacer is not None:
            return self._after_turn(pacer, operation)
        sending = _sending.get()
        if sending is not None:
            sending[0] = True
        return self._handler(operation)

    async def _after_turn(self, pacer: Pacer, operation: Operation) -> Outcome:
        await pacer.acquire()
        sending = _sending.get()
        if sending is not None:
            sending[0] = True
        return await self._handler(operation)

    def attempt_bound(self) -> float | None:
        """Seconds within which one call certainly returns or raises, or None if unknown."""
        exchange = self._exchange
        if exchange is None or _pacer.get() is not None:
            return None
        return exchange.attempt_bound()


class _Bound:
    """``middleware`` with its ``call_next``: calls it without a coroutine frame of its own."""

    __slots__ = ("_call_next", "_inner_bound", "_middleware")

    def __init__(self, middleware: Middleware, call_next: Handler) -> None:
        self._middleware = middleware
        self._call_next = call_next
        # Only a middleware that waits on nothing but ``call_next`` keeps the bound of what it wraps.
        passes = getattr(middleware, "passes_attempt_bound", False) is True
        self._inner_bound: Callable[[], float | None] | None = (
            getattr(call_next, "attempt_bound", None) if passes else None
        )

    def __call__(self, operation: Operation) -> Awaitable[Outcome]:
        return self._middleware(operation, self._call_next)

    def attempt_bound(self) -> float | None:
        """Seconds within which one call certainly returns or raises, or None if unknown."""
        inner = self._inner_bound
        return None if inner is None else inner()
