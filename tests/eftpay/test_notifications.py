"""Refund notifications: verified (both signature rules), typed, and answered with a signed reply."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from paykit_async import DecodeError, SignatureError
from paykit_async.providers.eftpay import EftPayClient, SignatureRule, TradeStatus

from .helpers import SECRET, USER_CONFIRM_KEY, reference_sign, signed

NOTIFICATION = {
    "trade_type": "REFUND",
    "out_trade_no": "rrn_1686280006045",
    "refund_no": "201901010011",
    "trade_status": "TRADE_REFUND",
    "transaction_amount": "0.01",
    "total_fee": "10.01",
    "paytype": "WeChat",
    "payment_type": "WECHATHK",
    "user_confirm_key": USER_CONFIRM_KEY,
    "eftpay_trade_no": "EFT0001",
    "refund_trade_no": "",
    "time": "20230609110646",
}


def client() -> EftPayClient:
    # No request is sent: only the signing secret is used.
    return EftPayClient(USER_CONFIRM_KEY, SECRET, base_url="https://vmp.eftpay.com.cn/VMP")


@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_parse_refund_notification(form: str) -> None:
    fields = signed(NOTIFICATION)
    text = json.dumps(fields, ensure_ascii=False)
    bodies: dict[str, bytes | str | dict[str, str]] = {"bytes": text.encode(), "str": text, "dict": fields}
    body = bodies[form]
    notification = client().parse_notification(body)
    assert notification.trade_type == "REFUND"
    assert notification.refund_no == "201901010011"
    assert notification.trade_status == TradeStatus.TRADE_REFUND
    assert notification.transaction_amount == Decimal("0.01")
    assert notification.total_fee == Decimal("10.01")
    assert notification.refund_trade_no is None  # empty becomes None; raw keeps ""
    assert notification.raw["refund_trade_no"] == ""
    assert notification.signature_rule is SignatureRule.NON_EMPTY


def test_notification_signed_over_all_fields() -> None:
    notification = client().parse_notification(signed(NOTIFICATION, keep_empty=True))
    assert notification.signature_rule is SignatureRule.ALL_FIELDS


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({**signed(NOTIFICATION), "transaction_amount": "10.01"}, id="amount-changed"),
        pytest.param({**signed(NOTIFICATION), "trade_status": "TRADE_CLOSED"}, id="status-changed"),
        pytest.param(NOTIFICATION, id="unsigned"),
        pytest.param({**NOTIFICATION, "sign": reference_sign(NOTIFICATION, "other")}, id="other-secret"),
    ],
)
def test_forged_notifications_are_refused(body: dict[str, str]) -> None:
    with pytest.raises(SignatureError):
        client().parse_notification(body)


def test_unknown_status_in_notification() -> None:
    notification = client().parse_notification(signed({**NOTIFICATION, "trade_status": "TRADE_HELD"}))
    assert notification.trade_status == "TRADE_HELD"
    assert not notification.trade_status.is_known


@pytest.mark.parametrize("body", [b"not json", b"[]", "<xml/>"])
def test_undecodable_notifications(body: bytes | str) -> None:
    with pytest.raises(DecodeError):
        client().parse_notification(body)


def test_malformed_amount_in_a_signed_notification() -> None:
    with pytest.raises(DecodeError, match=r"not a decimal amount"):
        client().parse_notification(signed({**NOTIFICATION, "total_fee": "ten"}))


def test_notification_reply_is_signed_in_utc_plus_8() -> None:
    reply = json.loads(client().notification_reply(now=datetime(2024, 1, 1, 16, 30, tzinfo=timezone.utc)))
    assert reply == {
        "return_code": "success",
        "time": "20240102003000",
        "sign": reference_sign({"return_code": "success", "time": "20240102003000"}),
    }


def test_notification_reply_uses_the_current_time() -> None:
    reply = json.loads(client().notification_reply())
    assert reply["return_code"] == "success"
    assert len(reply["time"]) == 14
    assert reply["sign"] == reference_sign(reply)


def test_a_signed_notification_for_another_merchant_is_refused() -> None:
    # Signed with this merchant's secret (a shared or leaked secret), but naming another merchant.
    fields = signed({**NOTIFICATION, "user_confirm_key": "OTHER001"})
    with pytest.raises(SignatureError, match="another merchant"):
        client().parse_notification(json.dumps(fields).encode())
    # A notification that names no merchant is checked by its signature alone.
    without = signed({k: v for k, v in NOTIFICATION.items() if k != "user_confirm_key"})
    assert client().parse_notification(json.dumps(without).encode()).refund_no == "201901010011"
