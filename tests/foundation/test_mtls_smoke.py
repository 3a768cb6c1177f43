"""The shared mutual-TLS server accepts the trusted client certificate through HttpxTransport."""

from __future__ import annotations

import pytest

from paykit_async.errors import TransportError
from paykit_async.transport import HttpxTransport, TransportSettings, WireRequest

from ..servers import ScriptedServer, TLSFiles

pytestmark = pytest.mark.anyio


async def test_httpx_transport_speaks_mutual_tls(scripted: ScriptedServer, tls_files: TLSFiles) -> None:
    scripted.app.reply_with(200, {"content-type": "text/plain"}, b"hello")
    transport = HttpxTransport()
    transport.configure(
        TransportSettings(certificate=tls_files.client_certificate(), ca_file=tls_files.ca_file)
    )
    try:
        response = await transport.send(WireRequest(url=f"{scripted.base_url}/pay/refund", content=b"<xml/>"))
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert response.content == b"hello"
    [seen] = scripted.app.requests
    assert (seen.method, seen.path, seen.body) == ("POST", "/pay/refund", b"<xml/>")


async def test_the_shared_server_refuses_a_client_without_certificate(
    scripted: ScriptedServer, tls_files: TLSFiles
) -> None:
    scripted.app.reply_with(200, {}, b"must not be served")
    transport = HttpxTransport()
    transport.configure(TransportSettings(ca_file=tls_files.ca_file))
    try:
        with pytest.raises(TransportError):
            await transport.send(WireRequest(url=f"{scripted.base_url}/pay/refund"))
    finally:
        await transport.aclose()
    assert scripted.app.requests == []
