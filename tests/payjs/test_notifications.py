"""PAYJS payment notifications: verification, typing and the success reply."""

from __future__ import annotations

import pytest

from paykit_async.errors import DecodeError, SignatureError
from paykit_async.providers.payjs import PayJSClient, PaymentNotification

from .payjs_fixtures import KEY, MCHID, ORDER_ID, form_body, notification, php_sign, signed


@pytest.fixture
def client() -> PayJSClient:
    # Parsing notifications needs no connection; the client is never used for I/O here.
    return PayJSClient(MCHID, KEY)


def test_valid_notification_is_typed(client: PayJSClient) -> None:
    fields = signed(notification())
    result = client.parse_notification(form_body(fields))
    assert isinstance(result, PaymentNotification)
    assert result.total_fee == 1250
    assert isinstance(result.total_fee, int)
    assert result.paid
    assert result.payjs_order_id == ORDER_ID
    assert result.attach == "gift card+1"  # a space and a "+" survive form encoding and signing
    assert result.type is None
    assert result.raw == fields


def test_space_and_plus_are_signed_raw(client: PayJSClient) -> None:
    fields = signed(notification())
    body = form_body(fields)
    assert b"attach=gift+card%2B1" in body  # on the wire: form encoding
    client.parse_notification(body)


def test_missing_attach_and_unknown_fields_are_tolerated(client: PayJSClient) -> None:
    fields = signed(notification(attach=None, type="alipay", future_field="x"))
    result = client.parse_notification(form_body(fields))
    assert result.attach is None
    assert result.type == "alipay"
    assert result.raw["future_field"] == "x"


def test_zero_valued_fields_are_dropped_from_the_signature(client: PayJSClient) -> None:
    fields = signed(notification(attach="0", openid=""))
    assert client.parse_notification(form_body(fields)).attach == "0"


@pytest.mark.parametrize(("field", "value"), [("total_fee", "1"), ("attach", "gift card 1"), ("extra", "1")])
def test_tampered_notification_is_refused(client: PayJSClient, field: str, value: str) -> None:
    fields = signed(notification())
    fields[field] = value
    with pytest.raises(SignatureError):
        client.parse_notification(form_body(fields))


def test_unsigned_notification_is_refused(client: PayJSClient) -> None:
    with pytest.raises(SignatureError, match="no signature"):
        client.parse_notification(form_body(notification()))
    with pytest.raises(SignatureError):
        client.parse_notification(form_body({**notification(), "sign": ""}))


def test_notification_signed_with_another_key_is_refused(client: PayJSClient) -> None:
    fields = notification()
    with pytest.raises(SignatureError):
        client.parse_notification(form_body({**fields, "sign": php_sign(fields, "other-key")}))


def test_notification_for_another_merchant_is_refused(client: PayJSClient) -> None:
    with pytest.raises(SignatureError, match="another merchant"):
        client.parse_notification(form_body(signed(notification(mchid="999"))))


def test_fractional_amount_is_a_decode_error(client: PayJSClient) -> None:
    with pytest.raises(DecodeError):
        client.parse_notification(form_body(signed(notification(total_fee="12.50"))))


def test_missing_required_field_is_a_decode_error(client: PayJSClient) -> None:
    with pytest.raises(DecodeError, match="total_fee"):
        client.parse_notification(form_body(signed(notification(total_fee=None))))


def test_not_form_data_is_a_decode_error(client: PayJSClient) -> None:
    with pytest.raises(DecodeError):
        client.parse_notification(b"\xff\xfe")


def test_success_reply() -> None:
    reply = PayJSClient.notification_success_reply()
    assert (reply.status_code, reply.body) == (200, b"success")
    assert reply.headers["content-type"].startswith("text/plain")
