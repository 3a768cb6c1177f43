"""``RetryPolicy.deadline`` bounds the whole call: attempts, waits and the settle query.

On a no-sleep FakeClock a stalled attempt is abandoned exactly at the deadline and the settle
query gets no budget of its own; against a real server that stalls after the headers, a refund
ends within the deadline (plus at most one connect timeout), not after every attempt's read
timeout and a second retry budget for the query.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from paykit_async import PayJSClient, RefundOutcomeUnknown, RetryPolicy, Timeouts, TransportError
from paykit_async.pipeline.clock import FakeClock
from paykit_async.simulator import DEMO_PAYJS
from paykit_async.transport.wire import WireRequest, WireResponse

from ..servers import serve_asgi
from .fake_provider import FakeProvider, FakeRefundClient, FakeTransport

pytestmark = pytest.mark.anyio


class TimedTransport(FakeTransport):
    """The fake provider, where each request takes fake time (``stall`` = forever)."""

    def __init__(self, provider: FakeProvider, clock: FakeClock, **timing: Any) -> None:
        super().__init__(provider)
        self.clock = clock
        self.timing = timing  # path -> seconds, or "stall"
        self.sent: list[str] = []

    async def send(self, request: WireRequest) -> WireResponse:
        path = "/" + request.url.split("/", 3)[-1]
        self.sent.append(path)
        taken = self.timing.get(path.strip("/"), 0)
        if taken == "stall":
            await self.clock.sleep(10_000)
            raise AssertionError("a stalled request is abandoned at the deadline, never answered")
        await self.clock.sleep(float(taken))
        return await super().send(request)


def _client(transport: TimedTransport, clock: FakeClock, **policy: Any) -> FakeRefundClient:
    return FakeRefundClient(
        base_url="https://fake.test",
        transport=transport,
        clock=clock,
        policy=RetryPolicy(jitter=False, **policy),
    )


async def test_a_stalled_attempt_is_abandoned_at_the_deadline(anyio_backend: str) -> None:
    clock = FakeClock()
    provider = FakeProvider(orders={"O1": 1000})
    transport = TimedTransport(provider, clock, refund="stall")
    client = _client(transport, clock, attempts=4, deadline=4)
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await client.refund(order_id="O1", amount=100)
    assert clock.now() == 4.0
    assert transport.sent == ["/refund"]  # no time was left for a retry or a query
    cause = caught.value.__cause__
    assert isinstance(cause, TransportError)
    assert cause.sent is None
    assert "deadline" in cause.message


async def test_the_settle_query_does_not_get_a_budget_of_its_own(anyio_backend: str) -> None:
    clock = FakeClock()
    # Every refund attempt executes and then loses its reply; the query stalls.
    provider = FakeProvider(orders={"O1": 1000}, fault_rate=1.0, faults=("drop",))
    transport = TimedTransport(provider, clock, refund=1.0, query="stall")
    client = _client(transport, clock, attempts=2, initial_delay=0.5, deadline=10)
    with pytest.raises(RefundOutcomeUnknown):
        await client.refund(order_id="O1", amount=100)
    # 1 s attempt, 0.5 s wait, 1 s attempt, then the query — cut off at the call's deadline.
    assert transport.sent == ["/refund", "/refund", "/query"]
    assert clock.now() == 10.0


async def test_the_settle_query_retries_only_within_the_deadline(anyio_backend: str) -> None:
    clock = FakeClock()
    provider = FakeProvider(orders={"O1": 1000}, fault_rate=1.0, faults=("drop",))
    transport = TimedTransport(provider, clock, refund=2.0, query=2.0)
    client = _client(transport, clock, attempts=3, initial_delay=1.0, max_delay=1.0, deadline=12)
    with pytest.raises(RefundOutcomeUnknown):
        await client.refund(order_id="O1", amount=100)
    assert clock.now() <= 12.0
    queries = transport.sent.count("/query")
    # Three refund attempts (2 s each, 1 s apart) leave 4 s: one 2 s query and its retry at most,
    # where a fresh budget would have allowed three more (and the old code 60 s of them).
    assert transport.sent.count("/refund") == 3
    assert 1 <= queries <= 2


async def test_an_unknown_outcome_is_still_settled_when_there_is_time(anyio_backend: str) -> None:
    clock = FakeClock()
    provider = FakeProvider(orders={"O1": 1000}, fault_rate=1.0, faults=("drop",))
    transport = TimedTransport(provider, clock, refund=1.0, query=0.5)
    client = _client(transport, clock, attempts=2, initial_delay=0.5, deadline=10)

    class FixedFaults:
        """Refund replies are lost; the query's reply is not."""

        def __init__(self) -> None:
            self.inner = provider.handle

        def __call__(self, path: str, body: bytes) -> Any:
            provider.fault_rate = 1.0 if path == "/refund" else 0.0
            return self.inner(path, body)

    provider.handle = FixedFaults()  # type: ignore[method-assign]
    outcome = await client.refund(order_id="O1", amount=100)
    assert outcome.settled_by_query
    assert clock.now() == pytest.approx(3.0)  # 1 + 0.5 + 1 + 0.5
    assert len(provider.ledger) == 1


# -------------------------------------------------------------------- a real stalling server


class StallAfterHeaders:
    """Answers 200 with the start of a body, then never finishes it (until released)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.requests.append(scope["path"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/json")]}
        )
        await send({"type": "http.response.body", "body": b'{"return_code": ', "more_body": True})
        while not self.release.is_set():  # noqa: ASYNC110 - a threading.Event, set by the test
            await asyncio.sleep(0.05)


async def test_a_refund_against_a_stalling_server_ends_within_the_deadline(anyio_backend: str) -> None:
    app = StallAfterHeaders()
    deadline = 1.0
    connect = 2.0
    with serve_asgi(app, tls=None) as root:
        try:
            async with PayJSClient(
                DEMO_PAYJS.mchid,
                DEMO_PAYJS.key,
                base_url=root,
                retry=RetryPolicy(deadline=deadline),  # 4 attempts by default
                timeouts=Timeouts(connect=connect, read=30, write=30, total=30),
            ) as client:
                began = time.monotonic()
                with pytest.raises(RefundOutcomeUnknown) as caught:
                    await client.refund(payjs_order_id="P" * 32)
                elapsed = time.monotonic() - began
                began = time.monotonic()
                with pytest.raises(TransportError, match="deadline"):
                    await client.check(payjs_order_id="P" * 32)
                query_elapsed = time.monotonic() - began
        finally:
            app.release.set()
    # Without the bound this took 4 read timeouts plus a query with its own retries (minutes).
    assert elapsed < deadline + connect, elapsed
    assert query_elapsed < deadline + connect, query_elapsed
    assert caught.value.refund_no == "P" * 32
    assert app.requests == ["/api/refund", "/api/check"]


async def test_a_deadline_passing_while_waiting_for_the_rate_limit_means_nothing_was_sent(
    anyio_backend: str,
) -> None:
    from paykit_async.batch import RateLimiter
    from paykit_async.pipeline.core import pacing

    clock = FakeClock()
    provider = FakeProvider(orders={"O1": 1000, "O2": 1000})
    transport = TimedTransport(provider, clock)
    client = _client(transport, clock, attempts=3, deadline=4)
    limiter = RateLimiter(0.1, clock=clock)  # one request every 10 s
    with pacing(limiter):
        await client.refund(order_id="O1", amount=100)
        with pytest.raises(TransportError) as caught:
            await client.refund(order_id="O2", amount=100)
    assert caught.value.sent is False  # a definite failure, not an unknown outcome
    assert "before this attempt was sent" in caught.value.message
    assert clock.now() == 4.0
    assert transport.sent == ["/refund"]
    assert [e.order_id for e in provider.ledger.values()] == ["O1"]


# -------------------------------------------------------------------- one timer per attempt


class BoundedTransport(FakeTransport):
    """Says every send ends within ``attempt_bound`` seconds (as the real transports do with
    their total timeout); with ``stall`` it breaks that promise and hangs."""

    def __init__(self, provider: FakeProvider, *, bound: float | None, stall: bool = False) -> None:
        super().__init__(provider)
        self.attempt_bound = bound
        self.stall = stall

    async def send(self, request: WireRequest) -> WireResponse:
        if self.stall:
            await asyncio.sleep(3600)
        return await super().send(request)


async def _refunds(client: FakeRefundClient, count: int = 3) -> None:
    for i in range(count):
        await client.refund(order_id="O1", amount=1, refund_no=f"R{i}")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_attempt_the_transport_bounds_well_before_the_deadline_has_no_scope_of_its_own(
    anyio_backend: str, scopes: list[float]
) -> None:
    # The transport's total timeout (30 s) ends long before the call's deadline (60 s): a scope
    # at the deadline could never fire first, so the attempt runs under the transport's timer only.
    transport = BoundedTransport(FakeProvider(orders={"O1": 1000}), bound=30.0)
    client = FakeRefundClient(
        base_url="https://fake.test", transport=transport, policy=RetryPolicy(deadline=60)
    )
    await _refunds(client)
    assert scopes == []


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "case",
    ["deadline too near", "no total timeout", "user middleware", "pacer", "rate limit", "fake clock"],
)
async def test_the_deadline_scope_stays_wherever_the_transport_alone_cannot_bound_the_attempt(
    anyio_backend: str, scopes: list[float], case: str
) -> None:
    import contextlib

    from paykit_async.batch import RateLimiter
    from paykit_async.pipeline.core import pacing

    async def passing(operation: Any, call_next: Any) -> Any:
        return await call_next(operation)

    from paykit_async.pipeline.ratelimit import RateLimitMiddleware

    transport = BoundedTransport(
        FakeProvider(orders={"O1": 1000}), bound=None if case == "no total timeout" else 30.0
    )
    # The rate limiter waits for a turn (a lock, sleeps, Redis) with no timer of its own: only
    # the retry layer's scope bounds that wait, so it must stay.
    layers = {"user middleware": (passing,), "rate limit": (RateLimitMiddleware(10**6, key="fake/1"),)}
    client = FakeRefundClient(
        base_url="https://fake.test",
        transport=transport,
        policy=RetryPolicy(deadline=30.5 if case == "deadline too near" else 60),
        middleware=layers.get(case, ()),
        clock=FakeClock() if case == "fake clock" else None,
    )
    paced = pacing(RateLimiter(10**6)) if case == "pacer" else contextlib.nullcontext()
    with paced:
        await _refunds(client)
    assert len(scopes) == 3  # one per attempt, as before


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_transport_that_breaks_its_bound_near_the_deadline_is_still_cut_off(
    anyio_backend: str,
) -> None:
    # Bound + margin does not fit in what is left of the deadline: the scope is kept, and a
    # transport that hangs after all is abandoned at the deadline.
    transport = BoundedTransport(FakeProvider(orders={"O1": 1000}), bound=0.01, stall=True)
    client = FakeRefundClient(
        base_url="https://fake.test", transport=transport, policy=RetryPolicy(deadline=0.3)
    )
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await client.refund(order_id="O1", amount=1, refund_no="R1")
    assert isinstance(caught.value.__cause__, TransportError)
    assert "deadline" in caught.value.__cause__.message


def test_the_real_transports_state_their_bound() -> None:
    from paykit_async.transport import AiohttpTransport, HttpxTransport, TransportSettings

    for transport, slack in ((HttpxTransport(), 0.0), (AiohttpTransport(), 1.0)):
        assert transport.attempt_bound is None  # not configured yet
        transport.configure(TransportSettings(timeouts=Timeouts(total=12.0)))
        assert transport.attempt_bound == 12.0 + slack  # aiohttp rounds timers >= 5 s up to 1 s
    for transport in (HttpxTransport(), AiohttpTransport()):
        transport.configure(TransportSettings(timeouts=Timeouts(total=None)))
        assert transport.attempt_bound is None
