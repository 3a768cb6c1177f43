"""The eftPay dialect: per-attempt UTC+8 time and sign on encode; verify and classify on decode."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from paykit_async import DecodeError, HTTPStatusError, ProviderError, SignatureError
from paykit_async.pipeline import Operation
from paykit_async.providers.eftpay import EftPayDialect, ReplyVerifier, SignatureRule
from paykit_async.providers.eftpay.dialect import eftpay_time
from paykit_async.transport.wire import WireResponse

from .helpers import SECRET, reference_sign, signed

REFUND_FIELDS = {
    "service": "service.wechat.jsapi.Refund",
    "user_confirm_key": "S0003469",
    "transaction_amount": "0.01",
    "total_fee": "10.01",
    "out_trade_no": "T1",
    "paytype": "WeChat",
    "payment_type": "WECHATCN",
    "refund_no": "R1",
}
OPERATION = Operation(
    provider="eftpay",
    name="refund",
    url="https://127.0.0.1/VMP/Servlet/JSAPIService.do",
    fields=REFUND_FIELDS,
    refund_no_field="refund_no",
)


def dialect(now: datetime | None = None) -> EftPayDialect:
    moment = now or datetime(2024, 1, 1, 4, 0, 0, tzinfo=timezone.utc)
    return EftPayDialect(verifier=ReplyVerifier(secret=SECRET), now=lambda: moment)


def reply(fields: dict[str, str], status: int = 200, headers: dict[str, str] | None = None) -> WireResponse:
    return WireResponse(status_code=status, headers=headers or {}, content=json.dumps(fields).encode())


def test_time_is_utc_plus_8() -> None:
    assert eftpay_time(datetime(2024, 1, 1, 4, 0, 0, tzinfo=timezone.utc)) == "20240101120000"
    # Across midnight and from another zone: 2023-12-31 20:30 in UTC-5 is 2024-01-01 09:30 in UTC+8.
    new_york = timezone(timedelta(hours=-5))
    assert eftpay_time(datetime(2023, 12, 31, 20, 30, 5, tzinfo=new_york)) == "20240101093005"
    with pytest.raises(ValueError, match="aware"):
        eftpay_time(datetime(2024, 1, 1))


def test_encode_adds_time_and_an_independently_checkable_sign() -> None:
    request = dialect().encode(OPERATION)
    assert request.method == "POST"
    assert request.url == OPERATION.url
    assert request.headers["content-type"].startswith("application/json")
    body = json.loads(request.content)
    assert body["time"] == "20240101120000"
    assert body["sign"] == reference_sign(body)
    assert {k: v for k, v in body.items() if k not in ("time", "sign")} == REFUND_FIELDS
    assert "time" not in OPERATION.fields  # stamped per attempt, not fixed in the operation


def test_each_attempt_gets_a_fresh_time() -> None:
    moments = iter(
        [
            datetime(2024, 1, 1, 4, 0, 0, tzinfo=timezone.utc),
            datetime(2024, 1, 1, 4, 5, 0, tzinfo=timezone.utc),
        ]
    )
    encoder = EftPayDialect(verifier=ReplyVerifier(secret=SECRET), now=lambda: next(moments))
    first = json.loads(encoder.encode(OPERATION).content)
    second = json.loads(encoder.encode(OPERATION).content)
    assert (first["time"], second["time"]) == ("20240101120000", "20240101120500")
    assert first["refund_no"] == second["refund_no"] == "R1"
    assert first["sign"] != second["sign"]


def test_accepted_reply_is_verified() -> None:
    fields = signed(
        {"return_status": "00", "return_char": "", "trade_status": "TRADE_CLOSED", "refund_no": "R1"}
    )
    outcome = dialect().decode(OPERATION, reply(fields))
    assert outcome.fields == fields
    assert outcome.signature_rule is SignatureRule.NON_EMPTY


def test_json_numbers_and_nulls_are_verified_as_text() -> None:
    # A reply that sends rate as a JSON number and a null: signed over "rate=0.88", null dropped.
    text_fields = {"return_status": "00", "rate": "0.88", "refund_no": "R1"}
    body = {"return_status": "00", "rate": Decimal("0.88"), "refund_no": "R1", "tid": None}
    content = json.dumps({**body, "rate": 0.88, "sign": reference_sign(text_fields)}).encode()
    outcome = dialect().decode(OPERATION, WireResponse(status_code=200, content=content))
    assert outcome.fields["rate"] == "0.88"
    assert outcome.fields["tid"] == ""


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"return_status": "00", "trade_status": "TRADE_CLOSED"}, id="unsigned"),
        pytest.param(
            {**signed({"return_status": "00", "trade_status": "TRADE_FAIL"}), "trade_status": "TRADE_CLOSED"},
            id="tampered",
        ),
    ],
)
def test_bad_signature_on_accepted_reply(fields: dict[str, str]) -> None:
    with pytest.raises(SignatureError) as info:
        dialect().decode(OPERATION, reply(fields))
    assert info.value.outcome_unknown  # the refund may have happened: settle by query


def test_signed_refusal_is_a_definite_provider_error() -> None:
    fields = signed({"return_status": "01", "return_char": "订单不存在"})
    with pytest.raises(ProviderError) as info:
        dialect().decode(OPERATION, reply(fields))
    error = info.value
    assert (error.code, error.message) == ("01", "订单不存在")
    assert not error.retryable  # eftPay documents no transient codes
    assert not error.outcome_unknown
    assert error.raw["return_char"] == "订单不存在"


def test_unsigned_refusal_is_a_provider_error() -> None:
    # eftPay signs replies only "when return_status >= 00": an unsigned refusal is taken as sent.
    with pytest.raises(ProviderError) as info:
        dialect().decode(OPERATION, reply({"return_status": "99", "return_char": "busy"}))
    assert info.value.code == "99"
    assert not info.value.retryable
    assert not info.value.outcome_unknown


def test_forged_refusal_is_a_signature_error() -> None:
    fields = {**signed({"return_status": "01", "return_char": "x"}), "return_char": "y"}
    with pytest.raises(SignatureError):
        dialect().decode(OPERATION, reply(fields))


def test_reply_for_another_refund_is_refused() -> None:
    fields = signed({"return_status": "00", "trade_status": "TRADE_CLOSED", "refund_no": "R2"})
    with pytest.raises(DecodeError, match="R2"):
        dialect().decode(OPERATION, reply(fields))


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(503, {"retry-after": "7"}, True, 7.0), (429, {}, True, None), (404, {}, False, None)],
)
def test_http_status_errors(
    status: int, headers: dict[str, str], retryable: bool, retry_after: float | None
) -> None:
    with pytest.raises(HTTPStatusError) as info:
        dialect().decode(OPERATION, reply({}, status=status, headers=headers))
    assert info.value.status_code == status
    assert info.value.retryable is retryable
    assert info.value.retry_after == retry_after


@pytest.mark.parametrize(
    "content", [b"<html>certificate</html>", b"[1,2]", b'{"return_char": "no status"}', b'{"a": NaN}']
)
def test_undecodable_replies(content: bytes) -> None:
    with pytest.raises(DecodeError):
        dialect().decode(OPERATION, WireResponse(status_code=200, content=content))
