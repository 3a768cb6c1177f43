"""A secret given where a path or a URL's host belongs is never echoed back.

A careless operator puts ``openssl pkcs12 -nodes`` output (``Bag Attributes`` lines, then the
PEM) in ``PAYKIT_WECHATPAY_V3_PRIVATE_KEY``, a key's PEM text in ``key_file``, base64 of the
``.p12`` in ``p12_file``; the loaders took each for a path and their errors said
``cannot read '<the whole private key>'``. A Redis password with an unescaped ``/``, ``#`` or
``@`` (``redis://:s3cr/et@host:6379/0``) was split by the URL parsers into a port or database
number that their ``ValueError`` quoted (``invalid literal for int() with base 10: 'et@host…'``),
and ``paykit worker`` printed that, as well as a "where" line built from the same split.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import (
    ClientCertificate,
    IdempotencyStoreError,
    RateLimit,
    RedisStore,
    ValidationError,
    WeChatPayV3Client,
)
from paykit_async.redaction import check_redis_url, path_for_message, url_for_message
from paykit_async.signing.rsa import load_private_key, load_public_key

from ..cli.helpers import run_paykit
from .support import HOSTILE, assert_no_secret

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: What ``openssl pkcs12 -in apiclient_cert.p12 -nodes -nocerts`` prints.
_BAG_PEM = "Bag Attributes\n    localKeyID: 01 00 00 00 \nKey Attributes: <No Attributes>\n" + _PEM
#: Every line of the key's base64: none may appear anywhere.
_KEY_LINES = tuple(line for line in _PEM.splitlines() if not line.startswith("-----"))
_P12_B64 = base64.b64encode(
    pkcs12.serialize_key_and_certificates(
        b"x", _KEY, None, None, serialization.BestAvailableEncryption(b"1900000109")
    )
).decode()
_PASSWORD = "Rp4ss/w0rd#x"
_PASSWORD_PARTS = ("Rp4ss", "w0rd", "ss/w0", "Rp4ss/w0rd")


def _raised(call: object) -> BaseException:
    try:
        call()  # type: ignore[operator]
    except BaseException as error:
        return error
    raise AssertionError("nothing raised")


@pytest.mark.parametrize(
    "call",
    [
        lambda: load_private_key(_BAG_PEM),
        lambda: load_private_key(" \n" + _PEM.replace("\n", "\r\n").replace("-----BEGIN", "x-----BEGIN")),
        lambda: load_private_key("\n".join(_KEY_LINES)),  # the base64 without its armour
        lambda: load_public_key(_BAG_PEM),
        lambda: WeChatPayV3Client("1900000109", _BAG_PEM, "5157F09EFDC096DE", "a" * 32),
        lambda: ClientCertificate.from_pem(__file__, _BAG_PEM),
        lambda: ClientCertificate.from_pem(_PEM, "/nonexistent/apiclient_key.pem"),
        lambda: ClientCertificate.from_pkcs12(_P12_B64, "1900000109"),
    ],
    ids=["bag-pem", "crlf", "bare-base64", "public", "v3-client", "key-file", "cert-file", "p12-b64"],
)
def test_key_material_given_as_a_path_is_not_echoed(call: object) -> None:
    error = _raised(call)
    assert isinstance(error, ValidationError)
    assert "cannot read <" in error.message
    assert "not shown" in error.message
    assert_no_secret(error, (*_KEY_LINES, _P12_B64[100:160]))


def test_a_real_missing_path_is_still_named(tmp_path: Path) -> None:
    missing = tmp_path / "apiclient_key.pem"
    error = _raised(lambda: load_private_key(str(missing)))
    assert isinstance(error, ValidationError)
    assert repr(str(missing)) in error.message


def test_the_cli_does_not_print_a_private_key_given_as_a_path(tmp_path: Path) -> None:
    result = run_paykit(
        "query",
        "--provider",
        "wechatpay-v3",
        "out_refund_no=R1",
        env={
            "PAYKIT_WECHATPAY_V3_MCHID": "1900000109",
            "PAYKIT_WECHATPAY_V3_PRIVATE_KEY": _BAG_PEM,
            "PAYKIT_WECHATPAY_V3_CERTIFICATE_SERIAL_NO": "5157F09EFDC096DE",
            "PAYKIT_WECHATPAY_V3_APIV3_KEY": "a" * 32,
            "PAYKIT_WECHATPAY_V3_WECHATPAY_PUBLIC_KEY": "/nonexistent/pub_key.pem",
            "PAYKIT_WECHATPAY_V3_WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0119000010920261122000000000001",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "private_key" in result.stderr
    for line in _KEY_LINES:
        assert line not in result.stdout + result.stderr


_BAD_URLS = (
    f"redis://:{_PASSWORD}@127.0.0.1:1/0",
    "redis://:Rp4ss/w0rd@127.0.0.1:1",
    "redis://user:Rp4ss@w0rd@127.0.0.1:1/0",
    "rediss://:Rp4ss?w0rd@127.0.0.1:1/0",
)


@pytest.mark.parametrize("url", _BAD_URLS)
def test_a_redis_password_that_parsers_would_split_is_refused_unseen(url: str) -> None:
    for call in (
        lambda: RedisStore(url),
        lambda: RateLimit(per_second=10, storage=url),
        lambda: check_redis_url(url, "url"),
    ):
        error = _raised(call)
        assert isinstance(error, ValidationError)
        assert "percent-encoded" in error.message
        assert_no_secret(error, _PASSWORD_PARTS)


@pytest.mark.parametrize("url", ["redis://:Rp4ssw0rd", "redis://:Rp4ssw0rd@127.0.0.1:w0rd/0"])
@pytest.mark.anyio
async def test_a_redis_url_the_client_cannot_parse_is_a_store_error_without_the_password(url: str) -> None:
    store = RedisStore(url, timeout=1)
    try:
        with pytest.raises(IdempotencyStoreError) as caught:
            await store.get("k")
    finally:
        await store.aclose()
    assert_no_secret(caught.value, ("Rp4ssw0rd", "w0rd"))


@pytest.mark.parametrize("command", ["worker", "enqueue", "status"])
@pytest.mark.parametrize("url", [*_BAD_URLS, "redis://:Rp4ssw0rd"])
def test_paykit_commands_do_not_print_a_redis_password(tmp_path: Path, command: str, url: str) -> None:
    config = tmp_path / "paykit.toml"
    config.write_text('[payjs]\nmchid = "1"\nkey = "k"\nbase_url = "http://127.0.0.1:1"\nrate_limit = 5\n')
    rows = tmp_path / "rows.csv"
    rows.write_text("payjs_order_id,idempotency_key\nP1,K1\n")
    arguments = {
        "worker": ("worker", "--config", config, "--burst"),
        "enqueue": ("refunds", "enqueue", rows, "-p", "payjs", "--config", config),
        "status": ("refunds", "status", "--batch-id", "b"),
    }[command]
    result = run_paykit(*arguments, "--redis", url, timeout=60)
    assert result.returncode == 2, result.stderr
    for part in ("Rp4ss", "w0rd"):
        assert part not in result.stdout + result.stderr, result.stderr


@HOSTILE
@given(
    password=st.text(min_size=1).map(lambda text: "PW" + text),
    host=st.sampled_from(["127.0.0.1", "redis.example", "[::1]", ""]),
    tail=st.sampled_from(["", ":6379", ":6379/0", "/3?socket_timeout=1", ":6379/0#x"]),
    user=st.sampled_from(["", "default", "PWuser"]),
)
def test_url_for_message_never_shows_user_info(password: str, host: str, tail: str, user: str) -> None:
    url = f"redis://{user}:{password}@{host}{tail}"
    shown = url_for_message(url)
    assert "PW" not in shown
    assert shown.startswith("redis://")


@HOSTILE
@given(text=st.text())
def test_path_for_message_never_raises_and_hides_what_is_not_a_path(text: str) -> None:
    shown = path_for_message(text)
    if "-----" in text or "\n" in text or len(text) > 512:
        assert text not in shown or not text
    assert url_for_message(text) is not None


@pytest.mark.anyio
async def test_a_rate_limit_url_the_client_cannot_parse_fails_without_the_password() -> None:
    from paykit_async import PayJSClient

    client = PayJSClient(
        "1",
        "k",
        base_url="http://127.0.0.1:1",
        rate_limit=RateLimit(per_second=5, storage="redis://:Rp4ssw0rd"),
    )
    async with client:
        error = await _raised_async(client.refund(payjs_order_id="P1", idempotency_key="K1"))
    assert isinstance(error, ValidationError)
    assert_no_secret(error, ("Rp4ssw0rd",))


async def _raised_async(awaitable: Any) -> BaseException:
    try:
        await awaitable
    except BaseException as error:
        return error
    raise AssertionError("nothing raised")
