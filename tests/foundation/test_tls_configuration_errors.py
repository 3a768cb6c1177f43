"""TLS misconfigurations are not transient: named with their fix, never retried, never failed over.

The server side is real: the shared mutual-TLS test server (a private trustme CA) for server
verification, and ``openssl s_server`` — which, unlike Python's ssl module, answers a refused
client certificate with a TLS alert, as production servers do — for client-certificate rejection.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from paykit_async import RetryPolicy, TransportError, WeChatPayClient
from paykit_async.pipeline.core import Handler, Operation, Outcome
from paykit_async.simulator import DEMO_WECHATPAY
from paykit_async.transport import TransportSettings, WireRequest
from paykit_async.transport.tls_errors import tls_configuration_error

from ..servers import ScriptedServer, TLSFiles
from .transports import EVERY_LOOP_AND_TRANSPORT, TRANSPORTS

pytestmark = pytest.mark.anyio


class Attempts:
    """A user middleware: runs once per attempt, so it counts them."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        self.urls.append(operation.url)
        return await call_next(operation)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _client(base_url: str, *, transport_name: str, attempts: Attempts, **options: Any) -> WeChatPayClient:
    options.setdefault("retry", RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.01))
    return WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=base_url,
        transport=TRANSPORTS[transport_name](),
        middleware=[attempts],
        **options,
    )


@EVERY_LOOP_AND_TRANSPORT
async def test_a_private_ca_without_ca_file_is_named_not_retried_and_not_failed_over(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    attempts = Attempts()
    backup = f"https://127.0.0.1:{_free_port()}"  # nothing listens there
    async with _client(
        scripted.base_url,
        transport_name=transport_name,
        attempts=attempts,
        cert=tls_files.client_certificate(),
        backup_base_url=backup,
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.refund(out_trade_no="T1", total_fee=100, refund_fee=100)
    error = caught.value
    assert error.retryable is False
    assert error.sent is False
    assert "certificate verify failed" in error.message
    assert "ca_file=" in error.message
    assert attempts.urls == [f"{scripted.base_url}/secapi/pay/refund"]  # once: no retry, no backup
    assert scripted.app.requests == []


@EVERY_LOOP_AND_TRANSPORT
async def test_a_failover_error_names_both_domains_and_keeps_the_primarys_cause(
    tls_files: TLSFiles, transport_name: str
) -> None:
    attempts = Attempts()
    primary = f"https://127.0.0.1:{_free_port()}"
    backup = f"https://127.0.0.1:{_free_port()}"
    async with _client(
        primary,
        transport_name=transport_name,
        attempts=attempts,
        cert=tls_files.client_certificate(),
        ca_file=tls_files.ca_file,
        backup_base_url=backup,
        retry=RetryPolicy.none(),
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.query_refund(out_refund_no="R1")
    error = caught.value
    assert primary in error.message
    assert backup in error.message
    assert isinstance(error.__cause__, TransportError)
    assert error.__cause__.sent is False
    assert error.retryable  # refused connections are transient: these are retried as before
    assert attempts.urls == [f"{primary}/pay/refundquery"]


@pytest.fixture(params=["-tls1_2", "-tls1_3"])
def strict_server(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[str]:
    """``openssl s_server`` demanding a client certificate from the test CA; its base URL."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [
            "openssl", "s_server", "-accept", str(port), "-cert", tls_files.server_cert_file,
            "-key", tls_files.server_key_file, "-CAfile", tls_files.ca_file, "-Verify", "1",
            "-verify_return_error", "-www", "-quiet", request.param,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, "openssl s_server did not start"
                assert time.monotonic() < deadline
                time.sleep(0.02)
        yield f"https://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait()


@EVERY_LOOP_AND_TRANSPORT
@pytest.mark.parametrize("client_cert", ["missing", "untrusted"])
async def test_a_rejected_client_certificate_is_named_and_not_retried(
    strict_server: str, tls_files: TLSFiles, transport_name: str, client_cert: str
) -> None:
    attempts = Attempts()
    cert = None if client_cert == "missing" else tls_files.untrusted_client_certificate()
    async with _client(
        strict_server,
        transport_name=transport_name,
        attempts=attempts,
        cert=cert,
        ca_file=tls_files.ca_file,
        backup_base_url=f"https://127.0.0.1:{_free_port()}",
    ) as client:
        with pytest.raises(TransportError) as caught:
            await client.query_refund(out_refund_no="R1")
    error = caught.value
    assert error.retryable is False
    assert error.sent is False
    assert "cert=" in error.message
    assert "client certificate" in error.message
    assert len(attempts.urls) == 1


def test_the_classification_reads_the_cause_chain() -> None:
    def chained(inner: BaseException) -> Exception:
        try:
            try:
                raise inner
            except BaseException as exc:
                raise ConnectionError("wrapped") from exc
        except ConnectionError as outer:
            return outer

    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    verify.verify_message = "Hostname mismatch, certificate is not valid for 'api.example'."
    mismatch = tls_configuration_error(chained(verify))
    assert mismatch is not None
    assert "check base_url" in mismatch.message
    expired = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate has expired")
    found = tls_configuration_error(chained(expired))
    assert found is not None
    assert "validity period" in found.message
    alert = ssl.SSLError(1, "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)")
    rejected = tls_configuration_error(chained(alert))
    assert rejected is not None
    assert "rejected the client certificate" in rejected.message
    assert tls_configuration_error(chained(ConnectionRefusedError(111, "refused"))) is None
    assert tls_configuration_error(ssl.SSLError(1, "[SSL: DECRYPTION_FAILED] bad record")) is None


@EVERY_LOOP_AND_TRANSPORT
async def test_transports_keep_the_original_error_as_cause(
    scripted: ScriptedServer, tls_files: TLSFiles, transport_name: str
) -> None:
    transport = TRANSPORTS[transport_name]()
    transport.configure(TransportSettings(certificate=tls_files.client_certificate()))
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send(WireRequest(url=f"{scripted.base_url}/x", content=b"x"))
    finally:
        await transport.aclose()
    assert caught.value.__cause__ is not None
    assert not caught.value.retryable
