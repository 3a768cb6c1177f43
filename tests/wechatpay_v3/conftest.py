"""Fixtures for the v3 tests: merchant keys and a real local TLS reference server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from paykit_async import RetryPolicy, WeChatPayV3Client
from tests.servers import TLSFiles, serve_asgi

from . import spec
from .reference_server import Certificate, ReferenceWeChatPayV3, make_certificate

MCHID = "1900000109"
SUB_MCHID = "1900000001"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
APIV3_KEY = "v3SecretKeyOf32CharactersExactly"
PUBLIC_KEY_ID = "PUB_KEY_ID_0119000010920261122000000000001"

#: Fast retries for tests (the defaults wait up to seconds).
FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.005, max_retry_after=0.01, deadline=10)


@pytest.fixture(scope="session")
def merchant_key() -> rsa.RSAPrivateKey:
    return spec.new_key()


@pytest.fixture(scope="session")
def first_certificate() -> Certificate:
    return make_certificate(0x3F2A9C11DEADBEEF)


@attrs.frozen(kw_only=True)
class V3Server:
    """A running reference server and how to make clients for it."""

    base_url: str
    server: ReferenceWeChatPayV3
    tls: TLSFiles
    merchant_key: rsa.RSAPrivateKey

    def client(self, **options: Any) -> WeChatPayV3Client:
        kwargs: dict[str, Any] = {"base_url": self.base_url, "ca_file": self.tls.ca_file, "retry": FAST_RETRY}
        server = self.server
        if server.public_key is not None and "wechatpay_public_key" not in options:
            kwargs["wechatpay_public_key"] = spec.public_pem(server.public_key)
            kwargs["wechatpay_public_key_id"] = server.public_key_id
        if server.sub_mchid is not None:
            kwargs["sub_mchid"] = server.sub_mchid
        kwargs.update(options)
        return WeChatPayV3Client(
            MCHID, spec.private_pem(self.merchant_key), MERCHANT_SERIAL, APIV3_KEY, **kwargs
        )


ServerFactory = Callable[..., V3Server]


@pytest.fixture
def v3_server(
    tls_files: TLSFiles, merchant_key: rsa.RSAPrivateKey, first_certificate: Certificate
) -> Iterator[ServerFactory]:
    """Call it to start a reference server over TLS: ``v3_server(mode="public_key")``, or
    ``mode="certificate"`` / ``"both"``, ``sub_mchid=...``. Stopped after the test."""
    stack: list[Any] = []

    def start(*, mode: str = "public_key", sub_mchid: str | None = None) -> V3Server:
        server = ReferenceWeChatPayV3(
            mchid=MCHID,
            merchant_serial=MERCHANT_SERIAL,
            merchant_public_key=merchant_key.public_key(),
            apiv3_key=APIV3_KEY.encode(),
            public_key_id=PUBLIC_KEY_ID if mode in ("public_key", "both") else None,
            certificates=(first_certificate,) if mode in ("certificate", "both") else (),
            sub_mchid=sub_mchid,
        )
        context = serve_asgi(server, tls=tls_files, require_client_cert=False)
        base_url = context.__enter__()
        stack.append(context)
        return V3Server(base_url=base_url, server=server, tls=tls_files, merchant_key=merchant_key)

    yield start
    for context in reversed(stack):
        context.__exit__(None, None, None)
