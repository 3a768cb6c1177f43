"""The v3 exchange and the call's deadline: which attempts keep the retry layer's deadline scope.

In public-key mode nothing but the transport can wait in a v3 attempt, so the exchange states the
transport's bound and the retry layer opens no scope when that bound ends well before the
deadline; with platform certificates a download can happen inside an attempt, so the scope stays.
Either way a stalling attempt is abandoned at the call's deadline.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from paykit_async import PaykitError, RetryPolicy, WeChatPayV3Client
from paykit_async.transport.wire import WireRequest, WireResponse

from . import spec
from .conftest import APIV3_KEY, MCHID, MERCHANT_SERIAL, PUBLIC_KEY_ID

_PLATFORM_KEY = spec.new_key()


class _Transport:
    """Answers every request with a signed 204 within ``attempt_bound``; with ``stall`` it breaks
    that promise and hangs (on any event loop)."""

    def __init__(self, *, bound: float | None, stall: bool = False) -> None:
        self.attempt_bound = bound
        self.stall = stall
        self.sent: list[str] = []

    def configure(self, settings: object) -> None:
        """Nothing to set up."""

    async def send(self, request: WireRequest) -> WireResponse:
        self.sent.append(request.url)
        if self.stall:
            await anyio.sleep(3600)
        headers = {k.lower(): v for k, v in spec.signed_headers(_PLATFORM_KEY, PUBLIC_KEY_ID, b"").items()}
        return WireResponse(status_code=204, headers=headers, content=b"")

    async def aclose(self) -> None:
        """Nothing to close."""


def _client(
    merchant_key: rsa.RSAPrivateKey, transport: _Transport, *, deadline: float, certificates: bool
) -> WeChatPayV3Client:
    options: dict[str, Any] = {"transport": transport, "retry": RetryPolicy(attempts=1, deadline=deadline)}
    if certificates:
        options["platform_certificates"] = True
    else:
        options["wechatpay_public_key"] = spec.public_pem(_PLATFORM_KEY)
        options["wechatpay_public_key_id"] = PUBLIC_KEY_ID
    return WeChatPayV3Client(MCHID, spec.private_pem(merchant_key), MERCHANT_SERIAL, APIV3_KEY, **options)


async def test_public_key_mode_attempts_run_under_the_transport_bound_alone(
    anyio_backend: str, merchant_key: rsa.RSAPrivateKey, scopes: list[float]
) -> None:
    transport = _Transport(bound=30.0)
    async with _client(merchant_key, transport, deadline=60, certificates=False) as client:
        for order in ("O1", "O2"):
            await client.close_order(order)
    assert len(transport.sent) == 2
    assert scopes == []


async def test_a_stalling_public_key_mode_attempt_is_abandoned_at_the_deadline(
    anyio_backend: str, merchant_key: rsa.RSAPrivateKey
) -> None:
    # The bound (plus the margin) does not fit in the deadline: the scope is kept, and a transport
    # that hangs after all is abandoned when the deadline passes.
    transport = _Transport(bound=0.01, stall=True)
    async with _client(merchant_key, transport, deadline=0.3, certificates=False) as client:
        with anyio.fail_after(30), pytest.raises(PaykitError, match="deadline"):
            await client.close_order("O1")
    assert len(transport.sent) == 1


async def test_a_stalling_certificate_download_is_abandoned_at_the_deadline(
    anyio_backend: str, merchant_key: rsa.RSAPrivateKey, scopes: list[float]
) -> None:
    # The transport's bound fits well within the deadline, but the attempt starts with a download
    # of the platform certificates: the exchange states no bound, so the scope stays and cuts the
    # stalling download off at the deadline.
    transport = _Transport(bound=0.01, stall=True)
    async with _client(merchant_key, transport, deadline=1.2, certificates=True) as client:
        with anyio.fail_after(30), pytest.raises(PaykitError, match="deadline"):
            await client.close_order("O1")
    assert [url.rsplit("/", 1)[-1] for url in transport.sent] == ["certificates"]
    assert len(scopes) == 1
