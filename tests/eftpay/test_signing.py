"""eftPay signatures: the spec's vector, independent fixtures, and the empty-field fallback."""

from __future__ import annotations

import hashlib
import logging

import pytest

from paykit_async import SignatureError
from paykit_async.providers.eftpay import ReplyVerifier, SignatureRule

from ..spec_vectors import EFTPAY_FIELDS, EFTPAY_SECRET, EFTPAY_SHA256
from .helpers import SECRET, reference_sign, signed


def test_spec_vector() -> None:
    verifier = ReplyVerifier(secret=EFTPAY_SECRET)
    assert verifier.sign(EFTPAY_FIELDS) == EFTPAY_SHA256


def test_independent_fixture_with_case_sensitive_order_and_unicode() -> None:
    fields = {
        "service": "service.alipay.jsapi.Refund",
        "paytype": "Alipay",
        "payType": "x",
        "pay_scene": "y",
        "payment_type": "ALIPAYHK",
        "refund_desc": "test测试退款",
        "total_fee": "10.01",
        "tid": "0",
    }
    # Written out by hand: ASCII order puts payType < pay_scene < payment_type < paytype,
    # "0" is not empty, the secret is prepended with no separator and there is no "&key=".
    text = (
        "S3cr3t"
        "payType=x&pay_scene=y&payment_type=ALIPAYHK&paytype=Alipay&refund_desc=test测试退款"
        "&service=service.alipay.jsapi.Refund&tid=0&total_fee=10.01"
    )
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert ReplyVerifier(secret="S3cr3t").sign(fields) == expected
    assert reference_sign(fields, "S3cr3t") == expected


def test_verify_accepts_the_non_empty_rule_and_ignores_hex_case() -> None:
    fields = {"return_status": "00", "return_char": "", "trade_status": "TRADE_CLOSED"}
    reply = signed(fields)
    verifier = ReplyVerifier(secret=SECRET)
    assert verifier.verify(reply) is SignatureRule.NON_EMPTY
    assert verifier.verify({**reply, "sign": reply["sign"].upper()}) is SignatureRule.NON_EMPTY


def test_verify_falls_back_to_all_fields_and_logs_the_rule(caplog: pytest.LogCaptureFixture) -> None:
    fields = {"return_status": "00", "return_char": "", "trade_status": "TRADE_CLOSED"}
    reply = signed(fields, keep_empty=True)
    assert reply["sign"] != reference_sign(fields)  # the two rules really differ here
    with caplog.at_level(logging.DEBUG, logger="paykit_async.eftpay"):
        rule = ReplyVerifier(secret=SECRET).verify(reply)
    assert rule is SignatureRule.ALL_FIELDS
    assert "all_fields" in caplog.text


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda r: {**r, "trade_status": "TRADE_FAIL"}, id="changed-value"),
        pytest.param(lambda r: {**r, "extra": "1"}, id="added-field"),
        pytest.param(lambda r: {k: v for k, v in r.items() if k != "return_char"}, id="dropped-empty-field"),
        pytest.param(lambda r: {**r, "sign": reference_sign(r, "wrong-secret")}, id="other-secret"),
        pytest.param(lambda r: {**r, "sign": "é" * 64}, id="non-ascii-sign"),
    ],
)
def test_verify_rejects_tampering(tamper: object) -> None:
    reply = signed(
        {"return_status": "00", "return_char": "", "trade_status": "TRADE_CLOSED"}, keep_empty=True
    )
    assert callable(tamper)
    with pytest.raises(SignatureError):
        ReplyVerifier(secret=SECRET).verify(tamper(reply))


@pytest.mark.parametrize("sign", [None, "", 123])
def test_missing_sign_is_a_signature_error(sign: object) -> None:
    fields: dict[str, object] = {"return_status": "00"}
    if sign is not None:
        fields["sign"] = sign
    with pytest.raises(SignatureError, match="no sign"):
        ReplyVerifier(secret=SECRET).verify(fields)


def test_secret_is_never_shown() -> None:
    verifier = ReplyVerifier(secret=SECRET)
    assert SECRET not in repr(verifier)
    with pytest.raises(SignatureError) as info:
        verifier.verify({"a": "1", "sign": "00"})
    assert SECRET not in str(info.value)
