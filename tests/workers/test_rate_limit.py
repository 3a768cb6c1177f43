"""``rate_limit=``: the merchant's requests per second, against a simulator that enforces them.

The simulator counts arrivals in a sliding one-second window and answers each provider's
over-limit reply beyond its limit, so "zero over-limit replies" is judged by the party that
pushes back, not by the limiter itself. Memory windows run on asyncio and trio; the Redis window
(shared by several clients, as by several processes) too — on trio through limits' synchronous
Redis storage in a worker thread.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from paykit_async import (
    HTTPStatusError,
    PayJSClient,
    ProviderError,
    RetryPolicy,
    TransportError,
    ValidationError,
    WeChatPayClient,
)
from paykit_async.pipeline.ratelimit import RateLimit, RateLimitMiddleware, is_over_limit
from paykit_async.simulator import DEMO_PAYJS, Simulator, SimulatorConfig

from ..cli.helpers import demo_wechat_client

pytestmark = pytest.mark.anyio


def _wechat(sim: Simulator, rate_limit: Any, **options: Any) -> WeChatPayClient:
    return demo_wechat_client(sim, rate_limit=rate_limit, **options)


def _busiest_second(sim: Simulator, provider: str = "wechatpay") -> int:
    """The most requests that arrived in any one-second window (sliding over every arrival)."""
    times = sorted(r.arrived for r in sim.requests() if r.provider == provider and not r.over_limit)
    busiest, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


async def _refund_all(client: WeChatPayClient, count: int, prefix: str = "T") -> None:
    async with anyio.create_task_group() as group:
        for n in range(count):
            group.start_soon(
                lambda n=n: client.refund(
                    out_trade_no=f"{prefix}{n}", total_fee=100, refund_fee=10, out_refund_no=f"{prefix}R{n}"
                )
            )


async def test_a_memory_window_never_trips_the_provider(anyio_backend: str) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=20))
    async with _wechat(sim, 20) as client:
        began = time.monotonic()
        await _refund_all(client, 32)
        elapsed = time.monotonic() - began
    assert sim.over_limit_replies() == 0
    assert _busiest_second(sim) <= 20
    # 32 requests at 20 per (1 s + margin): the last 12 wait for the window to move on.
    assert elapsed >= 1.0
    assert len(sim.snapshot().refunds) == 32


async def test_a_redis_window_is_shared_by_every_client(
    anyio_backend: str, redis_url: str, redis_prefix: str
) -> None:
    """Three clients — three processes, as far as the window knows — share one limit."""
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=15))
    # The shared key is provider + merchant + limit: a prefix-free key of its own per test run.
    merchant = f"{redis_prefix}{anyio_backend}"
    limit = RateLimit(per_second=15, storage=redis_url)
    clients = [_wechat(sim, limit) for _ in range(3)]
    for client in clients:
        assert client.rate_limiter is not None
        client.rate_limiter._key = f"wechatpay/{merchant}"
    async with anyio.create_task_group() as group:
        for number, client in enumerate(clients):
            group.start_soon(_refund_all, client, 8, f"C{number}-")
    for client in clients:
        await client.aclose()
    assert sim.over_limit_replies() == 0
    assert _busiest_second(sim) <= 15
    assert len(sim.snapshot().refunds) == 24


async def test_over_limit_replies_slow_the_sender_and_are_retried_with_the_same_number(
    anyio_backend: str,
) -> None:
    """The provider allows fewer requests than configured: it pushes back, the client halves its
    rate, and every refund goes through once, under the number it was first sent with."""
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=6))
    retry = RetryPolicy(attempts=20, initial_delay=0.05, max_delay=0.2, max_retry_after=0.3, deadline=30)
    async with _wechat(sim, 20, retry=retry) as client:
        await _refund_all(client, 10)
        limiter = client.rate_limiter
        assert limiter is not None
        assert limiter.over_limit_replies == sim.over_limit_replies() > 0
        assert limiter.effective_rate < 20
    ledger = sim.snapshot()
    assert len(ledger.refunds) == 10
    assert ledger.duplicate_payouts == 0
    sent = [r for r in sim.requests() if r.endpoint == "refund"]
    refused = {r.fields["out_refund_no"] for r in sent if r.over_limit}
    assert refused
    for number in refused:  # each refused refund was re-sent, with the same number, and made once
        assert len([r for r in sent if r.fields.get("out_refund_no") == number]) >= 2
        assert ledger.executions[f"wechatpay:{number}"] == 1


async def test_the_rate_recovers_additively() -> None:
    limiter = RateLimitMiddleware(100, key="wechatpay/1")
    limiter._slow_down()
    limiter._slow_down()  # the same burst: one decrease per window
    assert limiter.effective_rate == 50
    assert limiter.over_limit_replies == 2
    for _ in range(50):  # about one second of successes at the lowered rate
        limiter._speed_up()
    assert 58 < limiter.effective_rate < 60  # + per_second / 10 per second of successes
    for _ in range(10_000):
        limiter._speed_up()
    assert limiter.effective_rate == 100


async def test_waiting_for_a_turn_ends_at_the_deadline_and_nothing_is_sent(anyio_backend: str) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    async with _wechat(sim, 1, retry=RetryPolicy(deadline=0.3)) as client:
        await client.refund(out_trade_no="D0", total_fee=100, refund_fee=10, out_refund_no="DR0")
        began = time.monotonic()
        with pytest.raises(TransportError) as cut:
            await client.refund(out_trade_no="D1", total_fee=100, refund_fee=10, out_refund_no="DR1")
        assert time.monotonic() - began < 0.9  # the window would have freed the slot after 1 s
    assert cut.value.sent is False
    assert [r.fields["out_refund_no"] for r in sim.requests()] == ["DR0"]


async def test_every_attempt_waits_for_its_turn_payjs(anyio_backend: str) -> None:
    """A 429 (PAYJS) is an over-limit reply too; the retry goes through the window again."""
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=3))
    retry = RetryPolicy(attempts=10, initial_delay=0.01, max_delay=0.05, max_retry_after=0.05, deadline=20)
    async with PayJSClient(
        DEMO_PAYJS.mchid,
        DEMO_PAYJS.key,
        base_url=sim.base_url("payjs"),
        transport=sim.transport(),
        rate_limit=RateLimit(per_second=6, margin=0.05),
        retry=retry,
    ) as client:
        async with anyio.create_task_group() as group:
            for n in range(6):
                group.start_soon(lambda n=n: client.refund(payjs_order_id=f"P{n}"))
        assert client.rate_limiter is not None
        assert client.rate_limiter.effective_rate < 6
    assert sim.over_limit_replies("payjs") >= 1
    assert len(sim.snapshot().refunds) == 6


def test_what_counts_as_an_over_limit_reply() -> None:
    assert is_over_limit(HTTPStatusError("too many", status_code=429))
    assert not is_over_limit(HTTPStatusError("unavailable", status_code=503))
    assert is_over_limit(ProviderError("FREQUENCY_LIMITED", "频率限制", retryable=True))
    assert not is_over_limit(ProviderError("SYSTEMERROR", "系统超时", retryable=True))
    assert not is_over_limit(TransportError("reset"))


def test_rate_limit_values_are_checked_before_any_io() -> None:
    for bad in (0, -1, 1.5, True, "150"):
        with pytest.raises(ValidationError):
            RateLimit.of(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RateLimit(per_second=10, storage="http://redis:6379")
    with pytest.raises(ValidationError):
        RateLimit(per_second=10, margin=-0.1)
    assert RateLimit.of(150.0) == RateLimit(per_second=150)
    assert not RateLimit(per_second=1, storage="memory://").shared
    assert RateLimit(per_second=1, storage="redis://127.0.0.1:6379/0").shared
    sim = Simulator()
    with pytest.raises(ValidationError):
        _wechat(sim, 0)
    assert "secret" not in repr(RateLimit(per_second=1, storage="redis://:secret@host/0"))


def test_a_client_used_by_two_event_loops_in_turn_gets_a_window_per_loop(
    redis_url: str, redis_prefix: str
) -> None:
    """An asyncio Redis connection belongs to its loop: a second ``anyio.run`` gets its own."""
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=10))
    client = _wechat(sim, RateLimit(per_second=10, storage=redis_url))
    assert client.rate_limiter is not None
    client.rate_limiter._key = f"wechatpay/{redis_prefix}loops"

    async def one(n: int) -> None:
        await client.refund(out_trade_no=f"E{n}", total_fee=100, refund_fee=10, out_refund_no=f"ER{n}")

    anyio.run(one, 1)
    anyio.run(one, 2)
    anyio.run(client.aclose)
    assert len(sim.snapshot().refunds) == 2
    assert sim.over_limit_replies() == 0


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_shared_window_whose_redis_is_down_fails_before_sending(anyio_backend: str) -> None:
    """Redis down is a TransportError with sent=False — not redis-py's own exception — and the
    provider saw nothing; the URL's password is in no message."""
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    limit = RateLimit(per_second=5, storage=f"redis://:Rp4ssw0rd@127.0.0.1:{_closed_port()}/0")
    retry = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.01)
    async with _wechat(sim, limit, retry=retry) as client:
        with pytest.raises(TransportError) as caught:
            await client.refund(out_trade_no="T1", total_fee=100, refund_fee=10, out_refund_no="TR1")
    error = caught.value
    assert error.sent is False
    assert not error.outcome_unknown
    assert "rate limit's storage redis://127.0.0.1:" in error.message
    assert "Rp4ssw0rd" not in f"{error!s} {error!r} {error.args!r} {error.__cause__!r} {error.__context__!r}"
    assert not sim.requests()


async def test_a_shared_window_whose_redis_never_answers_ends_at_the_deadline(anyio_backend: str) -> None:
    """A Redis that accepts connections but never answers (a black hole, a hung server): the
    wait for a turn ends at the call's deadline as a TransportError(sent=False), and nothing is
    sent. On trio limits' synchronous Redis storage runs in a worker thread: it used to have no
    socket timeout and could not be cancelled, so the call hung for ever, deadline or not."""
    import socket
    import threading

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # connections complete in the kernel's backlog; nothing is ever read or answered
    # Should the call not end at its deadline, end it anyway (resetting the connections), so that the
    # test fails instead of hanging; the message then names the storage failure, not the deadline.
    watchdog = threading.Timer(20.0, hole.close)
    watchdog.start()
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    limit = RateLimit(per_second=5, storage=f"redis://127.0.0.1:{hole.getsockname()[1]}/0")
    try:
        async with _wechat(sim, limit, retry=RetryPolicy(attempts=1, deadline=0.5)) as client:
            with pytest.raises(TransportError) as caught:
                await client.refund(out_trade_no="T1", total_fee=100, refund_fee=10, out_refund_no="TR1")
            # An outer cancel scope is honoured too, not held up by the worker thread.
            with anyio.CancelScope() as outer:
                outer.deadline = anyio.current_time() + 0.2
                await client.refund(out_trade_no="T2", total_fee=100, refund_fee=10, out_refund_no="TR2")
            assert outer.cancelled_caught
    finally:
        watchdog.cancel()
        hole.close()
    assert caught.value.sent is False
    assert "deadline" in caught.value.message
    assert not sim.requests()
