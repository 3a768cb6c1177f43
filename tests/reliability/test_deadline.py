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
