"""Serving the simulator over a real socket with uvicorn, optionally with mutual TLS.

With TLS, a client certificate that is presented must be issued by the directory's CA (checked
in the TLS handshake). Like WeChat Pay, the WeChat refund endpoints then answer a request that
came *without* a certificate with the HTML "No required SSL certificate was sent" page, while
PAYJS and eftPay need none; ``client_certs="all"`` demands one on every connection instead.
Missing material is generated with ``trustme`` — part of the ``simulator`` extra — and kept in
the directory so that clients can be pointed at the same files next time. The merchant
certificate is there twice: as PEM files and as ``apiclient_cert.p12`` whose password is the
WeChat Pay ``mch_id``, the form in which WeChat hands it to merchants.

Threading: a server runs one asyncio event loop in its thread; the simulator's state is
behind locks, so other threads (tests) may seed orders and read snapshots meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from .config import DEMO_WECHATPAY, SimulatorConfig
from .core import Simulator
from .http import CLIENT_CERT_KEY

__all__ = ["TLSMaterial", "bind_socket", "build_server", "ensure_tls_material", "serve", "serve_in_thread"]

ClientCerts = Literal["wechatpay-refunds", "all"]


@attrs.frozen(kw_only=True)
class TLSMaterial:
    """The files of a simulator TLS directory: CA, server certificate, merchant client certificate."""

    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str
    client_p12_file: str | None = None
    """The client certificate and key as PKCS#12, password :attr:`client_p12_password`."""
    client_p12_password: str | None = attrs.field(default=None, repr=False)


def ensure_tls_material(
    directory: str | os.PathLike[str], *, p12_password: str = DEMO_WECHATPAY.mch_id
) -> TLSMaterial:
    """Load the TLS files in ``directory``, creating any that are missing (a fresh throwaway CA).

    ``apiclient_cert.p12`` holds the merchant certificate and key under ``p12_password`` (WeChat
    Pay's convention: the ``mch_id``); it is rewritten from the PEM files when it is missing or
    does not open with that password. The CA is only created when a PEM file is missing.
    """
    root = Path(directory)
    material = TLSMaterial(
        ca_file=str(root / "ca.pem"),
        server_cert_file=str(root / "server.pem"),
        server_key_file=str(root / "server.key"),
        client_cert_file=str(root / "apiclient_cert.pem"),
        client_key_file=str(root / "apiclient_key.pem"),
        client_p12_file=str(root / "apiclient_cert.p12"),
        client_p12_password=p12_password,
    )
    pems = (
        material.ca_file,
        material.server_cert_file,
        material.server_key_file,
        material.client_cert_file,
        material.client_key_file,
    )
    if not all(Path(p).is_file() for p in pems):
        _create_pem_files(root, material)
    _ensure_p12(material, p12_password)
    return material


def _create_pem_files(root: Path, material: TLSMaterial) -> None:
    import trustme  # the simulator extra; only needed to create material

    root.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="paykit simulator CA")
    server = ca.issue_cert("127.0.0.1", "localhost", "::1")
    client = ca.issue_cert("merchant@paykit-simulator.invalid", common_name="paykit simulator merchant")
    _write(material.ca_file, ca.cert_pem.bytes())
    _write(material.server_cert_file, b"".join(b.bytes() for b in server.cert_chain_pems))
    _write(material.server_key_file, server.private_key_pem.bytes(), private=True)
    _write(material.client_cert_file, b"".join(b.bytes() for b in client.cert_chain_pems))
    _write(material.client_key_file, client.private_key_pem.bytes(), private=True)
    if material.client_p12_file is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(material.client_p12_file)  # it belonged to the old CA


def _ensure_p12(material: TLSMaterial, password: str) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    assert material.client_p12_file is not None
    path = Path(material.client_p12_file)
    with contextlib.suppress(OSError, ValueError, TypeError):
        pkcs12.load_key_and_certificates(path.read_bytes(), password.encode())
        return  # present and opens with the password
    key = serialization.load_pem_private_key(Path(material.client_key_file).read_bytes(), password=None)
    chain = x509.load_pem_x509_certificates(Path(material.client_cert_file).read_bytes())
    data = pkcs12.serialize_key_and_certificates(
        b"paykit simulator merchant",
        key,  # type: ignore[arg-type]
        chain[0],
        chain[1:] or None,
        serialization.BestAvailableEncryption(password.encode()),
    )
    _write(str(path), data, private=True)


def _write(path: str, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _protocol_reporting_client_certs() -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, telling the app whether the TLS peer showed a certificate.

    The flag travels in the per-connection copy of the lifespan ``state`` that uvicorn puts in
    every request scope; uvicorn has no standard scope key for the peer certificate.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class ClientCertAwareH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            peer = transport.get_extra_info("peercert")
            self.app_state = {**self.app_state, CLIENT_CERT_KEY: bool(peer)}

    return ClientCertAwareH11Protocol


def build_server(
    simulator: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tls: TLSMaterial | None = None,
    client_certs: ClientCerts = "wechatpay-refunds",
    log_level: str = "info",
) -> Any:
    """A ``uvicorn.Server`` for ``simulator.app`` (lifespan on: notifications are delivered)."""
    import uvicorn  # the simulator extra

    options: dict[str, Any] = {}
    if tls is not None:
        options = {
            "ssl_certfile": tls.server_cert_file,
            "ssl_keyfile": tls.server_key_file,
            "ssl_ca_certs": tls.ca_file,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if client_certs == "all" else ssl.CERT_OPTIONAL,
            "http": _protocol_reporting_client_certs(),
        }
    config = uvicorn.Config(
        simulator.app,
        host=host,
        port=port,
        lifespan="on",
        log_level=log_level,
        timeout_graceful_shutdown=2,
        **options,
    )
    return uvicorn.Server(config)


def bind_socket(host: str = "127.0.0.1", port: int = 8000) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (``0``: any free port), for ``build_server``.

    Binding before anything is announced lets a busy port fail with a plain :class:`OSError`
    (``EADDRINUSE``) instead of after the banner, inside the server.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tls_dir: str | os.PathLike[str] | None = None,
    client_certs: ClientCerts = "wechatpay-refunds",
    log_level: str = "info",
) -> None:
    """Run a simulator until interrupted; Ctrl-C shuts it down gracefully and returns. Blocks."""
    simulator = Simulator(config)
    tls = (
        ensure_tls_material(tls_dir, p12_password=simulator.config.wechatpay.mch_id)
        if tls_dir is not None
        else None
    )
    sock = bind_socket(host, port)
    server = build_server(
        simulator, host=host, port=port, tls=tls, client_certs=client_certs, log_level=log_level
    )
    with sock, contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after shutting down
        server.run(sockets=[sock])


@contextlib.contextmanager
def serve_in_thread(
    simulator: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TLSMaterial | None = None,
    client_certs: ClientCerts = "wechatpay-refunds",
) -> Iterator[str]:
    """Serve ``simulator`` from a background thread; yield its root URL (``port=0``: any free port).

    Works from asyncio and trio tests alike (the server has its own loop). Its lifespan runs
    the notification sender, so do not also enter ``simulator.running()``.
    """
    server = build_server(
        simulator, host=host, port=port, tls=tls, client_certs=client_certs, log_level="critical"
    )
    thread = threading.Thread(target=server.run, name="paykit-simulator", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator server did not start")
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        scheme = "https" if tls is not None else "http"
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        yield f"{scheme}://{shown}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
