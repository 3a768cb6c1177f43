"""The notification app inside FastAPI (``app.mount``, ``add_route``, an ``APIRouter``) and
Starlette, driven over httpx's ASGI transport on asyncio and trio; and the import boundary:
a user without the extras never imports starlette or opentelemetry."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from paykit_async.asgi import notification_app

from .helpers import PROVIDERS, Calls, Provider, deliver, simulator

pytestmark = pytest.mark.anyio


@pytest.fixture
async def payjs() -> AsyncIterator[Provider]:
    setup = PROVIDERS["payjs"](simulator())
    async with setup.client:
        yield setup


async def _notified(provider: Provider, shop: object, path: str) -> list[int]:
    """Queue a PAYJS notification to ``path`` on ``shop`` and deliver it; the HTTP statuses."""
    provider.sim.add_payjs_order("P" + path.replace("/", "x")[:30], 100, notify_url=f"http://shop.test{path}")
    return [d.status_code for d in await deliver(provider.sim, shop)]


async def test_fastapi_app_mount_with_the_trailing_slash(payjs: Provider) -> None:
    calls = Calls()
    app = FastAPI()
    app.mount("/notify/payjs", notification_app(payjs.client, calls))
    assert await _notified(payjs, app, "/notify/payjs/") == [200]
    assert len(calls.notifications) == 1


async def test_fastapi_app_mount_redirects_the_bare_path_so_register_the_slash(payjs: Provider) -> None:
    """Starlette answers ``/notify/payjs`` with a redirect to ``/notify/payjs/``, which providers do
    not follow: the documented reason to register the trailing slash (or use add_route)."""
    calls = Calls()
    app = FastAPI()
    app.mount("/notify/payjs", notification_app(payjs.client, calls))
    assert await _notified(payjs, app, "/notify/payjs") == [307]
    assert calls.notifications == []


async def test_fastapi_add_route_and_an_api_router(payjs: Provider) -> None:
    calls = Calls()
    endpoint = notification_app(payjs.client, calls)
    router = APIRouter()
    router.add_route("/payjs", endpoint, methods=["POST"])
    app = FastAPI()
    app.include_router(router, prefix="/notify")
    app.add_route("/payjs-notify", endpoint, methods=["POST"])
    assert await _notified(payjs, app, "/notify/payjs") == [200]
    assert await _notified(payjs, app, "/payjs-notify") == [200]
    assert len(calls.notifications) == 2
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        assert (await http.get("/notify/payjs")).status_code == 405


async def test_starlette_routes_and_mounts(payjs: Provider) -> None:
    calls = Calls()
    endpoint = notification_app(payjs.client, calls)
    app = Starlette(routes=[Route("/payjs", endpoint, methods=["POST"]), Mount("/mounted", app=endpoint)])
    assert await _notified(payjs, app, "/payjs") == [200]
    assert await _notified(payjs, app, "/mounted/") == [200]
    assert len(calls.notifications) == 2


async def test_the_app_on_its_own_answers_the_lifespan_protocol(payjs: Provider) -> None:
    endpoint = notification_app(payjs.client, Calls())
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, str]] = []

    async def receive() -> dict[str, str]:
        return incoming.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message)

    await endpoint({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


@pytest.mark.parametrize("mounted", [False, True])
async def test_a_websocket_upgrade_of_the_notify_url_is_closed_not_a_crash(
    payjs: Provider, mounted: bool
) -> None:
    # Anyone may ask to upgrade the notify_url to a WebSocket; served alone or under app.mount
    # (which routes every scope type), the endpoint raised RuntimeError: a traceback per request.
    calls = Calls()
    endpoint = notification_app(payjs.client, calls)
    app: Any = endpoint
    path = "/"
    if mounted:
        app = FastAPI()
        app.mount("/notify", endpoint)
        path = "/notify/"
    incoming = [{"type": "websocket.connect"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"]
    assert calls.notifications == []


def test_the_core_never_imports_starlette_or_opentelemetry() -> None:
    code = (
        "import sys, paykit_async, paykit_async.cli.app, paykit_async.simulator\n"
        "roots = ('starlette', 'fastapi', 'opentelemetry')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in roots)\n"
        "assert not bad, bad\n"
        "assert 'paykit_async.asgi' not in sys.modules and 'paykit_async.otel' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
