"""Bad input is a ValidationError before any I/O; secrets never show in repr, str or errors."""

from __future__ import annotations

from typing import Any

import pytest

from paykit_async import PaykitError, RetryPolicy, ValidationError
from paykit_async.providers.wechatpay import RefundDetail, RefundGoods, WeChatPayClient

from ..servers import ScriptedServer
from .helpers import API_KEY, APPID, MCH_ID, scripted_client

pytestmark = pytest.mark.anyio

GOOD: dict[str, Any] = {"out_trade_no": "T1001", "total_fee": 300, "refund_fee": 100}


def cases() -> list[tuple[dict[str, Any], str]]:
    return [
        ({"out_trade_no": None}, "out_trade_no"),
        ({"transaction_id": "4200000001201407033233368018"}, "out_trade_no"),
        ({"out_trade_no": "x" * 33}, "out_trade_no"),
        ({"out_trade_no": "T 1"}, "out_trade_no"),
        ({"out_trade_no": "T#1"}, "out_trade_no"),
        ({"out_refund_no": "R" * 65}, "out_refund_no"),
        ({"out_refund_no": ""}, "out_refund_no"),
        ({"out_refund_no": "退款1"}, "out_refund_no"),
        ({"total_fee": True}, "total_fee"),
        ({"total_fee": 3.0}, "total_fee"),
        ({"total_fee": "300"}, "total_fee"),
        ({"refund_fee": 0}, "refund_fee"),
        ({"refund_fee": -1}, "refund_fee"),
        ({"refund_fee": 301}, "refund_fee"),
        ({"refund_fee": False}, "refund_fee"),
        ({"refund_desc": "x" * 81}, "refund_desc"),
        ({"notify_url": "https://e.com/" + "x" * 250}, "notify_url"),
        ({"notify_url": "ftp://e.com/n"}, "notify_url"),
        ({"refund_account": "REFUND_SOURCE_OTHER"}, "refund_account"),
        ({"refund_fee_type": "cny"}, "refund_fee_type"),
        ({"detail": {"goods_detail": []}}, "detail"),
        ({"detail": {"goods_detail": [{"goods_id": "g", "price": 1.5}]}}, "detail"),
        ({"detail": {"goods_detail": [{"goods_id": "g", "price": True}]}}, "detail"),
        ({"detail": {"goods_detail": [{"quantity": 1}]}}, "detail"),
        ({"detail": {"goods_detail": [{"goods_id": "g", "goods_name": "x" * 6000}]}}, "detail"),
        ({"detail": {"goods_detail": [{"goods_id": "g"}], "cost_price": 1.0}}, "detail"),
        ({"detail": "a json string"}, "detail"),
        ({"detail": RefundDetail(goods_detail=[])}, "detail"),
        ({"idempotency_key": ""}, "idempotency_key"),
    ]


@pytest.mark.parametrize(("change", "field"), cases())
async def test_bad_refund_input_is_refused_before_io(
    scripted: ScriptedServer, change: dict[str, Any], field: str
) -> None:
    async with scripted_client(scripted) as client:
        with pytest.raises(ValidationError) as caught:
            await client.refund(**{**GOOD, **change})
    assert caught.value.field == field
    assert scripted.app.requests == []


async def test_typed_detail_is_accepted(scripted: ScriptedServer) -> None:
    detail = RefundDetail(goods_detail=[RefundGoods(goods_id="g", refund_quantity=1, refund_amount=100)])
    from paykit_async.providers.wechatpay.requests import detail_json

    expected = '{"goods_detail":[{"goods_id":"g","refund_quantity":1,"refund_amount":100}]}'
    assert detail_json(detail) == expected


async def test_refund_without_certificate_is_refused_before_io(scripted: ScriptedServer) -> None:
    async with WeChatPayClient(
        APPID, MCH_ID, API_KEY, base_url=scripted.base_url, ca_file=scripted.tls.ca_file
    ) as client:
        with pytest.raises(ValidationError, match="certificate") as caught:
            await client.refund(**GOOD)
    assert caught.value.field == "cert"
    assert scripted.app.requests == []


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "out_refund_no"),
        ({"out_refund_no": "R1", "refund_id": "5000"}, "out_refund_no"),
        ({"out_refund_no": "R 1"}, "out_refund_no"),
        ({"out_trade_no": "T1", "offset": -1}, "offset"),
        ({"out_trade_no": "T1", "offset": True}, "offset"),
    ],
)
async def test_bad_query_input(scripted: ScriptedServer, kwargs: dict[str, Any], field: str) -> None:
    async with WeChatPayClient(APPID, MCH_ID, API_KEY, base_url=scripted.base_url) as client:
        with pytest.raises(ValidationError) as caught:
            await client.query_refund(**kwargs)
        with pytest.raises(ValidationError):
            await client.close_order(out_trade_no="x" * 33)
    assert caught.value.field == field
    assert scripted.app.requests == []


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("", MCH_ID, API_KEY), {}, "appid"),
        ((APPID, "19 00", API_KEY), {}, "mch_id"),
        ((APPID, MCH_ID, ""), {}, "api_key"),
        ((APPID, MCH_ID, API_KEY), {"sign_type": "SHA1"}, "sign_type"),
        ((APPID, MCH_ID, API_KEY), {"sub_appid": "wx9"}, "sub_appid"),
        ((APPID, MCH_ID, API_KEY), {"backup_base_url": "http://api2"}, "backup_base_url"),
        ((APPID, MCH_ID, API_KEY), {"cert": "apiclient_cert.pem"}, "cert"),
        ((APPID, MCH_ID, API_KEY), {"base_url": "api.mch.weixin.qq.com"}, "base_url"),
    ],
)
def test_bad_configuration(args: tuple[str, str, str], kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WeChatPayClient(*args, **kwargs)
    assert caught.value.field == field
    assert API_KEY not in str(caught.value)


async def test_secrets_never_appear_in_repr_or_errors(scripted: ScriptedServer) -> None:
    client = WeChatPayClient(
        APPID,
        MCH_ID,
        API_KEY,
        sign_type="HMAC-SHA256",
        cert=scripted.tls.client_certificate(),
        base_url=scripted.base_url,
        ca_file=scripted.tls.ca_file,
        retry=RetryPolicy.none(),
    )
    texts = [repr(client), str(client), repr(client.dialect), repr(client.pipeline.middlewares)]
    texts.append(repr(vars(client)))
    errors: list[PaykitError] = []
    fail = b"<xml><return_code>FAIL</return_code><return_msg>bad</return_msg></xml>"
    scripted.app.reply_with(200, {}, fail)
    async with client:
        for call in (
            client.refund(out_trade_no="T1", total_fee=1, refund_fee=2),
            client.close_order(out_trade_no="T1"),
            client.query_refund(out_refund_no="R1"),  # no scripted reply left: HTTP 404
        ):
            with pytest.raises(PaykitError) as caught:
                await call
            errors.append(caught.value)
    texts += [repr(e) for e in errors] + [str(e) for e in errors]
    texts += [repr(getattr(e, "raw", "")) for e in errors]
    for text in texts:
        assert API_KEY not in text
        assert API_KEY.upper() not in text
    assert "WeChatPayClient" in repr(client)
    assert MCH_ID in repr(client)
