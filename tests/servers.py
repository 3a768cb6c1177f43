"""Real local test servers: a trustme CA, TLS material on disk, and uvicorn in a background thread.

Provider tests talk to a real HTTPS server on 127.0.0.1 that requires a client certificate, so the
whole TLS path (client certificate, ``ca_file``, verification) is exercised, on asyncio and trio.

Fixtures (defined in ``tests/conftest.py``):

``tls_files``
    A :class:`TLSFiles`: ``ca_file`` to pass as ``ca_file=``, the client certificate as PEM
    (``client_cert_file`` + ``client_key_file``) and PKCS#12 (``client_p12_file`` +
    ``client_p12_password``), an untrusted client certificate and a second CA (``other_ca_file``).
    ``tls_files.client_certificate()`` returns a ready :class:`ClientCertificate`.
``scripted``
    The session's mutual-TLS server (a :class:`ScriptedServer`), reset for this test. Script the
    replies, call it, then look at what arrived::

        async def test_refund(scripted: ScriptedServer, tls_files: TLSFiles) -> None:
            scripted.app.reply_with(200, {"content-type": "text/xml"}, b"<xml>...</xml>")
            # or: scripted.app.respond = lambda req: (200, {}, build_reply(req.body))
            client = WeChatPayClient(..., base_url=scripted.base_url,
                                     cert=tls_files.client_certificate(), ca_file=tls_files.ca_file)
            ...
            assert scripted.app.requests[0].path == "/secapi/pay/refund"

    ``scripted.http_base_url`` is a plain-HTTP server on the same app (for providers without
    mutual TLS, such as PAYJS, when TLS is not what the test is about).

For a one-off server with its own app, use :func:`serve_asgi` directly::

    with serve_asgi(app, tls=tls_files, require_client_cert=True) as base_url:
        ...

Servers run in a thread with their own event loop, so they serve asyncio and trio tests alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import attrs
import trustme
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from paykit_async.transport import ClientCertificate

__all__ = [
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedApp",
    "ScriptedServer",
    "TLSFiles",
    "delayed_reply",
    "make_tls_files",
    "read_body",
    "serve_asgi",
]

Reply = tuple[int, Mapping[str, str], bytes]
"""What a scripted responder returns: ``(status, headers, body)``."""

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


@attrs.frozen(kw_only=True)
class TLSFiles:
    """Certificates and keys on disk, all issued by throwaway trustme CAs.

    ``ca_file`` signed the server and the trusted client certificate; ``other_ca_file`` signed
    nothing the server uses (a client trusting only it rejects the server); the untrusted client
    certificate comes from that other CA, so the server rejects it.
    """

    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str
    client_key_encrypted_file: str
    client_key_password: str
    client_p12_file: str
    client_p12_password: str
    untrusted_client_cert_file: str
    untrusted_client_key_file: str
    other_ca_file: str

    def client_certificate(self) -> ClientCertificate:
        """The trusted client certificate, loaded from PEM."""
        return ClientCertificate.from_pem(self.client_cert_file, self.client_key_file)

    def untrusted_client_certificate(self) -> ClientCertificate:
        """A client certificate the server does not trust (issued by the other CA)."""
        return ClientCertificate.from_pem(self.untrusted_client_cert_file, self.untrusted_client_key_file)


def make_tls_files(directory: Path) -> TLSFiles:
    """Create a CA, a server certificate for 127.0.0.1/localhost and client certificates."""
    ca = trustme.CA(organization_name="paykit test CA")
    other_ca = trustme.CA(organization_name="paykit other CA")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("merchant-1900000109@paykit.test", common_name="paykit test merchant")
    untrusted = other_ca.issue_cert("intruder@paykit.test", common_name="intruder")

    def write(name: str, data: bytes) -> str:
        path = directory / name
        path.write_bytes(data)
        return str(path)

    client_cert_pem = b"".join(blob.bytes() for blob in client.cert_chain_pems)
    client_key_pem = client.private_key_pem.bytes()
    key = serialization.load_pem_private_key(client_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate(client.cert_chain_pems[0].bytes())
    key_password = "pem-key-password"  # a throwaway test password
    p12_password = "p12-password-1900000109"
    encrypted_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(key_password.encode()),
    )
    p12 = pkcs12.serialize_key_and_certificates(
        b"apiclient",
        key,
        cert,
        None,
        serialization.BestAvailableEncryption(p12_password.encode()),
    )
    return TLSFiles(
        ca_file=write("ca.pem", ca.cert_pem.bytes()),
        server_cert_file=write("server.pem", b"".join(b.bytes() for b in server.cert_chain_pems)),
        server_key_file=write("server.key", server.private_key_pem.bytes()),
        client_cert_file=write("apiclient_cert.pem", client_cert_pem),
        client_key_file=write("apiclient_key.pem", client_key_pem),
        client_key_encrypted_file=write("apiclient_key_encrypted.pem", encrypted_key),
        client_key_password=key_password,
        client_p12_file=write("apiclient_cert.p12", p12),
        client_p12_password=p12_password,
        untrusted_client_cert_file=write(
            "untrusted_cert.pem", b"".join(b.bytes() for b in untrusted.cert_chain_pems)
        ),
        untrusted_client_key_file=write("untrusted_key.pem", untrusted.private_key_pem.bytes()),
        other_ca_file=write("other_ca.pem", other_ca.cert_pem.bytes()),
    )


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI HTTP request, however many messages it comes in."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


@contextlib.contextmanager
def serve_asgi(app: ASGIApp, *, tls: TLSFiles | None, require_client_cert: bool = True) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yield the base URL.

    With ``tls`` the server uses the trustme server certificate and, when ``require_client_cert``,
    demands a client certificate issued by ``tls.ca_file``.
    """
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the listening
    # socket says so; without it every reply stalls ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options: dict[str, Any] = {}
    if tls is not None:
        options = {
            "ssl_certfile": tls.server_cert_file,
            "ssl_keyfile": tls.server_key_file,
        }
        if require_client_cert:
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
            options["ssl_ca_certs"] = tls.ca_file
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="critical",
        access_log=False,
        loop="asyncio",
        timeout_graceful_shutdown=1,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        scheme = "https" if tls is not None else "http"
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request as the server saw it. Header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes


Responder = Callable[[RecordedRequest], Reply | Awaitable[Reply]]


class ScriptedApp:
    """An ASGI app that records every request and answers as the test scripted it.

    Replies come first from the queue filled by :meth:`reply_with` (one per request), then from
    ``respond`` (a function, sync or async, of the :class:`RecordedRequest`), else 404.
    Thread-safe: the server runs in its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self.respond: Responder | None = None

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def reply_with(self, status: int, headers: Mapping[str, str] | None = None, body: bytes = b"") -> None:
        """Queue one canned reply."""
        with self._lock:
            self._queue.append((status, dict(headers or {}), body))

    def reset(self) -> None:
        """Forget requests, queued replies and the responder."""
        with self._lock:
            self._requests.clear()
            self._queue.clear()
            self.respond = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        request = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )
        with self._lock:
            self._requests.append(request)
            reply: Reply | None = self._queue.popleft() if self._queue else None
            responder = self.respond
        if reply is None:
            if responder is None:
                reply = (404, {"content-type": "text/plain"}, b"no scripted reply")
            else:
                result = responder(request)
                reply = await result if inspect.isawaitable(result) else result
        status, headers, body = reply
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": body})


@attrs.frozen(kw_only=True)
class ScriptedServer:
    """A running mutual-TLS server (``base_url``) and a plain-HTTP one (``http_base_url``) on ``app``."""

    base_url: str
    http_base_url: str
    app: ScriptedApp
    tls: TLSFiles


def delayed_reply(seconds: float, reply: Reply) -> Responder:
    """A responder that answers ``reply`` after ``seconds`` (for timeout tests)."""

    async def respond(_request: RecordedRequest) -> Reply:
        await asyncio.sleep(seconds)
        return reply

    return respond
