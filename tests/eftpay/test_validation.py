"""Amounts, wallet types and field limits are refused with ValidationError before any I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from paykit_async import ValidationError
from paykit_async.providers.eftpay.amounts import format_amount
from paykit_async.providers.eftpay.fields import (
    check_identifier,
    check_notify_url,
    check_pay_type,
    check_text,
)


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (Decimal("0.01"), "0.01"),
        (Decimal("10.5"), "10.5"),
        (Decimal("0.10"), "0.10"),
        (Decimal("1.000"), "1.00"),
        (Decimal("1E+2"), "100"),
        (Decimal("12345.67"), "12345.67"),
        (Decimal("99999999"), "99999999"),
        (10, "10"),
        ("10.01", "10.01"),
    ],
)
def test_amounts_are_sent_as_plain_strings(value: object, sent: str) -> None:
    assert format_amount(value, field="total_fee") == sent


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.01, "not float"),
        (1.0, "not float"),
        (True, "not bool"),
        (None, "not NoneType"),
        (Decimal("0.001"), "2 decimal places"),
        (Decimal("1.005"), "2 decimal places"),
        ("1.001", "2 decimal places"),
        (Decimal("123456.78"), "8 characters"),
        (Decimal("1E+30"), "8 characters"),
        (10**9, "8 characters"),
        (Decimal("-1"), "positive"),
        (-5, "positive"),
        (Decimal("0"), "positive"),
        (Decimal("0.00"), "positive"),
        (0, "positive"),
        ("-1", "positive decimal"),
        ("1e2", "positive decimal"),
        (" 1", "positive decimal"),
        ("", "positive decimal"),
        (Decimal("NaN"), "finite"),
        (Decimal("Infinity"), "finite"),
    ],
)
def test_bad_amounts_are_refused(value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as info:
        format_amount(value, field="transaction_amount")
    assert info.value.field == "transaction_amount"


@pytest.mark.parametrize(
    ("paytype", "payment_type"),
    [("WeChat", "WECHATCN"), ("WeChat", "WECHATHK"), ("Alipay", "ALIPAYCN"), ("Alipay", "ALIPAYHK")],
)
def test_consistent_wallets_pass(paytype: str, payment_type: str) -> None:
    check_pay_type(paytype, payment_type)


@pytest.mark.parametrize(
    ("paytype", "payment_type", "field"),
    [
        ("wechat", "WECHATCN", "paytype"),
        ("UnionPay", "WECHATCN", "paytype"),
        (None, "WECHATCN", "paytype"),
        ("WeChat", "ALIPAYCN", "payment_type"),
        ("Alipay", "WECHATHK", "payment_type"),
        ("WeChat", "wechatcn", "payment_type"),
    ],
)
def test_inconsistent_wallets_are_refused(paytype: object, payment_type: object, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        check_pay_type(paytype, payment_type)
    assert info.value.field == field


def test_identifier_limits() -> None:
    assert check_identifier("x" * 28, field="refund_no", max_chars=28) == "x" * 28
    for bad in ("x" * 29, "", "a b", "a&b", "a=b", "退款", 5):
        with pytest.raises(ValidationError):
            check_identifier(bad, field="refund_no", max_chars=28)


def test_text_and_url_limits() -> None:
    assert check_text("测" * 256, field="refund_desc", max_chars=256) == "测" * 256
    for bad in ("测" * 257, "", "a\nb"):
        with pytest.raises(ValidationError):
            check_text(bad, field="refund_desc", max_chars=256)
    url = "https://shop.example/notify/" + "a" * (240 - 28)
    assert check_notify_url(url) == url
    for bad in (url + "a", "ftp://x/y", "/notify", "https://a b/"):
        with pytest.raises(ValidationError):
            check_notify_url(bad)
