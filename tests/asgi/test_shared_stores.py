"""One notification delivered concurrently to two endpoints that share a durable store (as two
processes behind a load balancer would): the handler runs once. Real redis-server and SQLite."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from paykit_async import RedisStore, SQLiteStore
from paykit_async.asgi import notification_app

from .helpers import PROVIDERS, Calls, Provider, deliver, post, simulator

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["wechatpay-v3", "payjs", "eftpay"])
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    setup = PROVIDERS[request.param](simulator())
    async with setup.client:
        yield setup


def _stores(kind: str, tmp_path: Path, redis_url: str | None) -> tuple[Any, Any]:
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "notifications.db"), SQLiteStore(tmp_path / "notifications.db")
    assert redis_url is not None
    prefix = f"test:asgi:{time.monotonic_ns()}:"
    return RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_two_endpoints_sharing_a_store_run_the_handler_once(
    provider: Provider, kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    store_a, store_b = _stores(kind, tmp_path, redis_url)
    calls = Calls()
    calls.gate = anyio.Event()
    first = notification_app(provider.client, calls, idempotency_store=store_a, wait=0.05)
    second = notification_app(provider.client, calls, idempotency_store=store_b, wait=0.05)
    await provider.notify("S1")

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    (note,) = await deliver(provider.sim, refuse)
    answers: dict[str, httpx.Response] = {}

    async def via(name: str, app: Any) -> None:
        answers[name] = await post(app, note.body, note.headers)

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(via, "first", first)
            await calls.entered.wait()
            await via("second", second)  # the other process: busy, so the provider retries later
            calls.gate.set()
        assert provider.success(answers["first"])
        assert not provider.success(answers["second"])
        later = await post(second, note.body, note.headers)  # the redelivery, at the other process
        assert provider.success(later)
        assert len(calls.notifications) == 1
    finally:
        await store_a.aclose()
        await store_b.aclose()
