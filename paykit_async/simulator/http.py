"""The few ASGI pieces the simulator needs: read a request, send a reply, drop a connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import attrs

__all__ = [
    "IN_PROCESS_KEY",
    "ConnectionDropped",
    "HttpReply",
    "HttpRequest",
    "read_request",
    "send_reply",
    "send_truncated",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Set in the scope by the simulator's in-process transport: drops raise instead of half-replying.
IN_PROCESS_KEY = "paykit.simulator.in_process"
#: Set in the scope by :func:`~paykit_async.simulator.serve.serve`: whether a client cert was shown.
CLIENT_CERT_KEY = "paykit.simulator.client_cert"

MAX_BODY = 1 << 20


class ConnectionDropped(ConnectionResetError):
    """Raised in process where a real server would close the connection mid-reply.

    An ``OSError``, so that a plain ``httpx.ASGITransport(app=sim.app)`` under paykit's
    ``HttpxTransport`` still surfaces it as a network error (``TransportError``).
    """


@attrs.frozen(kw_only=True)
class HttpRequest:
    """One received request. Header names are lower-case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    scheme: str = "http"
    client_cert: bool | None = None
    """True/False when the server knows whether a TLS client certificate was presented, else None."""
    target: str = ""
    """The request target as sent: the raw (still percent-encoded) path and the query string."""
    oversized: bool = False
    """The body was longer than :data:`MAX_BODY`; ``body`` is then empty (the rest was discarded)."""


@attrs.frozen(kw_only=True)
class HttpReply:
    """One reply to send."""

    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    headers: Mapping[str, str] = attrs.field(factory=dict)


async def read_request(scope: Scope, receive: Receive) -> HttpRequest:
    """Read the whole body; one longer than :data:`MAX_BODY` is discarded and marked ``oversized``
    (never handed on as a prefix, which a provider would not process either)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    query = scope.get("query_string") or b""
    target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    state = scope.get("state") or {}
    cert = scope.get(CLIENT_CERT_KEY, state.get(CLIENT_CERT_KEY))
    return HttpRequest(
        method=scope["method"],
        path=scope["path"],
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
        body=b"" if size > MAX_BODY else b"".join(chunks),
        scheme=scope.get("scheme", "http"),
        client_cert=cert if isinstance(cert, bool) else None,
        target=target,
        oversized=size > MAX_BODY,
    )


def _headers(reply: HttpReply, length: int) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(length).encode("ascii")),
    ]
    headers.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items())
    return headers


async def send_reply(send: Send, reply: HttpReply) -> None:
    """Send ``reply`` in one piece."""
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": _headers(reply, len(reply.body))}
    )
    await send({"type": "http.response.body", "body": reply.body})


async def send_truncated(scope: Scope, send: Send, reply: HttpReply) -> None:
    """Start ``reply`` and stop half-way, as a connection that dies mid-reply.

    Over a socket the server closes the connection when the app returns with the body
    incomplete. In process there is no socket to close: :class:`ConnectionDropped` is raised.
    A server that runs lifespans puts ``state`` in the scope; ``httpx.ASGITransport`` does not.
    """
    if scope.get(IN_PROCESS_KEY):
        raise ConnectionDropped("the simulator dropped the connection")
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": _headers(reply, len(reply.body))}
    )
    await send({"type": "http.response.body", "body": reply.body[: len(reply.body) // 2], "more_body": True})
    if "state" not in scope:
        raise ConnectionDropped("the simulator dropped the connection")
