"""The ASGI app: routes each provider's paths, applies faults, logs requests, runs the lifespan.

A plain ASGI callable (no web framework): a handful of fixed routes (and WeChat Pay v3's few with
path parameters, matched by the handler) do not need one, and it keeps the simulator free of
dependencies beyond the core's.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import attrs

from .faults import Fault, FaultKind
from .http import HttpReply, Receive, Scope, Send, read_request, send_reply, send_truncated
from .state import Handled, ProviderHandler, RequestRecord, SimulatorState

__all__ = ["SimulatorApp"]

BackgroundRunner = Callable[[], Coroutine[Any, Any, None]]


class SimulatorApp:
    """The ASGI application of one simulator (``Simulator.app``).

    On a lifespan-enabled server (uvicorn's default) it runs ``background`` — the notification
    sender — in a task group from startup to shutdown.
    """

    def __init__(self, state: SimulatorState, background: BackgroundRunner | None = None) -> None:
        self._state = state
        self._background = background
        self._routes: dict[str, tuple[ProviderHandler, str]] = {}
        for handler in state.handlers.values():
            for path, endpoint in handler.routes.items():
                self._routes[handler.prefix + path] = (handler, endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:
            message = await receive()
            if message["type"] != "lifespan.startup":
                return
            if self._background is not None:
                group.start_soon(self._background)
            await send({"type": "lifespan.startup.complete"})
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            group.cancel_scope.cancel()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) or self._match(scope["path"])
        if route is None:
            await read_request(scope, receive)
            await send_reply(send, HttpReply(status=404, body=b"not a simulator endpoint"))
            return
        handler, endpoint = route
        state = self._state
        # The merchant's rate limit counts arrivals, so it is checked before anything else.
        arrived = state.now()
        over_limit = not state.rate_limits.admit(handler.name, arrived)
        fault = state.faults.decide(handler.name, endpoint)
        if over_limit:
            fault = attrs.evolve(fault, kind=FaultKind.RATE_LIMITED, retry_after=1)
        request = await read_request(scope, receive)
        if fault.latency:
            await anyio.sleep(fault.latency)
        handled = await self._before_work(handler, fault)
        if handled is None and request.oversized:
            handled = Handled(
                reply=HttpReply(status=413, body=b"request body too large"), outcome="TOO_LARGE"
            )
        if handled is None:
            handled = await handler.handle(endpoint, request, fault)
        reply = handled.reply
        kind = fault.kind
        if kind is FaultKind.DROP_BEFORE or kind is FaultKind.DROP_AFTER:
            status = 0
        elif kind is FaultKind.ERROR_AFTER:
            status = 500
        else:
            status = reply.status
        # Logged before the reply leaves: a client that has its answer must find its request in
        # the log (logging after sending raced with tests reading the log right after a call).
        state.log(
            RequestRecord(
                provider=handler.name,
                endpoint=endpoint,
                path=scope["path"],
                fields=dict(handled.fields),
                status=status,
                outcome=handled.outcome,
                fault=None if kind is None or over_limit else kind.value,
                at=state.now(),
                over_limit=over_limit,
                arrived=arrived,
            )
        )
        if kind is FaultKind.DROP_BEFORE or kind is FaultKind.DROP_AFTER:
            await send_truncated(scope, send, reply)
        elif kind is FaultKind.ERROR_AFTER:
            await send_reply(send, handler.server_error_reply(500))
        elif kind is FaultKind.TRUNCATED:
            cut = HttpReply(
                status=reply.status,
                content_type=reply.content_type,
                body=reply.body[: len(reply.body) // 2],
                headers=reply.headers,
            )
            await send_reply(send, cut)
        else:
            await send_reply(send, reply)

    def _match(self, path: str) -> tuple[ProviderHandler, str] | None:
        """Routes with path parameters (WeChat Pay v3's ``…/refunds/{out_refund_no}``)."""
        for handler in self._state.handlers.values():
            if path.startswith(handler.prefix + "/"):
                endpoint = handler.match_route(path[len(handler.prefix) :])
                if endpoint is not None:
                    return handler, endpoint
        return None

    async def _before_work(self, handler: ProviderHandler, fault: Fault) -> Handled | None:
        """Faults that happen before the provider looks at the request."""
        kind = fault.kind
        if kind is FaultKind.DROP_BEFORE:
            return Handled(reply=HttpReply(body=b"{}" * 64), outcome="DROPPED")
        if kind is FaultKind.BAD_GATEWAY:
            body = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"
            return Handled(
                reply=HttpReply(status=502, content_type="text/html", body=body), outcome="HTTP_502"
            )
        if kind is FaultKind.SERVER_ERROR:
            status = 503 if fault.draw * 1000 % 2 < 1 else 500
            return Handled(reply=handler.server_error_reply(status), outcome=f"HTTP_{status}")
        return None
