"""PAYJS wire rules without a network: encoding, verification and classification of replies."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qs

import pytest

from paykit_async.errors import DecodeError, HTTPStatusError, ProviderError, SignatureError
from paykit_async.pipeline.core import Operation
from paykit_async.providers.payjs import FAIL, PayJSDialect, UnsignedReplyError, make_signer
from paykit_async.transport.wire import WireResponse

from .payjs_fixtures import KEY, MCHID, ORDER_ID, check_reply, json_body, php_sign, refund_reply, signed

DIALECT = PayJSDialect(signer=make_signer(KEY))


def operation(name: str = "refund", order_id: str = ORDER_ID) -> Operation:
    return Operation(
        provider="payjs",
        name=name,
        url=f"https://payjs.example/api/{name}",
        fields={"mchid": MCHID, "payjs_order_id": order_id},
    )


def decode(
    fields: dict[str, Any] | bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> Any:
    body = fields if isinstance(fields, bytes) else json_body(fields)
    return DIALECT.decode(operation(), WireResponse(status_code=status, headers=headers or {}, content=body))


def test_encode_is_a_signed_form_post() -> None:
    request = DIALECT.encode(operation())
    assert request.method == "POST"
    assert request.url == "https://payjs.example/api/refund"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    sent = {k: v[0] for k, v in parse_qs(request.content.decode("ascii"), strict_parsing=True).items()}
    expected_sign = (
        hashlib.md5(f"mchid={MCHID}&payjs_order_id={ORDER_ID}&key={KEY}".encode()).hexdigest().upper()
    )
    assert sent == {"mchid": MCHID, "payjs_order_id": ORDER_ID, "sign": expected_sign}


def test_encode_is_deterministic_so_retries_resend_the_same_request() -> None:
    assert DIALECT.encode(operation()) == DIALECT.encode(operation())


def test_signed_success_verifies_over_every_field_including_unknown_and_nested() -> None:
    reply = refund_reply(refund=1, new_field="x y+z", jsapi={"appId": "wx1", "package": "prepay_id=p"})
    outcome = decode(reply)
    assert outcome.fields == reply


def test_a_field_added_after_signing_fails_verification() -> None:
    reply = refund_reply()
    reply["injected"] = "1"
    with pytest.raises(SignatureError):
        decode(reply)


@pytest.mark.parametrize(
    ("field", "value"),
    [("return_msg", "退款成功!"), ("payjs_order_id", ORDER_ID[:-1] + "E"), ("refund", 1)],
)
def test_tampered_success_raises_signature_error(field: str, value: object) -> None:
    reply = refund_reply()
    reply[field] = value
    with pytest.raises(SignatureError) as caught:
        decode(reply)
    assert caught.value.outcome_unknown
    assert not caught.value.retryable
    assert not isinstance(caught.value, UnsignedReplyError)


def test_signature_with_another_key_is_refused() -> None:
    fields = {k: v for k, v in refund_reply().items() if k != "sign"}
    with pytest.raises(SignatureError):
        decode({**fields, "sign": php_sign(fields, "not-the-key")})


def test_non_string_sign_is_refused() -> None:
    reply = refund_reply()
    reply["sign"] = 12345
    with pytest.raises(SignatureError):
        decode(reply)


def test_unsigned_success_is_never_a_verified_success() -> None:
    reply = {"return_code": 1, "return_msg": "退款成功", "payjs_order_id": ORDER_ID, "refund": 1}
    with pytest.raises(UnsignedReplyError) as caught:
        decode(reply)
    assert isinstance(caught.value, SignatureError)
    assert caught.value.outcome_unknown
    assert caught.value.raw == reply


def test_unsigned_failure_is_a_provider_error_with_both_messages() -> None:
    with pytest.raises(ProviderError) as caught:
        decode({"return_code": 0, "return_msg": "退款失败", "msg": "未结算金额不足"})
    error = caught.value
    assert error.code == FAIL
    assert error.message == "退款失败 / 未结算金额不足"
    assert not error.retryable
    assert not error.outcome_unknown
    assert error.raw["msg"] == "未结算金额不足"


def test_failure_with_only_one_message() -> None:
    with pytest.raises(ProviderError) as caught:
        decode({"return_code": "0", "return_msg": "订单不存在", "msg": "订单不存在"})
    assert caught.value.message == "订单不存在"


def test_signed_failure_verifies_and_a_tampered_one_is_refused() -> None:
    failure = signed({"return_code": 0, "return_msg": "订单已关闭"})
    with pytest.raises(ProviderError):
        decode(failure)
    failure["return_msg"] = "something else"
    with pytest.raises(SignatureError):
        decode(failure)


def test_http_5xx_is_retryable_with_retry_after() -> None:
    with pytest.raises(HTTPStatusError) as caught:
        decode(b"<html>busy</html>", status=503, headers={"retry-after": "7"})
    error = caught.value
    assert (error.status_code, error.retry_after, error.retryable, error.outcome_unknown) == (
        503,
        7.0,
        True,
        True,
    )
    assert error.body == b"<html>busy</html>"


def test_http_4xx_is_not_retryable() -> None:
    with pytest.raises(HTTPStatusError) as caught:
        decode(b"not found", status=404)
    assert not caught.value.retryable
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    "body",
    [
        b"<html>error</html>",
        b'{"return_code": 1',
        b"[1, 2]",
        b'{"return_msg": "no code"}',
        b'{"return_code": 2}',
        b'{"return_code": true}',
        b'{"return_code": "yes"}',
    ],
)
def test_malformed_replies_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(body)


def test_a_verified_reply_for_another_order_is_refused() -> None:
    with pytest.raises(DecodeError, match="not the requested"):
        decode(refund_reply(order_id="SOMEOTHERORDER"))


def test_check_reply_with_zero_values_verifies() -> None:
    # status=0 and attach="" are dropped from the signed string by PHP's array_filter.
    reply = check_reply(status=0, transaction_id="", paid_time="")
    outcome = DIALECT.decode(operation("check"), WireResponse(status_code=200, content=json_body(reply)))
    assert outcome.fields["status"] == 0
