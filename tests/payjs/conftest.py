"""A real HTTPS server (trustme certificate, no client certificate: PAYJS uses none) for PAYJS tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..servers import ScriptedApp, ScriptedServer, TLSFiles, serve_asgi


@pytest.fixture(scope="session")
def payjs_tls_server(tls_files: TLSFiles) -> Iterator[ScriptedServer]:
    """One TLS server for the session; ``http_base_url`` is unused (same URL as ``base_url``)."""
    app = ScriptedApp()
    with serve_asgi(app, tls=tls_files, require_client_cert=False) as base_url:
        yield ScriptedServer(base_url=base_url, http_base_url=base_url, app=app, tls=tls_files)


@pytest.fixture
def payjs_server(payjs_tls_server: ScriptedServer) -> Iterator[ScriptedServer]:
    """The session's PAYJS TLS server with its app reset for this test."""
    payjs_tls_server.app.reset()
    yield payjs_tls_server
    payjs_tls_server.app.reset()
