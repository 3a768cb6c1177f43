"""No key, secret or derived key ever sits in an exception (issue 12, finding 3).

A lone surrogate used to reach the signer and raise ``UnicodeEncodeError`` whose args held the
keyed string (``'EFTSECRET…x=\\ud800'``, ``'…&key=PAYJSKEY…'``). Every signer, verifier and
parser is swept with bad input here; whatever is raised must be a ``PaykitError`` and neither its
repr, str, args, attributes nor anything in its ``__cause__``/``__context__`` chain may hold a
secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import (
    EftPayClient,
    KeyedHmacSha256Signer,
    KeyedMd5Signer,
    PayJSClient,
    PaykitError,
    PrefixedSha256Signer,
    ValidationError,
    WeChatPayClient,
)
from paykit_async.pipeline.core import Operation
from paykit_async.signing import is_php_empty
from paykit_async.transport.wire import WireResponse

from .support import (
    EFT_SECRET,
    EFT_UCK,
    HOSTILE,
    PAYJS_KEY,
    PAYJS_MCHID,
    SECRETS,
    WECHAT_APPID,
    WECHAT_KEY,
    WECHAT_MCH_ID,
    assert_no_secret,
)

# The AES key of WeChat notifications is derived from the API key and just as secret.
ALL_SECRETS = (*SECRETS, hashlib.md5(WECHAT_KEY.encode()).hexdigest())

SIGNERS = {
    "payjs-md5": KeyedMd5Signer(key=PAYJS_KEY, is_empty=is_php_empty),
    "wechat-md5": KeyedMd5Signer(key=WECHAT_KEY),
    "wechat-hmac": KeyedHmacSha256Signer(key=WECHAT_KEY),
    "eftpay-sha256": PrefixedSha256Signer(secret=EFT_SECRET),
}

PAYJS = PayJSClient(PAYJS_MCHID, PAYJS_KEY, base_url="http://127.0.0.1:9")
EFTPAY = EftPayClient(EFT_UCK, EFT_SECRET, base_url="http://127.0.0.1:9")
WECHAT = WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, base_url="http://127.0.0.1:9")


def _raised(call: Callable[[], object]) -> BaseException | None:
    try:
        call()
    except BaseException as error:
        return error
    return None


def _check(error: BaseException | None) -> None:
    if error is None:
        return
    assert isinstance(error, PaykitError), f"foreign exception {type(error).__name__}: {error!r}"
    assert_no_secret(error, ALL_SECRETS)


@pytest.mark.parametrize("name", sorted(SIGNERS))
@pytest.mark.parametrize(
    "fields",
    [{"x": "\ud800"}, {"\udc00": "x"}, {"x": "a", 1: "b"}, {"a": ["\ud800"]}, {"a": {"b": "\udfff"}}],
    ids=["value", "name", "mixed-names", "nested-list", "nested-map"],
)
def test_the_issue_reproducers_leak_nothing(name: str, fields: dict[Any, Any]) -> None:
    signer = SIGNERS[name]
    error = _raised(lambda: signer.sign(fields))
    assert isinstance(error, ValidationError)
    _check(error)
    assert signer.verify(fields, "A" * 64) is False  # unencodable input never verifies


def test_the_eftpay_and_payjs_notification_reproducers_leak_nothing() -> None:
    for call in (
        lambda: EFTPAY.parse_notification({"x": "\ud800", "sign": "aa"}),
        lambda: EFTPAY.parse_notification(b'{"x":"\\ud800","sign":"aa"}'),
        lambda: PAYJS.parse_notification({"x": "\ud800", "sign": "aa"}),
        lambda: PAYJS.parse_notification("x=\ud800&sign=aa"),
    ):
        error = _raised(call)
        assert error is not None
        _check(error)


@pytest.mark.parametrize(
    "make",
    [
        lambda: PayJSClient(PAYJS_MCHID, PAYJS_KEY + "\ud800"),
        lambda: EftPayClient(EFT_UCK, EFT_SECRET + "\ud800", base_url="https://e.example"),
        lambda: WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY + "\ud800"),
        lambda: KeyedMd5Signer(key=PAYJS_KEY + "\udc00"),
        lambda: PrefixedSha256Signer(secret=EFT_SECRET + "\udc00"),
        lambda: KeyedHmacSha256Signer(key=WECHAT_KEY + "\udc00"),
    ],
)
def test_an_unencodable_key_is_refused_without_being_shown(make: Callable[[], object]) -> None:
    error = _raised(make)
    assert isinstance(error, ValidationError)
    _check(error)


_TEXT = st.text(max_size=12)  # surrogates included
_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(), _TEXT, st.decimals(), st.floats(), st.binary(max_size=6)
)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)
_FIELDS = st.dictionaries(st.one_of(_TEXT, st.integers()), _VALUE, max_size=6)


@HOSTILE
@given(fields=_FIELDS, signature=st.one_of(_TEXT, st.just("0" * 32)))
def test_signers_raise_only_paykit_errors_without_secrets(fields: dict[Any, Any], signature: str) -> None:
    for signer in SIGNERS.values():
        _check(_raised(lambda s=signer: s.sign(fields)))  # type: ignore[misc]
        _check(_raised(lambda s=signer: s.verify(fields, signature)))  # type: ignore[misc]


_BODY = st.one_of(
    st.binary(max_size=512),
    _TEXT,
    st.dictionaries(st.one_of(_TEXT, st.integers()), _VALUE, max_size=6),
    _SCALAR,
)


@HOSTILE
@given(body=_BODY)
def test_notification_parsers_raise_only_paykit_errors_without_secrets(body: object) -> None:
    for parse in (PAYJS.parse_notification, EFTPAY.parse_notification, WECHAT.parse_refund_notification):
        _check(_raised(lambda p=parse: p(body)))  # type: ignore[misc]


def _json_body(fields: dict[Any, Any]) -> bytes:
    import json

    return json.dumps(fields, default=str, ensure_ascii=True).encode()


_REPLY_FIELDS = st.dictionaries(
    st.sampled_from(["return_code", "sign", "return_status", "payjs_order_id", "refund_no", "x", "\ud800"]),
    st.one_of(
        _TEXT, st.integers(), st.sampled_from(["SUCCESS", "FAIL", "00", "1", "0"]), st.decimals(places=2)
    ),
    max_size=6,
)


@HOSTILE
@given(
    fields=_REPLY_FIELDS,
    raw=st.binary(max_size=256),
    use_raw=st.booleans(),
    status=st.sampled_from([200, 400, 500]),
)
def test_reply_decoding_raises_only_paykit_errors_without_secrets(
    fields: dict[Any, Any], raw: bytes, use_raw: bool, status: int
) -> None:
    json_body = raw if use_raw else _json_body(fields)
    xml_body = (
        raw
        if use_raw
        else (
            "<xml>"
            + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if str(k).isidentifier())
            + "</xml>"
        ).encode("utf-8", "surrogatepass")
    )
    operation = Operation(
        provider="x", name="refund", url="https://x/", fields={"refund_no": "R1"}, refund_no_field="refund_no"
    )
    for client, body in ((PAYJS, json_body), (EFTPAY, json_body), (WECHAT, xml_body)):
        response = WireResponse(status_code=status, content=body)
        _check(_raised(lambda c=client, r=response: c.dialect.decode(operation, r)))  # type: ignore[misc]


def test_decimal_values_are_signed_without_error() -> None:
    # A sanity anchor for the sweep: exact numbers are ordinary input.
    assert SIGNERS["payjs-md5"].sign({"a": Decimal("1.50"), "b": 2})
