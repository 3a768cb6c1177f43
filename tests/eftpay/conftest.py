"""An HTTPS server (trustme certificate, no client certificate: eftPay uses none) per module."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from ..servers import ScriptedApp, TLSFiles, serve_asgi


@attrs.frozen(kw_only=True)
class EftPayServer:
    """A running HTTPS server whose ``base_url`` stands in for ``https://…/VMP``."""

    base_url: str
    app: ScriptedApp
    ca_file: str


@pytest.fixture(scope="module")
def _eftpay_server(tls_files: TLSFiles) -> Iterator[EftPayServer]:
    app = ScriptedApp()
    with serve_asgi(app, tls=tls_files, require_client_cert=False) as base_url:
        yield EftPayServer(base_url=f"{base_url}/VMP", app=app, ca_file=tls_files.ca_file)


@pytest.fixture
def eftpay_server(_eftpay_server: EftPayServer) -> Iterator[EftPayServer]:
    """The module's server with its script and recorded requests reset for this test."""
    _eftpay_server.app.reset()
    yield _eftpay_server
    _eftpay_server.app.reset()
