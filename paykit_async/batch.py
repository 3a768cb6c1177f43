"""Concurrent batch refunds: many refunds through one client, bounded, rate-limited, exactly once.

:func:`refund_many` runs a (sync or async) iterable of refund requests with a fixed pool of
worker tasks and hands back one :class:`BatchOutcome` per request as it completes::

    async with refund_many(client, requests, concurrency=64, rate=150) as outcomes:
        async for outcome in outcomes:
            print(outcome.index, outcome.status, outcome.refund_no)

It is an async context manager rather than an async generator because the workers live in a
task group, and yielding from inside a task group in an async generator is unsafe on both
asyncio and trio. Leaving the block early (``break``, an exception, cancellation of the caller)
cancels the refunds still in flight and waits for them: no task outlives the block. If the
*requests* iterable raises, no further request is taken, the refunds already sent finish and are
reported, and then the iteration of the outcomes raises that error.

Every request's refund number is fixed *before* it is sent, so a refund whose outcome is unknown
can be settled later under the same number — never re-issued under a new one. With an
idempotency key (``batch_id=`` or ``idempotency_key=``) the number is derived from the key
(:meth:`~paykit_async.refund_numbers.RefundNumberRule.fix`), exactly as the client's own
``refund()`` would derive it; without one it is minted at random.

``batch_id=`` keys each request by its *content* — provider, merchant, order identifiers, amounts
and an explicit refund number or ``idempotency_key`` (see :func:`refund_key`) — never by its
position, so a batch may be edited (rows inserted, deleted, reordered) and run again: each refund
is made once. Requests are pulled from the iterable lazily and results flow through a bounded
stream, so memory stays proportional to ``concurrency`` whatever the number of requests.
"""

from __future__ import annotations

import enum
import inspect
import math
import sys
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, nullcontext
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Protocol

import anyio
import attrs
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import (
    IdempotencyConflict,
    IdempotencyStoreError,
    PaykitError,
    ProviderError,
    RefundOutcomeUnknown,
    ValidationError,
)
from .pipeline.clock import Clock, MonotonicClock
from .pipeline.core import Handler, Operation, Outcome, Pipeline, pacing
from .refund_numbers import RefundNumberRule

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "BatchOutcome",
    "BatchStatus",
    "EarlierRefund",
    "InvalidRequest",
    "RateLimiter",
    "RefundBatch",
    "RefundNumberRule",
    "RefundOrder",
    "count_attempts",
    "edited_row_refusal",
    "explicitly_keyed",
    "order_aliases",
    "order_of",
    "refund_key",
    "refund_many",
    "refund_number_rule",
    "repeated_row_refusal",
]

RefundRequest = Mapping[str, Any]
"""One refund: the keyword arguments of the client's ``refund()`` method."""


@attrs.frozen(kw_only=True)
class InvalidRequest:
    """A request that could not even be built (a malformed CSV row, say), passed through a batch
    so that it gets its own :attr:`BatchStatus.INVALID` outcome, in its place, with ``reason``
    (and ``code`` as its ``error_code``)."""

    reason: str
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    code: str = "ValidationError"


class RefundingClient(Protocol):
    """Anything with an async ``refund(**fields)`` — the three provider clients."""

    @property
    def refund(self) -> Callable[..., Awaitable[Any]]: ...


class BatchStatus(str, enum.Enum):
    """How one request of a batch ended."""

    #: The provider accepted the refund (it may still be PROCESSING on the provider's side).
    SUCCEEDED = "succeeded"
    #: The provider verifiably refused it; no money moved.
    FAILED = "failed"
    #: The provider may or may not have executed it; settle it later with the same refund number.
    UNKNOWN = "unknown"
    #: The request itself is malformed; nothing was sent.
    INVALID = "invalid"
    #: ``validate_only``: every check passed; nothing was sent.
    READY = "ready"


@attrs.frozen(kw_only=True)
class BatchOutcome:
    """What became of request number ``index`` (0-based, in iteration order).

    ``request`` is the request as sent (with its refund number filled in); ``result`` the
    client's typed result on success; ``error`` the exception otherwise, summarised by
    ``error_code`` (the provider's code, or the exception's class name) and ``error_message``.
    ``attempts`` counts the requests sent for it when :func:`count_attempts` is one of the
    client's middlewares (None otherwise); ``elapsed`` is its latency in seconds.
    """

    index: int
    request: RefundRequest
    status: BatchStatus
    refund_no: str | None = None
    result: Any = None
    error: BaseException | None = attrs.field(default=None, repr=False)
    error_code: str | None = None
    error_message: str | None = None
    attempts: int | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is BatchStatus.SUCCEEDED

    def as_record(self, row: int | None, *, store: str = "The idempotency store") -> dict[str, Any]:
        """This outcome as one results record (JSON data): what ``paykit refunds run`` writes per
        row and a ``paykit worker`` job records, so that both paths report a row alike.

        Every row error has one shape: ``row N: message`` (the message alone when ``row`` is None),
        an ``error_code`` and the refund number when there is one. ``provider_status`` is the
        provider's state of the refund when its reply names one (WeChat v3 ``status``, eftPay
        ``trade_status``, WeChat v2 ``refund_status`` when settled by a query): ``succeeded`` means
        *accepted*, and this says whether it is still processing. ``attempts`` is 0 for a row
        never sent (invalid, or ready in a dry run); ``replayed`` says the provider was not called
        for a success or a definite refusal (:func:`count_attempts` counted none). ``store`` names
        what holds the refund in the hint of an :class:`~paykit_async.errors.IdempotencyConflict`.
        """
        result = self.result
        provider_refund_id = None
        for name in ("refund_id", "transaction_id"):
            provider_refund_id = getattr(result, name, None)
            if provider_refund_id:
                break
        # "succeeded" means accepted; the provider's own word on the refund, where its reply has one.
        provider_status = None
        for name in ("status", "trade_status", "refund_status"):
            value = getattr(result, name, None)
            if isinstance(value, str) and value:
                provider_status = str(value)
                break
        status = self.status
        attempts = 0 if status in (BatchStatus.INVALID, BatchStatus.READY) else self.attempts
        if status is BatchStatus.SUCCEEDED:
            # Replayed from the idempotency store: the provider was not called.
            replayed = bool(getattr(result, "replayed", False)) or attempts == 0
        else:
            replayed = (
                status is BatchStatus.FAILED and isinstance(self.error, ProviderError) and attempts == 0
            )
        message = self.error_message
        if isinstance(self.error, IdempotencyConflict):
            message = (
                f"{message}. {store} holds this row's refund with other details (refund_desc, "
                "notify_url...): restore them, or give the row its own refund number or idempotency_key "
                "if it is another refund"
            )
        if message is not None and row is not None:
            message = f"row {row}: {message}"
        return {
            "row": row,
            "status": status.value,
            "refund_no": self.refund_no,
            "provider_refund_id": provider_refund_id,
            "provider_status": provider_status,
            "error_code": self.error_code,
            "error_message": message,
            "attempts": attempts,
            "replayed": replayed,
            "settled_by_query": bool(getattr(result, "settled_by_query", False)),
        }


# --------------------------------------------------------------------------- refund numbers


def refund_number_rule(client: object) -> RefundNumberRule | None:
    """The refund-number rule a client declares (``refund_number_rule``), or None."""
    rule = getattr(client, "refund_number_rule", None)
    return rule if isinstance(rule, RefundNumberRule) else None


def refund_key(client: object, request: Mapping[str, Any], *, batch_id: str) -> str:
    """The idempotency key ``refund_many(batch_id=...)`` gives ``request``: ``batch_id``, a colon
    and the SHA-256 of the refund's identity at the client's merchant
    (:meth:`RefundNumberRule.identity_of`: order identifiers, amounts, an explicit refund number or
    ``idempotency_key``; never descriptions, never the request's position)."""
    rule = refund_number_rule(client) or RefundNumberRule(field="")
    if not rule.provider:
        rule = attrs.evolve(rule, provider=str(getattr(client, "provider", "")))
    merchant = str(getattr(client, "refund_merchant", ""))
    return f"{batch_id}:{rule.identity_of(request, merchant=merchant)}"


@attrs.frozen(kw_only=True)
class RefundOrder:
    """Which order a request refunds and by how much (:func:`order_of`)."""

    #: SHA-256 (hex) of the provider, the merchant and the order identifiers.
    key: str
    #: The order identifiers, for people: ``out_trade_no=A006``.
    order: str
    #: The amounts, for people: ``refund_fee=400, total_fee=1000``.
    amounts: str


def order_of(client: object, request: Mapping[str, Any]) -> RefundOrder | None:
    """The order ``request`` refunds at the client's merchant and its amounts — the refund's
    identity (:func:`refund_key`) without the amounts — or None when the client's rule names no
    order fields (:attr:`RefundNumberRule.orders`) or the request names no order."""
    rule = refund_number_rule(client)
    if rule is None or not rule.orders:
        return None
    order = {name: request[name] for name in rule.orders if request.get(name) not in (None, "")}
    if not order:
        return None
    merchant = str(getattr(client, "refund_merchant", ""))
    order_rule = attrs.evolve(rule, identity=tuple(order), amounts=())
    amounts = [
        name for name in rule.identity if name not in rule.orders and name != rule.field and name in request
    ]
    return RefundOrder(
        key=order_rule.identity_of(order, merchant=merchant),
        order=", ".join(f"{name}={value}" for name, value in order.items()),
        # As the identity reads them: "10.50" and "10.5" are one amount (the repeat check matches it).
        amounts=", ".join(f"{name}={rule.identity_text(name, request[name])}" for name in amounts),
    )


def order_aliases(client: object, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The order keys (:attr:`RefundOrder.key`) of each order identifier in ``fields`` on its own
    — a provider's refund reply names the order by all of them (WeChat: ``out_trade_no`` *and*
    ``transaction_id``), while a row names it by one. A refund the journal holds under one name is
    so found again when a row names its order by another."""
    rule = refund_number_rule(client)
    if rule is None:
        return ()
    keys: list[str] = []
    for name in rule.orders:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            order = order_of(client, {name: value.strip()})
            if order is not None and order.key not in keys:
                keys.append(order.key)
    return tuple(keys)


def explicitly_keyed(client: object, request: Mapping[str, Any]) -> bool:
    """Whether ``request`` carries its own refund number or ``idempotency_key`` (what tells two
    partial refunds of one order apart)."""
    rule = refund_number_rule(client)
    names = ["idempotency_key"] + ([rule.field] if rule is not None and rule.generated else [])
    return any(request.get(name) not in (None, "") for name in names)


@attrs.frozen(kw_only=True)
class EarlierRefund:
    """A refund an earlier run of a batch sent for an order, from a row no longer in the batch."""

    order: str
    amounts: str
    refund_no: str
    #: True: the provider executed it; False: its outcome is unknown (it may have).
    succeeded: bool
    #: The batch id it was sent under, when that is another batch than the one being run.
    batch: str | None = None


def _fate(refund: EarlierRefund) -> str:
    return "succeeded" if refund.succeeded else "outcome unknown, it may have been paid"


def repeated_row_refusal(
    client: object, request: Mapping[str, Any], earlier: Sequence[EarlierRefund]
) -> str | None:
    """Why a batch row must not be sent, or None: the row names no refund number or
    ``idempotency_key`` of its own and ``earlier`` (refunds of the row's order *with the row's
    amounts* sent, or maybe sent, under another batch id, while the row was never sent under this
    one) is not empty — most likely the same file run again under a new batch id by mistake, which
    would refund every order again.

    The caller finds ``earlier`` in its journal; this function is the one rule and message."""
    if earlier and not explicitly_keyed(client, request):
        where = [
            f"batch id {refund.batch!r}: refund number {refund.refund_no} ({_fate(refund)})"
            for refund in earlier
        ]
        return (
            f"order {earlier[0].order} was already refunded {earlier[0].amounts} under another batch "
            f"id: {'; '.join(where)}. Sending this row would refund the order again. If that is "
            "intended (a second refund of the same amount), run again with --repeat-other-batches, or "
            "give this row its own refund number or idempotency_key column. Nothing was sent for this row"
        )
    return None


def edited_row_refusal(
    client: object, request: Mapping[str, Any], earlier: Sequence[EarlierRefund]
) -> str | None:
    """Why a batch row must not be sent, or None: the row names no refund number or
    ``idempotency_key`` of its own and ``earlier`` (the refunds this batch already sent, or may have
    sent, for the row's order under identities no row of the batch has any more, while the row's
    own identity was never sent) is not empty — the row is most likely an *edit* of that earlier
    row (an amount fixed after it ran), and sending it would refund the order again.

    The caller finds ``earlier`` in its journal; this function is the one rule and message."""
    if not earlier or explicitly_keyed(client, request):
        return None
    done = "; ".join(
        f"refund number {refund.refund_no} ({refund.amounts}: {_fate(refund)})" for refund in earlier
    )
    return (
        f"order {earlier[0].order} was already refunded by an earlier run of this batch, from a row "
        f"that is no longer in the file (edited or deleted): {done}. Sending this row would refund "
        "the order again. Restore the original row (its refund stands), or, if a second partial "
        "refund is really intended, give this row its own refund number or idempotency_key column. "
        "Nothing was sent for this row"
    )


# --------------------------------------------------------------------------- attempts


_attempt_counter: ContextVar[list[int] | None] = ContextVar("paykit_batch_attempts", default=None)


async def count_attempts(operation: Operation, call_next: Handler) -> Outcome:
    """A middleware that lets :func:`refund_many` report how many requests each refund took.

    Put it in the client's ``middleware=[...]`` (user middlewares run once per attempt). It
    counts refund attempts of the current task only (a context variable), so it is safe to share.
    """
    cell = _attempt_counter.get()
    if cell is not None and operation.is_refund:
        cell[0] += 1
    return await call_next(operation)


# --------------------------------------------------------------------------- rate limiting


class RateLimiter:
    """Spaces calls at most ``rate`` per second, allowing short bursts of ``burst`` calls.

    A token bucket kept as "the time the next call may start" (GCRA); no lock is needed because
    reading and moving that time never awaits.
    """

    def __init__(self, rate: float, *, burst: int = 1, clock: Clock | None = None) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValidationError(f"must be a positive number, got {rate!r}", field="rate")
        if burst < 1:
            raise ValidationError(f"must be >= 1, got {burst!r}", field="burst")
        self.rate = rate
        self.burst = burst
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._interval = 1.0 / rate
        self._next: float | None = None

    async def acquire(self) -> None:
        """Wait until one more call fits in the rate."""
        now = self._clock.now()
        earliest = now - (self.burst - 1) * self._interval
        start = earliest if self._next is None else max(self._next, earliest)
        self._next = start + self._interval
        if start > now:
            await self._clock.sleep(start - now)
        else:
            await anyio.lowlevel.checkpoint()


# --------------------------------------------------------------------------- the batch


OnStart = Callable[[int, RefundRequest, "str | None"], Awaitable[None]]
"""Called with (index, request, refund number) after the number is fixed, before sending."""

KeyFor = Callable[[int, RefundRequest], "str | None"]
"""Derives an idempotency key for request ``index`` (None: no key)."""


def refund_many(
    client: RefundingClient,
    requests: Iterable[RefundRequest | InvalidRequest] | AsyncIterable[RefundRequest | InvalidRequest],
    *,
    concurrency: int = 32,
    rate: float | RateLimiter | None = None,
    ordered: bool = False,
    idempotency_key: KeyFor | None = None,
    on_start: OnStart | None = None,
    buffer: int | None = None,
    batch_id: str | None = None,
    validate_only: bool = False,
) -> RefundBatch:
    """Refund every request through ``client``, ``concurrency`` at a time; see the module doc.

    ``concurrency`` should not exceed the client's connection pool (``max_connections``,
    100 by default). ``rate`` caps the requests per second actually sent — attempts and settle
    queries, not outcomes replayed from the idempotency store (WeChat allows about 150/s). With
    ``ordered=True`` outcomes come in request order (at most ``2 * concurrency`` are held back).

    ``batch_id`` keys every request by its content (:func:`refund_key`); otherwise
    ``idempotency_key(index, request)`` may give each refund a key, and a request's own
    ``idempotency_key`` is used as it is. Either way a key fixes the refund number (derived from
    it) and, with an idempotency store on the client, makes a re-run replay finished refunds and
    resume unfinished ones under their numbers. ``on_start`` is awaited with each refund number
    before the refund is sent (to journal it). ``validate_only`` sends nothing: each request gets
    every check a real run makes (the client's :meth:`validate_refund`) and ends
    :attr:`BatchStatus.READY` or :attr:`BatchStatus.INVALID` with the message a real run would
    give. One request's failure never stops the others.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValidationError(f"must be an int >= 1, got {concurrency!r}", field="concurrency")
    pool = getattr(client, "max_connections", None)
    if isinstance(pool, int) and concurrency > pool:
        # More workers than connections would only queue on the pool (and hit its timeout).
        raise ValidationError(
            f"{concurrency} exceeds the client's connection pool ({pool}); lower it or create the "
            "client with a larger max_connections=",
            field="concurrency",
        )
    if isinstance(rate, bool) or not (
        rate is None or isinstance(rate, int | float) or callable(getattr(rate, "acquire", None))
    ):
        # Anything else failed only inside a worker (no ``acquire``), stopping the batch mid-flight.
        raise ValidationError(
            f"must be a number of requests per second or a RateLimiter, got {rate!r}", field="rate"
        )
    if buffer is not None and (not isinstance(buffer, int) or isinstance(buffer, bool) or buffer < 0):
        raise ValidationError(f"must be an int >= 0, got {buffer!r}", field="buffer")
    limiter = RateLimiter(rate) if isinstance(rate, int | float) else rate
    if batch_id is not None:
        if not isinstance(batch_id, str) or not batch_id:
            raise ValidationError("must be a non-empty str", field="batch_id")
        if idempotency_key is not None:
            raise ValidationError("give batch_id or idempotency_key, not both", field="batch_id")
        content_batch = batch_id

        def idempotency_key(index: int, request: RefundRequest) -> str:
            return refund_key(client, request, batch_id=content_batch)

    return RefundBatch(
        client=client,
        requests=requests,
        concurrency=concurrency,
        limiter=limiter,
        ordered=ordered,
        idempotency_key=idempotency_key,
        on_start=on_start,
        buffer=concurrency if buffer is None else buffer,
        keys_replace_request_keys=batch_id is not None,
        validate_only=validate_only,
    )


class RefundBatch:
    """The running batch: enter it to get the stream of :class:`BatchOutcome`.

    ``in_flight`` maps the index of every refund sent whose outcome has not been handed out yet
    (still on the wire, or finished but buffered or held back for ordering) to its refund number;
    after leaving the block early it names the refunds whose outcome the caller must settle later.
    ``started`` and ``completed`` count requests.
    """

    def __init__(
        self,
        *,
        client: RefundingClient,
        requests: Iterable[RefundRequest | InvalidRequest] | AsyncIterable[RefundRequest | InvalidRequest],
        concurrency: int,
        limiter: RateLimiter | None,
        ordered: bool,
        idempotency_key: KeyFor | None,
        on_start: OnStart | None,
        buffer: int,
        keys_replace_request_keys: bool = False,
        validate_only: bool = False,
    ) -> None:
        self._client = client
        self._requests = requests
        self._concurrency = concurrency
        self._limiter = limiter
        self._ordered = ordered
        self._key_for = idempotency_key
        self._on_start = on_start
        self._buffer = buffer
        self._keys_replace_request_keys = keys_replace_request_keys
        self._validate_only = validate_only
        self._rule = refund_number_rule(client)
        merchant = getattr(client, "refund_merchant", None)
        self._merchant = merchant if isinstance(merchant, str) else None
        self._fields = _RefundFields.of(client)
        self._store = getattr(client, "idempotency_store", None)
        pipeline = getattr(client, "pipeline", None)
        self._counts_attempts = count_attempts in getattr(pipeline, "middlewares", ())
        # A pipeline client paces each request it actually sends (never a replay from its store);
        # any other client is paced once per refund call.
        self._paced_inside = isinstance(pipeline, Pipeline)
        # Nothing but the refund call itself to do per request (see _work).
        self._direct = (
            not validate_only
            and limiter is None
            and on_start is None
            and self._store is None
            and not self._counts_attempts
        )
        self._source: Iterator[object] | AsyncIterator[object] = (
            aiter(requests) if isinstance(requests, AsyncIterable) else iter(requests)
        )
        self._task_group: TaskGroup | None = None
        self._receive: MemoryObjectReceiveStream[BatchOutcome] | None = None
        self._next_index = 0
        self._exhausted = False
        # Pulling from a plain iterator never awaits, so workers cannot interleave inside it and
        # need no lock; a lock would hand the next request to one waiting worker per event-loop
        # iteration and so cap the refunds in flight far below ``concurrency``.
        self._pull_lock: AbstractAsyncContextManager[object] = (
            anyio.Lock() if isinstance(self._source, AsyncIterator) else nullcontext()
        )
        # Ordered mode: a window of indexes that may be in flight or held back for ordering.
        self._window = anyio.Semaphore(2 * concurrency) if ordered else None
        self._held: dict[int, BatchOutcome] = {}
        self._next_to_emit = 0
        self._emit_lock = anyio.Lock()
        self._source_error: Exception | None = None
        self._workers: TaskGroup | None = None
        self._spawned = 0
        self.in_flight: dict[int, str | None] = {}
        self.started = 0
        self.completed = 0

    def __repr__(self) -> str:
        return (
            f"<RefundBatch started={self.started} completed={self.completed} in_flight={len(self.in_flight)}>"
        )

    async def __aenter__(self) -> AsyncIterator[BatchOutcome]:
        if self._task_group is not None:
            raise RuntimeError("a RefundBatch can be entered only once")
        send, receive = anyio.create_memory_object_stream[BatchOutcome](self._buffer)
        self._receive = receive
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        task_group.start_soon(self._run, send)
        return _Outcomes(receive, self._take_source_error, self.in_flight)

    def _take_source_error(self) -> Exception | None:
        """The requests' iterable's error, once, for the end of the outcomes."""
        error, self._source_error = self._source_error, None
        return error

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        assert self._receive is not None
        # Left early or failed: stop the workers. After a full iteration they are done already.
        self._task_group.cancel_scope.cancel()
        self._receive.close()
        try:
            return await self._task_group.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The caller's own exception, wrapped by the task group: give it back unwrapped.
            if exc is not None and group.split(lambda leaf: leaf is exc)[1] is None:
                return False
            raise

    # ----------------------------------------------------------------- workers

    async def _run(self, send: MemoryObjectSendStream[BatchOutcome]) -> None:
        # One worker to begin with; each worker that takes a request starts the next one, up to
        # ``concurrency``. So a batch has at most one more worker than requests: a huge
        # ``concurrency`` (an operator's --concurrency 1000000) costs nothing it does not use.
        async with send, anyio.create_task_group() as workers:
            self._workers = workers
            self._spawned = 1
            workers.start_soon(self._work, send)

    def _spawn_next(self, send: MemoryObjectSendStream[BatchOutcome]) -> None:
        """A request was taken: start one more worker for the next, while under ``concurrency``."""
        if self._spawned < self._concurrency and self._workers is not None:
            self._spawned += 1
            self._workers.start_soon(self._work, send)

    async def _work(self, send: MemoryObjectSendStream[BatchOutcome]) -> None:
        source = self._source
        # A plain iterator is read without a lock or a coroutine: next() never awaits.
        plain = source if isinstance(source, Iterator) else None
        while True:
            if self._window is not None:
                await self._window.acquire()
            if plain is not None:
                item = None if self._exhausted else self._pulled(plain)
                if item is None:
                    self._exhausted = True
                    if self._window is not None:
                        self._window.release()
                    return
                index = self._next_index
                self._next_index += 1
                self._spawn_next(send)
            else:
                async with self._pull_lock:
                    if self._exhausted:
                        item = None
                    else:
                        item = await self._pull()
                        if item is None:
                            self._exhausted = True
                    if item is None:
                        if self._window is not None:
                            self._window.release()
                        return
                    index = self._next_index
                    self._next_index += 1
                self._spawn_next(send)
            request = item[0]
            if self._direct and type(request) is dict:
                # The usual batch (no store, rate limit, on_start, attempt counting or dry run):
                # the refund is awaited here, one coroutine frame less on each of its resumptions.
                ready = self._ready(index, request)
                if isinstance(ready, BatchOutcome):
                    outcome = ready
                else:
                    fixed, kwargs, refund_no = ready
                    self.started += 1
                    self.in_flight[index] = refund_no
                    began = time.perf_counter()
                    try:
                        result = await self._client.refund(**kwargs)
                    except Exception as error:
                        outcome = _after_error(index, fixed, refund_no, error, None, began)
                    else:
                        outcome = _succeeded(index, fixed, refund_no, result, None, began)
            else:
                outcome = await self._refund_one(index, request)
            self.completed += 1
            if self._window is None:
                try:
                    # Without a checkpoint when the buffer has room: one less task switch per refund.
                    send.send_nowait(outcome)
                except anyio.WouldBlock:
                    await send.send(outcome)
            else:
                await self._emit_in_order(outcome, send)

    def _pulled(self, source: Iterator[object]) -> tuple[object] | None:
        """The next request of a plain iterator, boxed, or None at its end or when it raised."""
        try:
            return _next_boxed(source)
        except Exception as error:
            self._source_failed(error)
            return None

    def _source_failed(self, error: Exception) -> None:
        """The requests' iterable raised: no more requests are taken, the refunds already sent
        finish and are reported, and then the iteration of the outcomes raises ``error``. Raised
        in a worker, it cancelled the refunds in flight, leaving their outcomes unknown."""
        if self._source_error is None:
            self._source_error = error

    async def _pull(self) -> tuple[object] | None:
        """The next request, boxed (a request may be any object), or None at the end."""
        source = self._source
        try:
            if isinstance(source, AsyncIterator):
                try:
                    return (await source.__anext__(),)
                except StopAsyncIteration:
                    return None
            try:
                return (next(source),)
            except StopIteration:
                return None
        except Exception as error:
            self._source_failed(error)
            return None

    async def _emit_in_order(self, outcome: BatchOutcome, send: MemoryObjectSendStream[BatchOutcome]) -> None:
        assert self._window is not None
        async with self._emit_lock:
            self._held[outcome.index] = outcome
            while self._next_to_emit in self._held:
                await send.send(self._held.pop(self._next_to_emit))
                self._next_to_emit += 1
                self._window.release()

    async def _refund_one(self, index: int, request: object) -> BatchOutcome:
        if type(request) is not dict and isinstance(request, InvalidRequest):
            return BatchOutcome(
                index=index,
                request=request.fields,
                status=BatchStatus.INVALID,
                error_code=request.code,
                error_message=request.reason,
            )
        if type(request) is not dict and not isinstance(request, Mapping):
            return BatchOutcome(
                index=index,
                request={},
                status=BatchStatus.INVALID,
                error_code="ValidationError",
                error_message=f"a refund request must be a mapping of fields, not {type(request).__name__}",
            )
        ready = self._ready(index, request)
        if isinstance(ready, BatchOutcome):
            return ready
        fixed, kwargs, refund_no = ready
        if self._validate_only:
            try:
                return await self._validate(index, fixed, kwargs, refund_no)
            except ValidationError as error:
                return _failure(index, request, refund_no, BatchStatus.INVALID, error, None, None)
        key = kwargs.get("idempotency_key")
        recorded: str | None = None
        if self._store is not None and isinstance(key, str):
            try:
                recorded = await self._recorded_refund_no(key)
            except Exception as error:
                # The store could not be read: nothing was sent, the next run tries again.
                if not isinstance(error, PaykitError):
                    reason = f"{type(error).__name__}: {error}"
                    error = IdempotencyStoreError(f"the idempotency store failed: {reason}")
                return _failure(index, fixed, refund_no, BatchStatus.FAILED, error, 0, None)
        if recorded is not None and self._rule is not None and recorded != refund_no:
            # The key was used before (a crashed or interrupted run): that number is the refund.
            refund_no = recorded
            fixed = {**fixed, self._rule.field: recorded}
            kwargs[self._rule.field] = recorded
        if self._limiter is not None and not self._paced_inside:
            await self._limiter.acquire()
        self.started += 1
        self.in_flight[index] = refund_no
        if self._on_start is not None:
            await self._on_start(index, fixed, refund_no)
        counted = self._counts_attempts
        # Only count_attempts reads the counter: without it, no context variable to set.
        cell = [0]
        token = _attempt_counter.set(cell) if counted else None
        began = time.perf_counter()
        try:
            if self._limiter is not None and self._paced_inside:
                with pacing(self._limiter):
                    result = await self._client.refund(**kwargs)
            else:
                result = await self._client.refund(**kwargs)
        except Exception as error:
            outcome = _after_error(index, fixed, refund_no, error, cell[0] if counted else None, began)
        else:
            outcome = _succeeded(index, fixed, refund_no, result, cell[0] if counted else None, began)
        finally:
            if token is not None:
                _attempt_counter.reset(token)
        # Still in ``in_flight`` until its outcome is handed out (``_Outcomes``).
        return outcome

    def _ready(
        self, index: int, request: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], dict[str, Any], str | None] | BatchOutcome:
        """:meth:`_prepare` and the argument check, or the INVALID outcome of a request that fails
        them."""
        refund_no: str | None = None
        try:
            fixed, kwargs, refund_no = self._prepare(index, request)
            if self._fields is not None:
                self._fields.check(kwargs)
        except ValidationError as error:
            return _failure(index, request, refund_no, BatchStatus.INVALID, error, None, None)
        except Exception as error:
            # The request's key or number could not be derived (an ``idempotency_key`` callback
            # that raises, a value that cannot be hashed): nothing was sent. This request fails on
            # its own; raised in a worker it would stop the batch and abandon the refunds in flight.
            invalid = ValidationError(
                f"its idempotency key or refund number cannot be derived ({type(error).__name__}: "
                f"{error}); nothing was sent"
            )
            invalid.__cause__ = error
            return _failure(index, request, refund_no, BatchStatus.INVALID, invalid, None, None)
        return fixed, kwargs, refund_no

    def _prepare(
        self, index: int, request: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], dict[str, Any], str | None]:
        """The request with its refund number fixed, the ``refund()`` arguments, and the number.

        The idempotency key comes from ``batch_id`` (replacing a request's own key, which is part
        of the content it hashes), else from the request, else from ``idempotency_key=``.
        """
        key: str | None
        own_key = request.get("idempotency_key")
        if self._key_for is not None and (self._keys_replace_request_keys or own_key is None):
            key = self._key_for(index, request)
        else:
            key = own_key if isinstance(own_key, str) and own_key else None
        fixed: Mapping[str, Any] = request
        refund_no: str | None = None
        if self._rule is not None:
            fixed, refund_no = self._rule.fix(request, key=key, merchant=self._merchant)
        if fixed is request:
            # The outcome's ``request`` is the request *as sent*: a copy, not the caller's object,
            # which an iterable may reuse for the next request (and a re-run of an unknown
            # outcome's request would then send another row under another number).
            fixed = dict(request)
        kwargs = dict(fixed)
        if key is not None:
            kwargs["idempotency_key"] = key
        elif "idempotency_key" in kwargs and not own_key:
            del kwargs["idempotency_key"]
        return fixed, kwargs, refund_no

    async def _validate(
        self, index: int, fixed: Mapping[str, Any], kwargs: dict[str, Any], refund_no: str | None
    ) -> BatchOutcome:
        """``validate_only``: the checks ``refund()`` makes, through the client; nothing is sent."""
        validate = getattr(self._client, "validate_refund", None)
        if validate is not None:
            operation = await validate(**kwargs)
            refund_no = operation.refund_no or refund_no
        return BatchOutcome(index=index, request=fixed, status=BatchStatus.READY, refund_no=refund_no)

    async def _recorded_refund_no(self, key: object) -> str | None:
        """The refund number the client's idempotency store holds for ``key``, if any."""
        store = self._store
        if not isinstance(key, str) or store is None:
            return None
        record = await store.get(key)
        return None if record is None else str(record.refund_no)


@attrs.frozen(kw_only=True)
class _RefundFields:
    """The keyword arguments a client's ``refund()`` takes, to check requests cheaply."""

    accepted: frozenset[str]
    required: frozenset[str]
    open_ended: bool

    @classmethod
    def of(cls, client: object) -> _RefundFields | None:
        try:
            signature = inspect.signature(client.refund)  # type: ignore[attr-defined]
        except (AttributeError, TypeError, ValueError):
            return None
        params = signature.parameters.values()
        if any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in params):
            return None
        return cls(
            accepted=frozenset(p.name for p in params if p.kind is not p.VAR_KEYWORD),
            required=frozenset(
                p.name for p in params if p.default is p.empty and p.kind is not p.VAR_KEYWORD
            ),
            open_ended=any(p.kind is p.VAR_KEYWORD for p in params),
        )

    def check(self, kwargs: Mapping[str, Any]) -> None:
        if not self.open_ended and not self.accepted.issuperset(kwargs):
            unknown = ", ".join(sorted(set(kwargs) - self.accepted))
            raise ValidationError(
                f"unknown field(s) {unknown}; refund() takes {', '.join(sorted(self.accepted))}"
            )
        if not self.required.issubset(kwargs):
            raise ValidationError(f"missing field(s) {', '.join(sorted(self.required - set(kwargs)))}")


def _next_boxed(source: Iterator[object]) -> tuple[object] | None:
    """The next request of a plain iterator, boxed (a request may be any object), or None."""
    try:
        return (next(source),)
    except StopIteration:
        return None


def _succeeded(
    index: int, request: RefundRequest, refund_no: str | None, result: Any, attempts: int | None, began: float
) -> BatchOutcome:
    """The outcome of a refund the client returned; ``attempts`` when counted, else the result's."""
    return BatchOutcome(
        index=index,
        request=request,
        status=BatchStatus.SUCCEEDED,
        refund_no=refund_no,
        result=result,
        attempts=getattr(result, "attempts", None) if attempts is None else attempts,
        elapsed=time.perf_counter() - began,
    )


def _after_error(
    index: int,
    request: RefundRequest,
    refund_no: str | None,
    error: Exception,
    attempts: int | None,
    began: float,
) -> BatchOutcome:
    """The outcome of a refund whose ``refund()`` raised ``error``."""
    if isinstance(error, ValidationError | IdempotencyConflict) and not attempts:
        # INVALID says nothing was sent: with the attempts counted (count_attempts), an error of
        # this kind raised after a request went out (a reply the client cannot type) is UNKNOWN.
        status = BatchStatus.INVALID
    elif isinstance(error, ValidationError | IdempotencyConflict):
        status = BatchStatus.UNKNOWN
    elif isinstance(error, RefundOutcomeUnknown):
        status = BatchStatus.UNKNOWN
        refund_no = refund_no or error.refund_no
    elif isinstance(error, PaykitError):
        # A definite refusal unless the provider may have acted (e.g. a SignatureError).
        status = BatchStatus.UNKNOWN if error.outcome_unknown else BatchStatus.FAILED
    else:
        # An unexpected error after the request may have gone out: never call it a failure.
        status = BatchStatus.UNKNOWN
    return _failure(index, request, refund_no, status, error, attempts, began)


def _failure(
    index: int,
    request: RefundRequest,
    refund_no: str | None,
    status: BatchStatus,
    error: BaseException,
    attempts: int | None,
    began: float | None,
) -> BatchOutcome:
    if isinstance(error, ProviderError):
        code, message = error.code, error.message
    elif isinstance(error, PaykitError):
        code, message = type(error).__name__, error.message
    else:
        code, message = type(error).__name__, str(error)
    return BatchOutcome(
        index=index,
        request=request,
        status=status,
        refund_no=refund_no,
        error=error,
        error_code=code,
        error_message=message,
        attempts=attempts,
        elapsed=0.0 if began is None else time.perf_counter() - began,
    )


class _Outcomes(AsyncIterator[BatchOutcome]):
    """The stream of outcomes handed out by ``async with refund_many(...) as outcomes``."""

    def __init__(
        self,
        receive: MemoryObjectReceiveStream[BatchOutcome],
        source_error: Callable[[], Exception | None],
        in_flight: dict[int, str | None],
    ) -> None:
        self._receive = receive
        self._source_error = source_error
        self._in_flight = in_flight

    def __aiter__(self) -> _Outcomes:
        return self

    async def __anext__(self) -> BatchOutcome:
        # Take what is already buffered without a checkpoint: awaiting receive() for each outcome
        # would hand out only one outcome per event-loop iteration and throttle the workers.
        try:
            try:
                outcome = self._receive.receive_nowait()
            except anyio.WouldBlock:
                outcome = await self._receive.receive()
        except anyio.EndOfStream:
            # Every request taken has its outcome: now the requests' iterable's error, if any.
            error = self._source_error()
            if error is not None:
                raise error from None
            raise StopAsyncIteration from None
        except anyio.ClosedResourceError:
            raise StopAsyncIteration from None
        # Handed out: the caller has this refund's outcome now.
        self._in_flight.pop(outcome.index, None)
        return outcome
