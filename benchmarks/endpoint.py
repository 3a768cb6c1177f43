"""A fast local WeChat Pay endpoint for throughput runs, meant to run in its own process.

A raw asyncio HTTP/1.1 keep-alive server over TLS that requires a client certificate and answers
every POST with a pre-signed refund reply (or, with ``--echo``, a reply signed for the request's
``out_refund_no``). ``--fault-rate`` answers that share of requests with a signed, retryable
``SYSTEMERROR`` reply, drawn from a seeded RNG. ``GET /stats`` returns the request counts.

A ``POST /v3/…`` (WeChat Pay API v3) gets a JSON refund reply signed with the run's v3 platform key
(``v3_keys`` in the TLS directory). The reply leaves out ``out_refund_no`` so that one signature
serves every request: it is re-signed once a minute (a fresh timestamp), never per request, so
the endpoint's own RSA cost stays out of the client's measurement. ``--no-client-cert`` serves
TLS without asking for a client certificate (v3 has no mutual TLS).

Run: ``python -m benchmarks.endpoint --tls-dir DIR [--echo] [--fault-rate 0.1] [--no-client-cert]``;
it prints ``PORT <n>`` once it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import ssl
import sys
import time
from pathlib import Path

from .fixtures import v3_keys, v3_refund_reply, wechat_refund_reply

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)", re.IGNORECASE)
_REFUND_NO = re.compile(rb"<out_refund_no>(?:<!\[CDATA\[)?([^<\]]*)")


def _http(body: bytes, status: bytes = b"200 OK", content_type: bytes = b"text/xml") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: "
        + content_type
        + b"\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class _V3Reply:
    """The v3 refund reply, re-signed when its timestamp is a minute old."""

    def __init__(self, tls_dir: Path) -> None:
        self._key_file = v3_keys(tls_dir).platform_key_file
        self._signed_at = 0.0
        self._reply = b""

    def get(self) -> bytes:
        now = time.time()
        if now - self._signed_at > 60:
            headers, body = v3_refund_reply(self._key_file)
            head = b"".join(f"\r\n{k}: {v}".encode() for k, v in headers.items() if k != "content-type")
            self._reply = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json"
                + head
                + b"\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            self._signed_at = now
        return self._reply


class _State:
    def __init__(self, *, echo: bool, fault_rate: float, seed: int, tls_dir: Path) -> None:
        self.v3 = _V3Reply(tls_dir)
        self.echo = echo
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.requests = 0
        self.faults = 0
        self.ok = _http(wechat_refund_reply())
        self.fault = _http(wechat_refund_reply(err_code="SYSTEMERROR"))

    def respond(self, head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET /stats"):
            stats = {"requests": self.requests, "faults": self.faults}
            return _http(json.dumps(stats).encode(), content_type=b"application/json")
        if head.startswith(b"GET /reset"):
            self.requests = self.faults = 0
            return _http(b"{}", content_type=b"application/json")
        self.requests += 1
        if head.startswith(b"POST /v3/"):
            return self.v3.get()
        fault = self.fault_rate > 0 and self.rng.random() < self.fault_rate
        if fault:
            self.faults += 1
        if not self.echo:
            return self.fault if fault else self.ok
        match = _REFUND_NO.search(body)
        refund_no = match.group(1).decode() if match else "R0000000000000001"
        return _http(wechat_refund_reply(refund_no, err_code="SYSTEMERROR" if fault else None))


class _Connection(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        out: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = bytes(buffer[:end])
            match = _CONTENT_LENGTH.search(head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(buffer) < total:
                break
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            out.append(self.state.respond(head, body))
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


async def serve(
    tls_dir: Path, *, echo: bool, fault_rate: float, seed: int, port: int, client_cert: bool = True
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls_dir / "ca.pem"))
    context.load_cert_chain(str(tls_dir / "server.pem"), str(tls_dir / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED if client_cert else ssl.CERT_NONE
    state = _State(echo=echo, fault_rate=fault_rate, seed=seed, tls_dir=tls_dir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state), "127.0.0.1", port, ssl=context, backlog=1024
    )
    sockname = server.sockets[0].getsockname()
    sys.stdout.write(f"PORT {sockname[1]}\n")
    sys.stdout.flush()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--echo", action="store_true")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-client-cert", action="store_true", help="TLS without client certificates")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.tls_dir,
                echo=args.echo,
                fault_rate=args.fault_rate,
                seed=args.seed,
                port=args.port,
                client_cert=not args.no_client_cert,
            )
        )


if __name__ == "__main__":
    main()
