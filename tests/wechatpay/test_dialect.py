"""Reply classification: signatures, return/result codes, err_code table, HTTP status, HTML."""

from __future__ import annotations

import pytest

from paykit_async import DecodeError, HTTPStatusError, ProviderError, SignatureError
from paykit_async.pipeline.core import Operation
from paykit_async.providers.wechatpay import WeChatPayDialect
from paykit_async.transport.wire import WireResponse

from .helpers import API_KEY, OTHER_KEY, error_reply, md5_sign, signed_reply, to_xml

OP = Operation(provider="wechatpay", name="refund", url="https://x/secapi/pay/refund", fields={})
DIALECT = WeChatPayDialect(api_key=API_KEY)


def decode(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, str]:
    outcome = DIALECT.decode(OP, WireResponse(status_code=status, headers=headers or {}, content=body))
    return dict(outcome.fields)


@pytest.mark.parametrize("hmac_sha256", [False, True])
def test_signed_success_reply_is_accepted(hmac_sha256: bool) -> None:
    fields = decode(signed_reply({"refund_id": "5000"}, hmac_sha256=hmac_sha256))
    assert fields["refund_id"] == "5000"


def test_tampered_reply_is_a_signature_error() -> None:
    body = signed_reply({"refund_fee": "100"}).replace(b"100", b"900")
    with pytest.raises(SignatureError):
        decode(body)


def test_reply_signed_with_another_key_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        decode(signed_reply({"refund_fee": "100"}, key=OTHER_KEY))


def test_unsigned_success_reply_is_a_signature_error() -> None:
    body = to_xml({"return_code": "SUCCESS", "result_code": "SUCCESS", "refund_fee": "100"})
    with pytest.raises(SignatureError, match="no sign"):
        decode(body)


def test_sign_of_odd_length_is_a_signature_error() -> None:
    fields = {"return_code": "SUCCESS", "result_code": "SUCCESS"}
    fields["sign"] = md5_sign(fields)[:31]
    with pytest.raises(SignatureError):
        decode(to_xml(fields))


def test_unsigned_return_code_fail_is_a_provider_error() -> None:
    body = to_xml({"return_code": "FAIL", "return_msg": "签名错误"})
    with pytest.raises(ProviderError) as caught:
        decode(body)
    assert caught.value.code == "FAIL"
    assert caught.value.message == "签名错误"
    assert not caught.value.retryable


def test_fail_reply_with_a_bad_sign_is_a_signature_error() -> None:
    body = to_xml({"return_code": "FAIL", "return_msg": "x", "sign": "0" * 32})
    with pytest.raises(SignatureError):
        decode(body)


@pytest.mark.parametrize(
    ("code", "retryable", "retry_after", "unknown"),
    [
        ("SYSTEMERROR", True, None, True),
        ("BIZERR_NEED_RETRY", True, None, True),
        ("FREQUENCY_LIMITED", True, 10.0, False),
        ("INVALID_REQ_TOO_MUCH", True, 60.0, False),
        ("NOTENOUGH", False, None, False),
        ("TRADE_OVERDUE", False, None, False),
        ("ORDERPAID", False, None, False),
        ("SOME_NEW_CODE", False, None, False),
    ],
)
def test_err_code_table(code: str, retryable: bool, retry_after: float | None, unknown: bool) -> None:
    with pytest.raises(ProviderError) as caught:
        decode(error_reply(code, "描述"))
    error = caught.value
    assert (error.code, error.message) == (code, "描述")
    assert error.retryable is retryable
    assert error.retry_after == retry_after
    assert error.outcome_unknown is unknown
    assert error.raw["err_code"] == code


def test_success_reply_without_result_code_is_refused() -> None:
    fields = {"return_code": "SUCCESS"}
    fields["sign"] = md5_sign(fields)
    with pytest.raises(DecodeError):
        decode(to_xml(fields))


def test_http_status_error_carries_retry_after() -> None:
    with pytest.raises(HTTPStatusError) as caught:
        decode(b"busy", status=503, headers={"retry-after": "7"})
    assert caught.value.status_code == 503
    assert caught.value.retry_after == 7.0
    assert caught.value.retryable


@pytest.mark.parametrize(("status", "unknown"), [(200, True), (400, False)])
def test_html_certificate_page_is_a_decode_error(status: int, unknown: bool) -> None:
    page = b"<html><head><title>400 The SSL certificate error</title></head><body></body></html>"
    with pytest.raises(DecodeError, match="certificate") as caught:
        decode(page, status=status)
    # WeChat's certificate page comes with 400: refused before anything ran. With 200 nothing is
    # certain, so a refund is settled by query rather than reported as failed.
    assert caught.value.outcome_unknown is unknown


def test_billion_laughs_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<xml><return_code>&lol2;</return_code></xml>"
    )
    with pytest.raises(DecodeError, match="DOCTYPE"):
        decode(bomb)


def test_not_xml_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode(b"{json: 1}")


def test_repr_shows_no_key() -> None:
    assert API_KEY not in repr(DIALECT)


def test_reply_about_another_refund_is_refused() -> None:
    refund = Operation(
        provider="wechatpay",
        name="refund",
        url="https://x/secapi/pay/refund",
        fields={"out_refund_no": "R1"},
        refund_no_field="out_refund_no",
    )
    ok = WireResponse(status_code=200, content=signed_reply({"out_refund_no": "R1"}))
    assert DIALECT.decode(refund, ok).fields["out_refund_no"] == "R1"
    other = WireResponse(status_code=200, content=signed_reply({"out_refund_no": "R2"}))
    with pytest.raises(DecodeError, match="R2") as caught:
        DIALECT.decode(refund, other)
    assert caught.value.outcome_unknown
