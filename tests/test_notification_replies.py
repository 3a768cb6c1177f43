"""One notification-reply shape across the providers: status, content type and exact body."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import xmltodict

from paykit_async import EftPayClient, NotificationReply, PayJSClient, WeChatPayClient

WECHAT_SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
)


def _clients() -> tuple[WeChatPayClient, PayJSClient, EftPayClient]:
    wechat = WeChatPayClient("wx2421b1c4370ec43b", "10000100", "k" * 32, base_url="http://127.0.0.1:9")
    payjs = PayJSClient("1234567890", "payjs-key", base_url="http://127.0.0.1:9")
    eftpay = EftPayClient("12345678", "eft-secret", base_url="http://127.0.0.1:9")
    return wechat, payjs, eftpay


def test_every_client_answers_with_a_notification_reply() -> None:
    for client in _clients():
        success = client.notification_success_reply()
        failure = client.notification_failure_reply()
        assert isinstance(success, NotificationReply)
        assert isinstance(failure, NotificationReply)
        assert success.status_code == 200
        assert success.body
        assert success.body != failure.body


def test_wechat_replies_are_the_exact_xml_wechat_expects() -> None:
    wechat, _, _ = _clients()
    success = wechat.notification_success_reply()
    assert success.body == WECHAT_SUCCESS == wechat.notification_reply()
    assert success.content_type.startswith("text/xml")
    failure = wechat.notification_failure_reply("handler failed")
    assert failure.status_code == 200  # WeChat reads return_code, not the status
    assert xmltodict.parse(failure.body)["xml"] == {"return_code": "FAIL", "return_msg": "handler failed"}


def test_payjs_replies_are_200_success_or_a_redelivery() -> None:
    _, payjs, _ = _clients()
    assert payjs.notification_success_reply().body == b"success"
    failure = payjs.notification_failure_reply("the reason stays here")
    assert failure.status_code == 500
    assert b"reason" not in failure.body


def test_eftpay_success_is_the_signed_json_and_failure_asks_for_redelivery() -> None:
    _, _, eftpay = _clients()
    now = datetime(2024, 1, 1, 4, 0, tzinfo=timezone.utc)
    success = eftpay.notification_success_reply(now=now)
    assert success.body == eftpay.notification_reply(now=now)
    assert success.content_type.startswith("application/json")
    document = json.loads(success.body)
    assert document["return_code"] == "success"
    assert document["time"] == "20240101120000"
    failure = eftpay.notification_failure_reply()
    assert failure.status_code == 500
    assert json.loads(failure.body) == {"return_code": "fail"}
