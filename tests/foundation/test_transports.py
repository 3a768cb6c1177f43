"""Transport contract, on both transports against the real local server."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from paykit_async.errors import TransportError, ValidationError
from paykit_async.transport import (
    ClientCertificate,
    HttpxTransport,
    Timeouts,
    Transport,
    TransportSettings,
    WireRequest,
    aiohttp_transport,
    build_ssl_context,
    httpx_transport,
)
from paykit_async.transport.aiohttp_transport import AiohttpTransport

from ..servers import ScriptedServer, TLSFiles, delayed_reply, serve_asgi
from .transports import EVERY_LOOP_AND_TRANSPORT, TRANSPORTS

pytestmark = pytest.mark.anyio


def _settings(tls: TLSFiles, **overrides: object) -> TransportSettings:
    return TransportSettings(
        certificate=tls.client_certificate(),
        ca_file=tls.ca_file,
        **overrides,  # type: ignore[arg-type]
    )


def _configured(name: str, settings: TransportSettings) -> Transport:
    transport = TRANSPORTS[name]()
    transport.configure(settings)
    return transport


@EVERY_LOOP_AND_TRANSPORT
async def test_request_goes_out_as_given_and_reply_comes_back_whole(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.reply_with(200, {"Content-Type": "text/xml", "X-Trace": "abc"}, "<xml>退款</xml>".encode())
    transport = _configured(transport_name, _settings(tls_files))
    try:
        response = await transport.send(
            WireRequest(
                method="POST",
                url=f"{scripted.base_url}/pay/refundquery?x=1",
                headers={"Content-Type": "text/xml; charset=utf-8"},
                content="<xml>é</xml>".encode(),
            )
        )
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert response.content == "<xml>退款</xml>".encode()
    assert response.headers["content-type"] == "text/xml"
    assert response.headers["x-trace"] == "abc"
    assert all(name == name.lower() for name in response.headers)
    [seen] = scripted.app.requests
    assert (seen.method, seen.path, seen.query) == ("POST", "/pay/refundquery", "x=1")
    assert seen.headers["content-type"] == "text/xml; charset=utf-8"
    assert seen.body == "<xml>é</xml>".encode()


@EVERY_LOOP_AND_TRANSPORT
async def test_redirect_is_returned_not_followed(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.reply_with(302, {"Location": f"{scripted.base_url}/elsewhere"}, b"")
    scripted.app.reply_with(200, {}, b"the redirect target must not be fetched")
    transport = _configured(transport_name, _settings(tls_files))
    try:
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/pay/refund"))
    finally:
        await transport.aclose()
    assert response.status_code == 302
    assert response.headers["location"].endswith("/elsewhere")
    assert [r.path for r in scripted.app.requests] == ["/pay/refund"]


@EVERY_LOOP_AND_TRANSPORT
@pytest.mark.parametrize("declared_length", [True, False])
async def test_oversize_reply_is_refused(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str, declared_length: bool
) -> None:
    body = b"x" * 5000
    headers = {"Content-Length": str(len(body))} if declared_length else {}
    scripted.app.reply_with(200, headers, body)
    transport = _configured(transport_name, _settings(tls_files, max_response_bytes=4096))
    try:
        with pytest.raises(TransportError, match="larger than 4096 bytes") as caught:
            await transport.send(WireRequest(url=f"{scripted.base_url}/big"))
    finally:
        await transport.aclose()
    assert caught.value.sent is True


@EVERY_LOOP_AND_TRANSPORT
async def test_reply_at_the_size_limit_is_accepted(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.reply_with(200, {}, b"y" * 4096)
    transport = _configured(transport_name, _settings(tls_files, max_response_bytes=4096))
    try:
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/fits"))
    finally:
        await transport.aclose()
    assert len(response.content) == 4096


@EVERY_LOOP_AND_TRANSPORT
async def test_compressed_reply_is_decoded_and_capped_after_decoding(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    text = b"<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>"
    scripted.app.reply_with(200, {"Content-Encoding": "gzip"}, gzip.compress(text))
    bomb = gzip.compress(b"0" * 200_000)
    scripted.app.reply_with(200, {"Content-Encoding": "gzip"}, bomb)
    transport = _configured(transport_name, _settings(tls_files, max_response_bytes=100_000))
    try:
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/gz"))
        assert response.content == text
        assert len(bomb) < 100_000
        with pytest.raises(TransportError, match="larger than"):
            await transport.send(WireRequest(url=f"{scripted.base_url}/gz"))
    finally:
        await transport.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@EVERY_LOOP_AND_TRANSPORT
async def test_connection_refused_is_not_sent(tls_files: TLSFiles, transport_name: str) -> None:
    transport = _configured(transport_name, _settings(tls_files))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(WireRequest(url=f"https://127.0.0.1:{_closed_port()}/pay/refund"))
    finally:
        await transport.aclose()
    assert caught.value.sent is False
    assert caught.value.retryable is True
    assert caught.value.outcome_unknown is False
    assert isinstance(caught.value.__cause__, Exception)


@EVERY_LOOP_AND_TRANSPORT
async def test_total_timeout_bounds_one_send_and_the_outcome_is_unknown(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.respond = delayed_reply(3.0, (200, {}, b"too late"))
    timeouts = Timeouts(connect=5, read=60, write=60, pool=60, total=0.3)
    transport = _configured(transport_name, _settings(tls_files, timeouts=timeouts))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(WireRequest(url=f"{scripted.base_url}/slow"))
    finally:
        await transport.aclose()
    assert caught.value.sent is None
    assert caught.value.outcome_unknown is True
    assert len(scripted.app.requests) == 1


@EVERY_LOOP_AND_TRANSPORT
async def test_read_timeout_is_a_transport_error_with_unknown_outcome(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.respond = delayed_reply(3.0, (200, {}, b"too late"))
    timeouts = Timeouts(read=0.3, total=None)
    transport = _configured(transport_name, _settings(tls_files, timeouts=timeouts))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(WireRequest(url=f"{scripted.base_url}/slow"))
    finally:
        await transport.aclose()
    assert caught.value.sent is None


@EVERY_LOOP_AND_TRANSPORT
async def test_plain_http_works_for_local_simulators(scripted: ScriptedServer, transport_name: str) -> None:
    scripted.app.reply_with(200, {}, b"plain")
    transport = _configured(transport_name, TransportSettings())
    try:
        response = await transport.send(WireRequest(url=f"{scripted.http_base_url}/x"))
    finally:
        await transport.aclose()
    assert response.content == b"plain"


@EVERY_LOOP_AND_TRANSPORT
async def test_ssl_context_is_built_once_per_transport(
    scripted: ScriptedServer,
    tls_files: TLSFiles,
    transport_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds: list[ssl.SSLContext] = []

    def counting_build(
        certificate: ClientCertificate | None = None, ca_file: str | None = None
    ) -> ssl.SSLContext:
        context = build_ssl_context(certificate, ca_file)
        builds.append(context)
        return context

    module = httpx_transport if transport_name == "httpx" else aiohttp_transport
    monkeypatch.setattr(module, "build_ssl_context", counting_build)
    scripted.app.respond = lambda _request: (200, {}, b"ok")
    transport = _configured(transport_name, _settings(tls_files))
    try:
        for _ in range(20):
            response = await transport.send(WireRequest(url=f"{scripted.base_url}/again"))
            assert response.status_code == 200
    finally:
        await transport.aclose()
    assert len(builds) == 1
    assert len(scripted.app.requests) == 20


@pytest.mark.parametrize("make", [HttpxTransport, AiohttpTransport])
def test_configure_again_with_the_same_settings_is_harmless_but_other_settings_are_refused(
    tls_files: TLSFiles, make: Callable[[], Transport]
) -> None:
    settings = _settings(tls_files)
    transport = make()
    transport.configure(settings)
    transport.configure(settings)
    with pytest.raises(ValidationError, match="already configured"):
        transport.configure(TransportSettings(ca_file=tls_files.ca_file))


@EVERY_LOOP_AND_TRANSPORT
async def test_send_before_configure_or_after_close_is_a_validation_error(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    transport = TRANSPORTS[transport_name]()
    request = WireRequest(url=f"{scripted.http_base_url}/x")
    with pytest.raises(ValidationError, match="before configure"):
        await transport.send(request)
    transport.configure(TransportSettings())
    await transport.aclose()
    with pytest.raises(ValidationError, match="after aclose"):
        await transport.send(request)
    assert scripted.app.requests == []


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_aiohttp_transport_under_trio_says_to_use_httpx(scripted: ScriptedServer) -> None:
    transport = AiohttpTransport()
    transport.configure(TransportSettings())
    with pytest.raises(ValidationError, match="asyncio only"):
        await transport.send(WireRequest(url=f"{scripted.http_base_url}/x"))
    await transport.aclose()


def test_bad_ca_file_is_a_validation_error_at_configure(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    for make in (HttpxTransport, AiohttpTransport):
        with pytest.raises(ValidationError) as caught:
            make().configure(TransportSettings(ca_file=str(missing)))
        assert caught.value.field == "ca_file"


def test_transport_repr_shows_no_settings(tls_files: TLSFiles) -> None:
    for make in (HttpxTransport, AiohttpTransport):
        transport = make()
        transport.configure(_settings(tls_files))
        assert repr(transport) in ("<HttpxTransport configured>", "<AiohttpTransport configured>")


@EVERY_LOOP_AND_TRANSPORT
async def test_reply_cut_short_is_a_transport_error_with_unknown_outcome(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    # The server promises 1000 bytes and sends 10, then has to drop the connection.
    scripted.app.reply_with(200, {"Content-Length": "1000"}, b"<xml><a>1<")
    transport = _configured(transport_name, _settings(tls_files))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(WireRequest(url=f"{scripted.base_url}/cut"))
        assert caught.value.sent is None
        # The transport stays usable after a broken connection.
        scripted.app.reply_with(200, {}, b"whole")
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/again"))
        assert response.content == b"whole"
    finally:
        await transport.aclose()


@EVERY_LOOP_AND_TRANSPORT
async def test_caller_cancellation_propagates_and_the_transport_stays_usable(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    scripted.app.respond = delayed_reply(3.0, (200, {}, b"late"))
    transport = _configured(transport_name, _settings(tls_files))
    try:
        with anyio.move_on_after(0.2) as scope:
            await transport.send(WireRequest(url=f"{scripted.base_url}/slow"))
        assert scope.cancelled_caught
        scripted.app.respond = None
        scripted.app.reply_with(200, {}, b"next")
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/next"))
        assert response.content == b"next"
    finally:
        await transport.aclose()


def test_aiohttp_transport_refuses_a_second_event_loop(scripted: ScriptedServer) -> None:
    transport = AiohttpTransport()
    transport.configure(TransportSettings())
    request = WireRequest(url=f"{scripted.http_base_url}/x")
    scripted.app.respond = lambda _request: (200, {}, b"ok")

    async def send_once() -> bytes:
        return (await transport.send(request)).content

    async def send_then_close() -> None:
        with pytest.raises(ValidationError, match="event loop"):
            await transport.send(request)
        await transport.aclose()

    assert asyncio.run(send_once()) == b"ok"
    asyncio.run(send_then_close())


def test_aiohttp_is_imported_only_when_the_transport_is_used() -> None:
    code = (
        "import sys, paykit_async, paykit_async.transport\n"
        "assert 'aiohttp' not in sys.modules, 'aiohttp imported eagerly'\n"
        "paykit_async.transport.AiohttpTransport()\n"
        "assert 'aiohttp' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_aiohttp_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(ImportError, match=r"paykit_async\[aiohttp\]"):
        AiohttpTransport()


# ------------------------------------------------------- aiohttp: one lazy read timer per connection


class Trickle:
    """Answers ``/trickle`` with ``chunks`` body chunks ``gap`` seconds apart, ``/stall`` with the
    headers and then nothing (until released), anything else at once."""

    def __init__(self, *, chunks: int, gap: float) -> None:
        self.chunks = chunks
        self.gap = gap
        self.release = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        path = scope["path"]
        length = self.chunks if path == "/trickle" else 1 if path == "/stall" else 2
        start = {"type": "http.response.start", "status": 200}
        await send({**start, "headers": [(b"content-length", str(length).encode())]})
        if path == "/trickle":
            for _ in range(self.chunks - 1):
                await send({"type": "http.response.body", "body": b"x", "more_body": True})
                await asyncio.sleep(self.gap)
            await send({"type": "http.response.body", "body": b"x"})
        elif path == "/stall":
            while not self.release.is_set():  # noqa: ASYNC110 - a threading.Event, set by the test
                await asyncio.sleep(0.05)
        else:
            await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_aiohttp_read_timeout_is_inactivity_enforced_by_one_lazy_timer(anyio_backend: str) -> None:
    # The read timeout means "no data for `read` seconds", exactly as aiohttp's own sock_read:
    # a reply trickling in with shorter gaps completes even though it takes longer than `read`,
    # an idle keep-alive connection is not disturbed, a stalled reply is cut off — and all that
    # with one timer per connection, not two new timers per request.
    app = Trickle(chunks=8, gap=0.1)  # 0.7 s in all, never 0.6 s without data
    loop = asyncio.get_running_loop()
    armed: list[float] = []
    real_call_at = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(callback, "__name__", "") in ("_check_read_timeout", "_on_read_timeout"):
            armed.append(when)  # a read timer (aiohttp's own is _on_read_timeout)
        return real_call_at(when, callback, *args, **kwargs)

    loop.call_at = call_at  # type: ignore[method-assign]
    transport = AiohttpTransport()
    transport.configure(TransportSettings(timeouts=Timeouts(read=0.6, total=30), max_connections=1))
    try:
        with serve_asgi(app, tls=None) as root:
            for _ in range(50):
                assert (await transport.send(WireRequest(url=f"{root}/quick"))).content == b"ok"
            # One connection, one read timer (re-armed at most once meanwhile), where aiohttp's own
            # timer would have been created twice per request.
            assert 1 <= len(armed) <= 2
            assert (await transport.send(WireRequest(url=f"{root}/trickle"))).content == b"x" * 8
            await asyncio.sleep(1.0)  # idle for longer than `read`: nothing happens
            assert (await transport.send(WireRequest(url=f"{root}/quick"))).content == b"ok"
            try:
                with pytest.raises(TransportError) as caught:
                    await transport.send(WireRequest(url=f"{root}/stall"))
            finally:
                app.release.set()
    finally:
        loop.call_at = real_call_at  # type: ignore[method-assign]
        await transport.aclose()
    assert caught.value.sent is None
    assert "Timeout on reading data" in caught.value.message  # the read timeout, not the total one
