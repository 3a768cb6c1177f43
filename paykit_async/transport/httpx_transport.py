"""The default transport, on httpx: works on asyncio and trio."""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import httpx

from ..errors import TransportError, ValidationError
from .base import already_configured
from .decoding import ACCEPT_ENCODING, CappedBody
from .tls import build_ssl_context
from .tls_errors import tls_configuration_error
from .wire import TransportSettings, WireRequest, WireResponse

__all__ = ["HttpxTransport"]

# Failures where the request bytes certainly never reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


class HttpxTransport:
    """Sends requests with one ``httpx.AsyncClient`` and one SSL context, both built once.

    Redirects are never followed. ``httpx_transport`` replaces the network layer: an in-process
    one (``httpx.MockTransport`` in narrow unit tests, ``httpx.ASGITransport`` for an in-process
    app such as the simulator) has no network and no TLS. Any other inner transport makes its own
    TLS, so its server verification is the caller's responsibility — and the client's ``cert=``
    and ``ca_file=`` cannot reach it: given together they raise :class:`ValidationError` rather
    than being ignored. As a safety net an ``httpx.AsyncHTTPTransport`` built with
    ``verify=False`` is refused too.
    """

    def __init__(self, *, httpx_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._inner = httpx_transport
        self._settings: TransportSettings | None = None
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        state = "configured" if self._settings is not None else "unconfigured"
        return f"<HttpxTransport {state}>"

    @property
    def in_process(self) -> bool:
        """Whether requests are answered in process (mock or ASGI inner transport): no network."""
        return isinstance(self._inner, httpx.MockTransport | httpx.ASGITransport)

    def configure(self, settings: TransportSettings) -> None:
        if already_configured(self._settings, settings):
            return
        if self._inner is not None and not self.in_process:
            _check_inner_tls(self._inner, settings)
        timeouts = settings.timeouts
        kwargs: dict[str, Any] = {
            "follow_redirects": False,
            "timeout": httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.read,
                write=timeouts.write,
                pool=timeouts.pool,
            ),
            "limits": httpx.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
            "trust_env": False,
            # Replies are tiny: compression buys nothing and opens the door to decompression bombs.
            "headers": {"accept-encoding": ACCEPT_ENCODING},
        }
        if self._inner is not None:
            kwargs["transport"] = self._inner
        else:
            kwargs["verify"] = build_ssl_context(settings.certificate, settings.ca_file)
        self._client = httpx.AsyncClient(**kwargs)
        self._settings = settings

    @property
    def attempt_bound(self) -> float | None:
        """Seconds within which every ``send`` returns or raises: the total timeout (None: none)."""
        settings = self._settings
        return None if settings is None else settings.timeouts.total

    async def send(self, request: WireRequest) -> WireResponse:
        client, settings = self._client, self._settings
        if client is None or settings is None:
            raise ValidationError("transport used before configure(); pass it to a client first")
        if client.is_closed:
            raise ValidationError("transport used after aclose(); its client is closed")
        total = settings.timeouts.total
        if total is None:
            return await self._send(client, request, settings.max_response_bytes)
        try:
            with anyio.fail_after(total):
                return await self._send(client, request, settings.max_response_bytes)
        except TimeoutError as exc:
            raise TransportError(
                f"no complete reply within the total timeout of {total} s", sent=None
            ) from exc

    async def _send(self, client: httpx.AsyncClient, request: WireRequest, limit: int) -> WireResponse:
        try:
            async with client.stream(
                request.method, request.url, content=request.content, headers=request.headers
            ) as response:
                declared = response.headers.get("content-length", "")
                if (
                    declared.isascii()
                    and declared.isdigit()
                    and (len(declared) > 18 or int(declared) > limit)
                ):
                    raise TransportError(f"reply larger than {limit} bytes refused", sent=True)
                # Raw bytes, decoded here within the cap as they arrive: httpx would inflate a
                # whole network chunk at once (a 64 KiB gzip chunk can hold gigabytes).
                if response.is_stream_consumed:
                    # Built in memory (httpx.MockTransport with content=): already whole and decoded.
                    body = CappedBody(limit)
                    body.feed(response.content)
                else:
                    body = CappedBody(limit, response.headers.get("content-encoding"))
                    async for chunk in response.aiter_raw():
                        body.feed(chunk)
                return WireResponse(
                    status_code=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    content=body.finish(),
                )
        except TransportError:
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise _transport_error(exc) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _transport_error(exc: httpx.HTTPError | OSError) -> TransportError:
    """Classifies a failure: a TLS misconfiguration (not retried), never sent, or maybe sent."""
    configuration = tls_configuration_error(exc)
    if configuration is not None:
        return configuration
    if isinstance(exc, _NOT_SENT):
        return TransportError(_describe(exc), sent=False)
    if isinstance(exc, httpx.HTTPError):
        return TransportError(_describe(exc), sent=None)
    if isinstance(exc, ssl.SSLError):
        # httpx lets some handshake and record errors escape unwrapped.
        return TransportError(f"TLS error: {exc.reason or exc}", sent=None)
    return TransportError(f"network error: {exc}", sent=None)


def _check_inner_tls(inner: httpx.AsyncBaseTransport, settings: TransportSettings) -> None:
    """Refuse TLS settings a user-built inner transport would silently ignore, and an inner
    ``httpx.AsyncHTTPTransport`` that does not verify the server."""
    if settings.certificate is not None or settings.ca_file is not None:
        raise ValidationError(
            "cert= and ca_file= cannot be applied to a user-built httpx_transport, which makes its "
            "own TLS connections: drop httpx_transport= (the default transport applies them), or "
            "write a paykit Transport whose configure() uses them",
            field="transport",
        )
    # httpx keeps the context on its connection pool; if that ever moves, this check is skipped.
    context = getattr(getattr(inner, "_pool", None), "_ssl_context", None)
    if isinstance(context, ssl.SSLContext) and (
        context.verify_mode == ssl.CERT_NONE or not context.check_hostname
    ):
        raise ValidationError(
            "the httpx_transport does not verify the server's certificate (verify=False); "
            "paykit never talks to a payment provider without TLS verification",
            field="transport",
        )


def _describe(exc: httpx.HTTPError) -> str:
    """Name the error and its root cause: under trio httpx's own message is often empty, and the
    reason (``certificate verify failed``, ``connection refused``) sits in the cause chain."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    seen = 0
    while cause is not None and seen < 8:
        if isinstance(cause, ssl.SSLError | OSError) or str(cause):
            if str(cause) and str(cause) not in text:
                text = f"{text} ({type(cause).__name__}: {cause})"
            break
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return text
