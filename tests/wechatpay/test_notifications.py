"""Refund notifications: AES-256-ECB decryption by the public vector and an independent cipher."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from paykit_async import DecodeError, PaykitError, SignatureError
from paykit_async.providers.wechatpay import (
    NOTIFICATION_SUCCESS_REPLY,
    WeChatPayClient,
    notification_key,
    notification_reply,
)
from paykit_async.providers.wechatpay.notifications import NotificationDecryptor

from .helpers import API_KEY, APPID, MCH_ID, OTHER_KEY, aes_encrypt, from_xml, notification_body

INNER = {
    "transaction_id": "4200000001201407033233368018",
    "out_trade_no": "T1001",
    "refund_id": "50000000012014070300000001",
    "out_refund_no": "R1001",
    "total_fee": "300",
    "settlement_total_fee": "300",
    "refund_fee": "100",
    "settlement_refund_fee": "100",
    "refund_status": "SUCCESS",
    "success_time": "2026-11-22 12:00:00",
    "refund_recv_accout": "支付用户的零钱",
    "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
    "refund_request_source": "API",
}


def client(**kwargs: str) -> WeChatPayClient:
    return WeChatPayClient(APPID, MCH_ID, API_KEY, base_url="http://127.0.0.1:9", **kwargs)  # type: ignore[arg-type]


def test_public_aes_vector() -> None:
    decryptor = NotificationDecryptor(aes_key=b"0123456789abcdef0123456789abcdef", appid="a", mch_id="m")
    assert decryptor.decrypt("pZwJZBLuy3mDACEQT4YTBw==") == b"hello"


def test_notification_key_is_lowercase_hex_md5() -> None:
    assert notification_key(API_KEY) == hashlib.md5(API_KEY.encode()).hexdigest().encode()
    assert notification_key(API_KEY).decode().islower()


def test_independently_encrypted_notification_is_parsed() -> None:
    notification = client().parse_refund_notification(notification_body(INNER))
    assert notification.out_refund_no == "R1001"
    assert (notification.refund_fee, notification.total_fee) == (100, 300)
    assert notification.refund_status == "SUCCESS"
    assert notification.refund_status_known
    assert (notification.appid, notification.mch_id) == (APPID, MCH_ID)
    assert notification.refund_recv_accout == "支付用户的零钱"
    assert notification.success_at == dt.datetime(2026, 11, 22, 4, 0, tzinfo=dt.timezone.utc)
    assert notification.raw["refund_request_source"] == "API"


def test_partner_mode_checks_sub_mch_id() -> None:
    partner = client(sub_mch_id="1900000999")
    ok = notification_body(INNER, sub_mch_id="1900000999")
    assert partner.parse_refund_notification(ok).sub_mch_id == "1900000999"
    with pytest.raises(SignatureError, match="sub-merchant"):
        partner.parse_refund_notification(notification_body(INNER, sub_mch_id="1900000111"))


def test_wrong_key_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        client().parse_refund_notification(notification_body(INNER, api_key=OTHER_KEY))


@pytest.mark.parametrize(("appid", "mch_id"), [("wx0000000000000000", MCH_ID), (APPID, "1900000000")])
def test_another_merchant_is_refused(appid: str, mch_id: str) -> None:
    with pytest.raises(SignatureError, match="another merchant"):
        client().parse_refund_notification(notification_body(INNER, appid=appid, mch_id=mch_id))


def test_tampered_ciphertext_is_refused() -> None:
    data = bytearray(base64.b64decode(from_xml(notification_body(INNER))["req_info"]))
    data[-1] ^= 0x55  # breaks the padding block
    tampered = notification_body(INNER, req_info=base64.b64encode(bytes(data)).decode())
    with pytest.raises(SignatureError):
        client().parse_refund_notification(tampered)


def test_ciphertext_of_non_xml_is_a_signature_error() -> None:
    req_info = aes_encrypt(b"this is not xml at all", notification_key(API_KEY))
    body = notification_body(INNER, req_info=req_info)
    with pytest.raises(SignatureError):
        client().parse_refund_notification(body)


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b"<xml><return_code>SUCCESS</return_code><appid>wx8888888888888888</appid>"
        b"<mch_id>1900000109</mch_id><req_info>!!!notbase64</req_info></xml>",
        b"<xml><return_code>SUCCESS</return_code><appid>wx8888888888888888</appid>"
        b"<mch_id>1900000109</mch_id><req_info>AAAA</req_info></xml>",
        b"<xml><return_code>SUCCESS</return_code><appid>wx8888888888888888</appid>"
        b"<mch_id>1900000109</mch_id></xml>",
        b"<xml><return_code>FAIL</return_code></xml>",
    ],
)
def test_garbled_notification_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        client().parse_refund_notification(body)


def test_incomplete_plaintext_is_refused() -> None:
    inner = {k: v for k, v in INNER.items() if k != "refund_status"}
    with pytest.raises(PaykitError):
        client().parse_refund_notification(notification_body(inner))


def test_reply_bodies() -> None:
    assert NOTIFICATION_SUCCESS_REPLY == (
        b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
    )
    assert WeChatPayClient.notification_reply() == NOTIFICATION_SUCCESS_REPLY
    failure = from_xml(notification_reply(False, "db down"))
    assert failure == {"return_code": "FAIL", "return_msg": "db down"}
