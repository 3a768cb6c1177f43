"""Serving the simulator over a real socket with uvicorn, optionally with mutual TLS.

With a TLS directory the server demands a client certificate issued by the directory's CA on
every connection (WeChat Pay's refund endpoints need one; the simulator's other endpoints then
simply get one too). Missing material is generated with ``trustme`` — part of the ``simulator``
extra — and kept in the directory so that clients can be pointed at the same files next time.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any

import attrs

from .config import SimulatorConfig
from .core import Simulator

__all__ = ["TLSMaterial", "build_server", "ensure_tls_material", "serve"]


@attrs.frozen(kw_only=True)
class TLSMaterial:
    """The files of a simulator TLS directory: CA, server certificate, merchant client certificate."""

    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str


def ensure_tls_material(directory: str | os.PathLike[str]) -> TLSMaterial:
    """Load the TLS files in ``directory``, creating any that are missing (a fresh throwaway CA)."""
    root = Path(directory)
    material = TLSMaterial(
        ca_file=str(root / "ca.pem"),
        server_cert_file=str(root / "server.pem"),
        server_key_file=str(root / "server.key"),
        client_cert_file=str(root / "apiclient_cert.pem"),
        client_key_file=str(root / "apiclient_key.pem"),
    )
    if all(Path(p).is_file() for p in attrs.astuple(material)):
        return material
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
    return material


def _write(path: str, data: bytes, *, private: bool = False) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def build_server(
    simulator: Simulator,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tls: TLSMaterial | None = None,
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
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
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


def serve(
    config: SimulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    tls_dir: str | os.PathLike[str] | None = None,
    log_level: str = "info",
) -> None:
    """Run a simulator until interrupted (Ctrl-C stops it cleanly). Blocks.

    The server runs one asyncio event loop in the calling thread; the simulator's state is
    guarded by locks, so tests in other threads may seed orders and read snapshots meanwhile.
    """
    simulator = Simulator(config)
    tls = ensure_tls_material(tls_dir) if tls_dir is not None else None
    build_server(simulator, host=host, port=port, tls=tls, log_level=log_level).run()
