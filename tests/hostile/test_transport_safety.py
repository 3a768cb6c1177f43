"""TLS settings are never silently dropped and plaintext refunds stay on this machine (issue 12,
finding 4); a decompression bomb cannot raise memory past the reply cap (finding 9)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from paykit_async import (
    HttpxTransport,
    TransportError,
    ValidationError,
    WeChatPayClient,
)
from paykit_async.simulator import Simulator
from paykit_async.transport.decoding import CappedBody
from paykit_async.transport.tls import is_loopback_url
from paykit_async.transport.wire import TransportSettings, WireRequest, WireResponse

from ..servers import TLSFiles
from .support import WECHAT_APPID, WECHAT_KEY, WECHAT_MCH_ID, wechat_sign, xml_of

# -- finding 4: TLS settings and user-built inner transports ---------------------------------


def test_an_inner_transport_that_does_not_verify_is_refused() -> None:
    # The reproducer reached an untrusted server; now it cannot even be configured.
    transport = HttpxTransport(httpx_transport=httpx.AsyncHTTPTransport(verify=False))
    with pytest.raises(ValidationError, match="verify"):
        WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, transport=transport)


@pytest.mark.parametrize("option", ["cert", "ca_file"])
def test_cert_or_ca_file_with_a_user_built_inner_transport_is_refused(
    option: str, tls_files: TLSFiles
) -> None:
    value = tls_files.client_certificate() if option == "cert" else tls_files.ca_file
    transport = HttpxTransport(httpx_transport=httpx.AsyncHTTPTransport())
    with pytest.raises(ValidationError, match="cannot be applied"):
        WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, transport=transport, **{option: value})


def test_in_process_transports_take_no_tls_and_are_accepted(tls_files: TLSFiles) -> None:
    for inner in (
        httpx.MockTransport(lambda request: httpx.Response(200)),
        Simulator().httpx_transport(),
        httpx.ASGITransport(app=Simulator().app),
    ):
        transport = HttpxTransport(httpx_transport=inner)
        assert transport.in_process
        WeChatPayClient(
            WECHAT_APPID,
            WECHAT_MCH_ID,
            WECHAT_KEY,
            transport=transport,
            cert=tls_files.client_certificate(),
            ca_file=tls_files.ca_file,
        )


def test_a_verifying_inner_transport_without_tls_options_is_the_callers_business() -> None:
    transport = HttpxTransport(httpx_transport=httpx.AsyncHTTPTransport())
    assert not transport.in_process
    WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, transport=transport)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/wechatpay", True),
        ("http://127.9.9.9/x", True),
        ("http://[::1]:8000/", True),
        ("http://localhost:8000", True),
        ("http://LOCALHOST.", True),
        ("http://api.mch.weixin.qq.com", False),
        ("http://10.0.0.1", False),
        ("http://localhost.evil.example", False),
        ("http://127.0.0.1.evil.example", False),
        ("http://[::ffff:8.8.8.8]", False),
        ("http://[::1", False),
        ("http://", False),
    ],
)
def test_loopback_urls(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local


class RecordingTransport:
    """A network transport double (not in process) answering every refund with a signed reply."""

    def __init__(self) -> None:
        self.sent: list[WireRequest] = []

    def configure(self, settings: TransportSettings) -> None:
        pass

    async def send(self, request: WireRequest) -> WireResponse:
        self.sent.append(request)
        reply = {
            "return_code": "SUCCESS",
            "result_code": "SUCCESS",
            "appid": WECHAT_APPID,
            "mch_id": WECHAT_MCH_ID,
            "out_refund_no": "R1",
            "refund_fee": "1",
        }
        reply["sign"] = wechat_sign(reply)
        return WireResponse(status_code=200, content=xml_of(reply))

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("base_url", "with_cert", "allowed"),
    [
        ("http://127.0.0.1:8000/wechatpay", False, True),
        ("http://localhost:8000/wechatpay", False, True),
        ("http://[::1]:8000/wechatpay", False, True),
        ("http://api.mch.weixin.qq.com", False, False),
        ("http://api.mch.weixin.qq.com", True, False),  # a certificate does not make plaintext safe
        ("http://192.168.1.10:8000", False, False),
        ("https://api.mch.weixin.qq.com", False, False),
        ("https://api.mch.weixin.qq.com", True, True),
    ],
)
async def test_plain_http_refunds_only_to_loopback(
    base_url: str, with_cert: bool, allowed: bool, tls_files: TLSFiles
) -> None:
    transport = RecordingTransport()
    cert = tls_files.client_certificate() if with_cert else None
    async with WeChatPayClient(
        WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, base_url=base_url, transport=transport, cert=cert
    ) as client:
        if allowed:
            result = await client.refund(total_fee=1, refund_fee=1, out_trade_no="T1", out_refund_no="R1")
            assert result.out_refund_no == "R1"
        else:
            with pytest.raises(ValidationError):
                await client.refund(total_fee=1, refund_fee=1, out_trade_no="T1", out_refund_no="R1")
            assert transport.sent == []  # refused before any I/O


# -- finding 9: decompression bombs ----------------------------------------------------------

BOMB_BYTES = 1 << 30  # 1 GiB of zeros once inflated
SMALL_REPLY = b'{"return_code": 1}'


class BombServer:
    """A real HTTP/1.1 server on 127.0.0.1: ``/small`` answers a small JSON body, ``/bomb`` a gzip
    stream of 1 GiB of zeros generated on the fly (so the server itself stays small)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.accept_encodings: list[str] = []
        self.bomb_bytes_sent = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> BombServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            socket.create_connection(self._sock.getsockname(), timeout=1).close()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop:
            connection, _ = self._sock.accept()
            threading.Thread(target=self._handle, args=(connection,), daemon=True).start()

    def _handle(self, connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                header_text, _, rest = head.partition(b"\r\n\r\n")
                lines = header_text.decode("latin-1").split("\r\n")
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
                }
                self.accept_encodings.append(headers.get("accept-encoding", ""))
                length = int(headers.get("content-length", "0"))
                while len(rest) < length:
                    rest += connection.recv(4096)
                if lines[0].split()[1].endswith("/bomb"):
                    self._send_bomb(connection)
                    return
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(SMALL_REPLY), SMALL_REPLY)
                )

    def _send_bomb(self, connection: socket.socket) -> None:
        connection.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1 << 20)
        pending = b""
        for _ in range(BOMB_BYTES // len(zeros)):
            pending += compressor.compress(zeros)
            if len(pending) >= 64 * 1024:
                self._chunk(connection, pending)
                pending = b""
        self._chunk(connection, pending + compressor.flush())
        connection.sendall(b"0\r\n\r\n")

    def _chunk(self, connection: socket.socket, data: bytes) -> None:
        if data:
            connection.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            self.bomb_bytes_sent += len(data)


@pytest.fixture
def bomb_server() -> Iterator[BombServer]:
    with BombServer() as server:
        yield server


CLIENT = """
import json, resource, sys
import anyio
from paykit_async import AiohttpTransport, HttpxTransport, TransportError
from paykit_async.transport.wire import TransportSettings, WireRequest

kind, backend, base = sys.argv[1:]

async def main() -> None:
    transport = AiohttpTransport() if kind == "aiohttp" else HttpxTransport()
    transport.configure(TransportSettings())
    small = await transport.send(WireRequest(url=base + "/small"))  # imports, pools, TLS warm
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        reply = await transport.send(WireRequest(url=base + "/bomb"))
        outcome = f"accepted {len(reply.content)} bytes"
    except TransportError as error:
        outcome = "refused: " + error.message
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await transport.aclose()
    print(json.dumps({"small": small.content.decode(), "growth_kib": after - before, "outcome": outcome}))

anyio.run(main, backend=backend)
"""


def _run_client(kind: str, backend: str, base_url: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, kind, backend, base_url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("kind", "backend"),
    [
        ("httpx", "asyncio"),
        ("httpx", "trio"),
        pytest.param("aiohttp", "asyncio", marks=pytest.mark.asyncio_only),
    ],
)
def test_a_gzip_bomb_is_refused_within_the_memory_bound(
    bomb_server: BombServer, kind: str, backend: str
) -> None:
    result = _run_client(kind, backend, bomb_server.base_url)
    assert result["small"] == SMALL_REPLY.decode()
    assert str(result["outcome"]).startswith("refused: reply larger than")
    growth_mib = int(result["growth_kib"]) / 1024  # type: ignore[call-overload]
    assert growth_mib < 64, f"peak RSS grew by {growth_mib:.1f} MiB"
    # Both transports ask the server not to compress at all.
    assert bomb_server.accept_encodings
    assert set(bomb_server.accept_encodings) == {"identity"}
    # The client stopped reading early: nowhere near the whole compressed gigabyte went out.
    assert bomb_server.bomb_bytes_sent < BOMB_BYTES // 100


# -- the bounded decoder itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda data: data),
        ("identity", lambda data: data),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some servers send
    ],
)
def test_the_capped_body_decodes_in_small_pieces(encoding: str | None, encode: object) -> None:
    data = b"<xml>" + b"x" * 50_000 + b"</xml>"
    raw = encode(data)  # type: ignore[operator]
    body = CappedBody(len(data), encoding)
    for start in range(0, len(raw), 7):
        body.feed(raw[start : start + 7])
    assert body.finish() == data
    over = CappedBody(len(data) - 1, encoding)
    with pytest.raises(TransportError, match="larger than"):  # noqa: PT012 - either step may see it
        over.feed(raw)
        over.finish()


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress", "gzip, gzip", "unknown"])
def test_encodings_never_asked_for_are_refused(encoding: str) -> None:
    with pytest.raises(TransportError, match="not asked for") as caught:
        CappedBody(1000, encoding)
    assert caught.value.sent is True


def test_a_corrupt_compressed_body_is_a_transport_error() -> None:
    body = CappedBody(1000, "gzip")
    with pytest.raises(TransportError, match="corrupt"):  # noqa: PT012 - either step may see it
        body.feed(b"not gzip at all")
        body.finish()


def test_the_bomb_stops_after_one_byte_past_the_cap() -> None:
    bomb = gzip.compress(bytes(50 << 20))
    body = CappedBody(1 << 20, "gzip")
    with pytest.raises(TransportError):
        body.feed(bomb)
    assert sum(map(len, body._chunks)) <= 1 << 20
