"""One rate limit per merchant, shared by every process: the ``rate_limit=`` client option.

A provider counts the requests of each merchant as they *arrive* (WeChat Pay: about 150 refund
requests/s, then ``FREQUENCY_LIMITED``), so the limit must hold for all the processes refunding for
one merchant together. :class:`RateLimitMiddleware` keeps it with the `limits
<https://limits.readthedocs.io>`_ library's moving window — in Redis when ``storage`` names one
(every process and machine shares the window), else in this process's memory:

- **The hard cap**: each request takes an entry of limits' moving window of ``per_second``
  requests per 1 second (atomic in Redis), so no 1-second window of requests anywhere holds
  more than the limit.
- **The margin**: a request is sent only when the window of ``1 + margin`` seconds before it
  holds fewer than ``per_second`` requests. A request reaches the provider a few milliseconds
  after the limiter lets it go, and that delay varies (the network, a busy machine): two requests
  let go exactly one second apart may arrive 0.99 s apart. The margin (30 ms by default) absorbs
  that variation; it costs ``margin / (1 + margin)`` of the throughput (3 %). Across processes
  the check and the take happen under a short lock (a limits entry of its own, cleared after
  use), so two processes cannot both take the last place of the window: four Redis round trips
  per request (lock, check, take, unlock).
- **Smoothing**: one process's requests are at least ``(1 + margin) / (2 * per_second)`` seconds
  apart, so a window is not filled in one burst — a burst queues at the provider, and queueing is
  what makes arrival delays vary.
- **Over-limit replies** (WeChat ``FREQUENCY_LIMITED``, HTTP 429 — :func:`is_over_limit`) mean
  the provider's limit is lower than configured, or shared with others: the limiter lowers its
  own effective rate multiplicatively (halved, at most once per window) and raises it back
  additively (``per_second / 10`` per second of successful requests) towards ``per_second``. The
  over-limit error itself goes on to the retry layer, which re-sends the same request — the same
  refund number — after the provider's hint.

Waiting never fails: a request waits for its turn, bounded only by the caller's deadline (the
retry policy's, or any cancel scope around the call). A shared storage that fails (Redis down) is a
:class:`~paykit_async.TransportError` with ``sent=False``: the request was not sent. Timestamps are
limits' (``time.time``): machines sharing a Redis window need synchronised clocks (NTP), and their
skew adds to the delays the margin must absorb.

Event loops: the memory window is limits' synchronous storage, called inline (it never awaits or
blocks: a list under a lock), so it works on asyncio and trio alike — limits' own asyncio memory
storage needs an asyncio loop. The Redis window uses ``limits.aio`` (redis-py's asyncio client) on
asyncio, and limits' synchronous Redis storage in a worker thread on trio.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

from ..errors import HTTPStatusError, PaykitError, ProviderError, TransportError, ValidationError
from ..redaction import check_redis_url, url_for_message
from .core import Handler, Operation, Outcome

if TYPE_CHECKING:
    from limits import RateLimitItem

__all__ = ["OVER_LIMIT_CODES", "RateLimit", "RateLimitMiddleware", "is_over_limit"]

#: Provider error codes that mean "too many requests" (WeChat Pay v2 and v3).
OVER_LIMIT_CODES = frozenset({"FREQUENCY_LIMITED"})

_WINDOW = 1  # seconds: the providers' limits are per second
#: Seconds a shared window's Redis may take to connect or to answer one command. Without it a
#: Redis that accepts connections but never answers would hold a request forever — on trio, in a
#: worker thread that no deadline or cancel scope can end.
_STORAGE_TIMEOUT = 5.0
_MISSING_LIMITS = 'needs the limits library: pip install "paykit_async[ratelimit]"'


def is_over_limit(error: BaseException) -> bool:
    """Whether ``error`` is a provider's over-limit reply: HTTP 429, or an over-limit code
    (:data:`OVER_LIMIT_CODES`) such as WeChat Pay's ``FREQUENCY_LIMITED``."""
    if isinstance(error, HTTPStatusError):
        return error.status_code == 429
    if isinstance(error, ProviderError):
        return error.code in OVER_LIMIT_CODES or getattr(error, "status_code", None) == 429
    return False


def _per_second(_instance: object, _attribute: object, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"must be a whole number of requests per second >= 1, got {value!r}")


def _margin(_instance: object, _attribute: object, value: float) -> None:
    if not (isinstance(value, int | float) and 0 <= value <= 1):
        raise ValidationError(f"must be between 0 and 1 second, got {value!r}", field="margin")


def _storage(_instance: object, _attribute: object, value: str | None) -> None:
    if value is None or (isinstance(value, str) and value.startswith("memory://")):
        return
    if not isinstance(value, str) or not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValidationError(
            "must be memory:// or a redis://, rediss:// or unix:// URL", field="rate_limit.storage"
        )
    check_redis_url(value, "rate_limit.storage")  # a password that parsers would split and quote


@attrs.frozen(kw_only=True)
class RateLimit:
    """At most ``per_second`` requests per second for one merchant.

    ``storage`` is where the window lives: ``None`` (or ``"memory://"``) for this client only, a
    ``redis://`` / ``rediss://`` / ``unix://`` URL to share it with every process and machine
    using the same Redis and the same ``per_second`` (both are part of the shared key, with the
    provider and merchant). ``margin`` is the seconds added to the 1-second window to absorb the
    varying delay between the limiter and the provider (see the module documentation).
    """

    per_second: int = attrs.field(validator=_per_second)
    storage: str | None = attrs.field(default=None, validator=_storage, repr=False)
    margin: float = attrs.field(default=0.03, validator=_margin)

    @classmethod
    def of(cls, value: RateLimit | int | float) -> RateLimit:
        """``value`` as a RateLimit (a bare number is a limit for this client only)."""
        if isinstance(value, RateLimit):
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            return cls(per_second=cast(int, value))  # the validator refuses what is not whole
        except ValidationError as error:
            raise ValidationError(error.message, field="rate_limit") from None

    @property
    def shared(self) -> bool:
        """Whether the window is in Redis (shared across processes)."""
        return self.storage is not None and not self.storage.startswith("memory://")


class RateLimitMiddleware:
    """Sends each request (every attempt) only when the merchant's rate limit allows it.

    ``key`` names the merchant (``"wechatpay/1900000109"``); a callable is asked on first use
    (a client knows its merchant only once constructed). ``effective_rate`` is the current
    rate after over-limit replies (see the module documentation); ``over_limit_replies`` counts
    them.
    """

    def __init__(self, limit: RateLimit | int, *, key: str | Callable[[], str]) -> None:
        self.limit = RateLimit.of(limit)
        if importlib.util.find_spec("limits") is None:
            raise ValidationError(_MISSING_LIMITS, field="rate_limit")
        self._key_source = key
        self._key: str | None = None
        self.window = _WINDOW + self.limit.margin
        self.spacing = self.window / (2 * self.limit.per_second)
        self.effective_rate = float(self.limit.per_second)
        self.over_limit_replies = 0
        self._increase = max(1.0, self.limit.per_second / 10)
        self._last_decrease = -math.inf
        self._next_turn = 0.0
        self._backends: dict[object, _Backend] = {}
        self._turns: dict[object, anyio.Lock] = {}

    def __repr__(self) -> str:
        where = "redis" if self.limit.shared else "memory"
        return (
            f"<RateLimitMiddleware {self.limit.per_second}/s ({where}) effective={self.effective_rate:.1f}>"
        )

    @property
    def key(self) -> str:
        if self._key is None:
            source = self._key_source
            self._key = source if isinstance(source, str) else source()
        return self._key

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        await self.acquire()
        try:
            outcome = await call_next(operation)
        except PaykitError as error:
            if is_over_limit(error):
                self._slow_down()
            raise
        self._speed_up()
        return outcome

    async def acquire(self) -> None:
        """Wait until one more request fits the window (cancel the caller to stop waiting)."""
        # Per event loop: an asyncio Redis connection and a lock belong to the loop that made them.
        loop = anyio.lowlevel.current_token()
        backend = self._backends.get(loop)
        if backend is None:
            backend = self._backends[loop] = _backend_for(self.limit, self.key, _event_loop())
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = anyio.Lock()
        # One request of this process at a time competes for the window; the others queue here.
        async with turn:
            while True:
                pause = self._next_turn - time.time()
                if pause > 0:
                    await anyio.sleep(pause)  # smoothing: this process's requests stay spaced
                began = time.time()
                wait = await self._take_or_fail(backend)
                if wait is None:
                    self._next_turn = began + self.spacing
                    return
                await anyio.sleep(wait)

    async def _take_or_fail(self, backend: _Backend) -> float | None:
        """:meth:`_take`; a storage that fails (Redis down, refused, timed out) is a
        :class:`TransportError` with ``sent=False`` — nothing was sent, so the retry layer may try
        again under the same refund number — instead of the storage's own exception."""
        try:
            return await self._take(backend)
        except PaykitError:
            raise
        except Exception as error:  # the storage's errors (redis-py, limits, OSError): not ours to name
            failure = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        # redis-py's messages name the host and port, never the password of the URL; raised outside
        # the except block so that no storage object rides along in the chain.
        storage = url_for_message(self.limit.storage or "memory://")
        raise TransportError(
            f"the rate limit's storage {storage} failed ({failure}); the request was not sent",
            sent=False,
        )

    async def _take(self, backend: _Backend) -> float | None:
        """Take a place in the window: None when taken, else the seconds until it may have one.

        The request is sent right after: the place's timestamp is its send time, give or take
        the round trip of the unlock.
        """
        if not await backend.lock():
            # Another process is taking a place right now: let it finish.
            return random.uniform(0.0005, 0.002)
        try:
            allowed = max(1, math.floor(self.effective_rate))
            oldest, count = await backend.window(allowed, self.window)
            if count < allowed and await backend.hit():
                return None
        finally:
            # Shielded (the lock must not outlive a cancelled take) but bounded: a Redis that
            # stopped answering must not hold the caller past its deadline. The lock expires anyway.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_STORAGE_TIMEOUT):
                await backend.unlock()
        # Full: wait for the oldest request in the window to leave it.
        return max(oldest + self.window - time.time() if count >= allowed else 0.0, 0.0005)

    def _slow_down(self) -> None:
        self.over_limit_replies += 1
        now = time.monotonic()
        if now - self._last_decrease < self.window:
            return  # one decrease per window: the replies of one burst are one signal
        self._last_decrease = now
        self.effective_rate = max(1.0, self.effective_rate / 2)

    def _speed_up(self) -> None:
        target = float(self.limit.per_second)
        if self.effective_rate < target:
            self.effective_rate = min(target, self.effective_rate + self._increase / self.effective_rate)


# --------------------------------------------------------------------------- storage backends


class _Backend(Protocol):
    async def window(self, limit: int, seconds: float) -> tuple[float, int]:
        """(oldest, count) of the newest ``limit`` entries in the last ``seconds``."""

    async def hit(self) -> bool:
        """Take one entry of the hard 1-second window; False when it is full."""

    async def lock(self) -> bool:
        """Take the short cross-process lock around check-and-take; False when it is held."""

    async def unlock(self) -> None: ...


def _event_loop() -> str:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return "other"
    return "asyncio"


def _backend_for(limit: RateLimit, key: str, loop: str) -> _Backend:
    import limits
    import limits.errors

    item = limits.RateLimitItemPerSecond(limit.per_second, _WINDOW, namespace="paykit-rate")
    if not limit.shared:
        return _SyncBackend(limits.storage.MemoryStorage(), item, key, threaded=False)
    assert limit.storage is not None
    try:
        if loop == "asyncio":
            import limits.aio.storage

            storage = limits.aio.storage.RedisStorage(
                f"async+{limit.storage}",
                implementation="redispy",
                socket_timeout=_STORAGE_TIMEOUT,
                socket_connect_timeout=_STORAGE_TIMEOUT,
            )
            return _AsyncBackend(storage, item, key)
        sync_storage = limits.storage.RedisStorage(
            limit.storage, socket_timeout=_STORAGE_TIMEOUT, socket_connect_timeout=_STORAGE_TIMEOUT
        )
        return _SyncBackend(sync_storage, item, key, threaded=True)
    except (ValueError, TypeError, limits.errors.ConfigurationError) as error:
        unusable = type(error).__name__
    # The URL parsers' (and limits') messages quote the URL or its parts (a password among
    # them): raised outside the except block, so their error stays out of the chain.
    raise ValidationError(
        f"cannot use {url_for_message(limit.storage)} ({unusable})", field="rate_limit.storage"
    )


class _AsyncBackend:
    """limits.aio: the Redis window on asyncio."""

    def __init__(self, storage: Any, item: RateLimitItem, key: str) -> None:
        from limits.aio.strategies import MovingWindowRateLimiter

        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._item = item
        self._key = key
        self._list = item.key_for(key)
        self._lock = f"{self._list}/lock"

    async def window(self, limit: int, seconds: float) -> tuple[float, int]:
        start, count = await self._storage.get_moving_window(self._list, limit, seconds)
        return float(start), int(count)

    async def hit(self) -> bool:
        return bool(await self._strategy.hit(self._item, self._key))

    async def lock(self) -> bool:
        return bool(await self._storage.acquire_entry(self._lock, 1, _WINDOW))

    async def unlock(self) -> None:
        await self._storage.clear(self._lock)


class _SyncBackend:
    """limits' synchronous storages: memory inline (never blocks), Redis in a worker thread."""

    def __init__(self, storage: Any, item: RateLimitItem, key: str, *, threaded: bool) -> None:
        from limits.strategies import MovingWindowRateLimiter

        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._item = item
        self._key = key
        self._list = item.key_for(key)
        self._lock = f"{self._list}/lock"
        self._threaded = threaded

    async def _run(self, function: Callable[[], Any]) -> Any:
        if self._threaded:
            # A cancelled caller (its deadline, a cancel scope) stops waiting at once; the thread
            # ends by itself within the storage's socket timeout. What it may still take — a place
            # in the window, the short lock — only makes the limiter more careful for a moment.
            return await anyio.to_thread.run_sync(function, abandon_on_cancel=True)
        await anyio.lowlevel.checkpoint()
        return function()

    async def window(self, limit: int, seconds: float) -> tuple[float, int]:
        start, count = await self._run(lambda: self._storage.get_moving_window(self._list, limit, seconds))
        return float(start), int(count)

    async def hit(self) -> bool:
        return bool(await self._run(lambda: self._strategy.hit(self._item, self._key)))

    async def lock(self) -> bool:
        if not self._threaded:
            return True  # one process: the per-loop turn lock already serialises
        return bool(await self._run(lambda: self._storage.acquire_entry(self._lock, 1, _WINDOW)))

    async def unlock(self) -> None:
        if self._threaded:
            await self._run(lambda: self._storage.clear(self._lock))
