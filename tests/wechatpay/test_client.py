"""WeChatPayClient against a real local server over mutual TLS (asyncio and trio)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from paykit_async import (
    ClientCertificate,
    DecodeError,
    FakeClock,
    ProviderError,
    RefundOutcomeUnknown,
    RetryPolicy,
    SignatureError,
    TransportError,
    ValidationError,
)
from paykit_async.providers.wechatpay import RefundDetail, RefundGoods, WeChatPayClient

from ..servers import RecordedRequest, Reply, ScriptedServer
from .helpers import (
    API_KEY,
    APPID,
    MCH_ID,
    XML_HEADERS,
    error_reply,
    from_xml,
    hmac_sign,
    md5_sign,
    refund_success_fields,
    signed_reply,
    to_xml,
)

pytestmark = pytest.mark.anyio

Factory = Callable[..., WeChatPayClient]
Script = Callable[[RecordedRequest, dict[str, str]], bytes]


class WeChatServer:
    """Answers each request with the next scripted reply builder, after checking its signature."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.replies: list[Script] = []
        self.bad_signatures = 0
        server.app.respond = self._respond

    def then(self, *builders: Script) -> WeChatServer:
        self.replies.extend(builders)
        return self

    def _respond(self, request: RecordedRequest) -> Reply:
        fields = from_xml(request.body)
        expected = hmac_sign(fields) if fields.get("sign_type") == "HMAC-SHA256" else md5_sign(fields)
        if fields.get("sign") != expected:
            self.bad_signatures += 1
            return 200, XML_HEADERS, to_xml({"return_code": "FAIL", "return_msg": "签名错误"})
        builder = self.replies.pop(0)
        return 200, XML_HEADERS, builder(request, fields)

    @property
    def sent(self) -> list[dict[str, str]]:
        return [from_xml(r.body) for r in self.server.app.requests]

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.server.app.requests]


def refund_ok(**extra: str) -> Script:
    return lambda _request, fields: signed_reply(refund_success_fields(fields, **extra))


def refund_ok_hmac() -> Script:
    return lambda _request, fields: signed_reply(refund_success_fields(fields), hmac_sha256=True)


def fixed(body: bytes) -> Script:
    return lambda _request, _fields: body


def err(code: str) -> Script:
    return fixed(error_reply(code, "描述"))


@pytest.fixture
def wechat(scripted: ScriptedServer) -> WeChatServer:
    return WeChatServer(scripted)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(scripted: ScriptedServer, clock: FakeClock) -> Callable[..., WeChatPayClient]:
    def make(**kwargs: Any) -> WeChatPayClient:
        options: dict[str, Any] = {
            "cert": scripted.tls.client_certificate(),
            "base_url": scripted.base_url,
            "ca_file": scripted.tls.ca_file,
            "retry": RetryPolicy(attempts=3, initial_delay=0.1),
            "clock": clock,
        }
        options.update(kwargs)
        return WeChatPayClient(APPID, MCH_ID, API_KEY, **options)

    return make


async def test_md5_refund_over_mutual_tls(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(refund_ok())
    async with make_client() as client:
        result = await client.refund(
            out_trade_no="T1001", total_fee=300, refund_fee=100, refund_desc="商品已售完"
        )
    assert wechat.paths == ["/secapi/pay/refund"]
    (sent,) = wechat.sent
    assert sent["sign"] == md5_sign(sent)
    assert "sign_type" not in sent
    assert (sent["appid"], sent["mch_id"]) == (APPID, MCH_ID)
    assert (sent["out_trade_no"], sent["total_fee"], sent["refund_fee"]) == ("T1001", "300", "100")
    assert sent["refund_desc"] == "商品已售完"
    assert re.fullmatch(r"[0-9A-Z]{1,64}", sent["out_refund_no"])
    assert "transaction_id" not in sent
    assert "detail" not in sent
    assert result.out_refund_no == sent["out_refund_no"]
    assert (result.refund_fee, result.total_fee) == (100, 300)
    assert result.refund_id == "50000000012014070300000001"
    assert result.attempts == 1
    assert not result.settled_by_query
    assert wechat.server.app.requests[0].headers["content-type"].startswith("text/xml")


async def test_hmac_refund_with_pkcs12_certificate(
    wechat: WeChatServer, make_client: Factory, scripted: ScriptedServer
) -> None:
    wechat.then(refund_ok_hmac())
    cert = ClientCertificate.from_pkcs12(scripted.tls.client_p12_file, scripted.tls.client_p12_password)
    async with make_client(sign_type="HMAC-SHA256", cert=cert) as client:
        result = await client.refund(
            transaction_id="4200000001201407033233368018",
            total_fee=100,
            refund_fee=100,
            out_refund_no="R-2026|001@x*",
            refund_account="REFUND_SOURCE_RECHARGE_FUNDS",
            notify_url="https://example.com/notify",
            refund_fee_type="CNY",
        )
    (sent,) = wechat.sent
    assert sent["sign_type"] == "HMAC-SHA256"
    assert sent["sign"] == hmac_sign(sent)
    assert sent["refund_account"] == "REFUND_SOURCE_RECHARGE_FUNDS"
    assert sent["notify_url"] == "https://example.com/notify"
    assert result.out_refund_no == "R-2026|001@x*"


def _p12_protected_by(scripted: ScriptedServer, path: Path, password: str) -> Path:
    key = serialization.load_pem_private_key(Path(scripted.tls.client_key_file).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    certificate = x509.load_pem_x509_certificate(Path(scripted.tls.client_cert_file).read_bytes())
    encryption = serialization.BestAvailableEncryption(password.encode())
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"apiclient", key, certificate, None, encryption))
    return path


async def test_a_p12_path_opens_with_the_mch_id_as_password(
    wechat: WeChatServer, make_client: Factory, scripted: ScriptedServer, tmp_path: Path
) -> None:
    # WeChat's apiclient_cert.p12 is protected by the merchant id: cert= may just be its path.
    p12 = _p12_protected_by(scripted, tmp_path / "apiclient_cert.p12", MCH_ID)
    wechat.then(refund_ok())
    async with make_client(cert=str(p12)) as client:
        result = await client.refund(out_trade_no="T1001", total_fee=300, refund_fee=100)
    assert result.refund_id
    with pytest.raises(ValidationError) as caught:
        WeChatPayClient(APPID, "1900000110", API_KEY, cert=p12)  # another mch_id: wrong password
    assert caught.value.field == "cert"
    assert "1900000110" not in str(caught.value)


async def test_wechatpy_accepts_our_signature(wechat: WeChatServer, make_client: Factory) -> None:
    from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

    wechat.then(refund_ok(), refund_ok_hmac())
    async with make_client() as client:
        await client.refund(out_trade_no="T1", total_fee=1, refund_fee=1)
    async with make_client(sign_type="HMAC-SHA256") as client:
        await client.refund(out_trade_no="T1", total_fee=1, refund_fee=1)
    md5_sent, hmac_sent = wechat.sent
    unsigned = {k: v for k, v in md5_sent.items() if k != "sign"}
    assert calculate_signature(unsigned, API_KEY) == md5_sent["sign"]
    unsigned = {k: v for k, v in hmac_sent.items() if k != "sign"}
    assert calculate_signature_hmac(unsigned, API_KEY) == hmac_sent["sign"]


@pytest.mark.parametrize("typed", [False, True])
async def test_refundv2_sends_detail_json(wechat: WeChatServer, make_client: Factory, typed: bool) -> None:
    promotion = json.dumps(
        {
            "promotion_detail": [
                {
                    "promotion_id": "109519",
                    "scope": "SINGLE",
                    "type": "DISCOUNT",
                    "amount": 5,
                    "goods_detail": [{"goods_id": "商品编码", "refund_amout": 100}],
                }
            ]
        }
    )
    wechat.then(
        refund_ok(
            promotion_detail=promotion,
            coupon_refund_count="1",
            coupon_refund_fee="3",
            coupon_type_0="CASH",
            coupon_refund_fee_0="3",
            coupon_refund_id_0="C1",
        )
    )
    if typed:
        detail: Any = RefundDetail(
            cost_price=1,
            receipt_id="wx123",
            goods_detail=[
                RefundGoods(
                    goods_id="商品编码",
                    wxpay_goods_id="1001",
                    goods_name="iPhone6s 16G",
                    quantity=1,
                    price=528800,
                )
            ],
        )
    else:
        detail = {
            "cost_price": 1,
            "receipt_id": "wx123",
            "goods_detail": [
                {
                    "goods_id": "商品编码",
                    "wxpay_goods_id": "1001",
                    "goods_name": "iPhone6s 16G",
                    "quantity": 1,
                    "price": 528800,
                }
            ],
        }
    async with make_client() as client:
        result = await client.refund(out_trade_no="T1", total_fee=528800, refund_fee=528800, detail=detail)
    assert wechat.paths == ["/secapi/pay/refundv2"]
    sent_detail = json.loads(wechat.sent[0]["detail"])
    assert sent_detail == {
        "cost_price": 1,
        "receipt_id": "wx123",
        "goods_detail": [
            {
                "goods_id": "商品编码",
                "wxpay_goods_id": "1001",
                "goods_name": "iPhone6s 16G",
                "quantity": 1,
                "price": 528800,
            }
        ],
    }
    assert result.coupons[0].coupon_refund_id == "C1"
    assert result.coupons[0].coupon_refund_fee == 3
    assert result.promotion_detail[0].goods_detail[0].refund_amount == 100


async def test_systemerror_is_retried_with_identical_number_and_amounts(
    wechat: WeChatServer, make_client: Factory, clock: FakeClock
) -> None:
    wechat.then(err("SYSTEMERROR"), err("SYSTEMERROR"), refund_ok())
    async with make_client() as client:
        result = await client.refund(out_trade_no="T1", total_fee=300, refund_fee=200)
    sent = wechat.sent
    assert len(sent) == 3
    assert len({s["out_refund_no"] for s in sent}) == 1
    assert {(s["total_fee"], s["refund_fee"], s["out_trade_no"]) for s in sent} == {("300", "200", "T1")}
    assert len({s["nonce_str"] for s in sent}) == 3
    assert result.out_refund_no == sent[0]["out_refund_no"]
    assert result.attempts == 3
    assert len(clock.sleeps) == 2


async def test_persistent_systemerror_is_settled_by_query(wechat: WeChatServer, make_client: Factory) -> None:
    def query_lists_refund(_request: RecordedRequest, fields: dict[str, str]) -> bytes:
        return signed_reply(
            {
                "out_trade_no": "T1",
                "total_fee": "300",
                "refund_count": "1",
                "out_refund_no_0": fields["out_refund_no"],
                "refund_id_0": "5000",
                "refund_fee_0": "200",
                "refund_status_0": "PROCESSING",
            }
        )

    wechat.then(err("SYSTEMERROR"), err("SYSTEMERROR"), err("SYSTEMERROR"), query_lists_refund)
    async with make_client() as client:
        result = await client.refund(out_trade_no="T1", total_fee=300, refund_fee=200, out_refund_no="R77")
    assert wechat.paths == ["/secapi/pay/refund"] * 3 + ["/pay/refundquery"]
    assert wechat.sent[3]["out_refund_no"] == "R77"
    assert result.settled_by_query
    assert (result.out_refund_no, result.refund_fee, result.refund_status) == ("R77", 200, "PROCESSING")


async def test_tampered_refund_reply_then_no_refund_is_a_signature_error(
    wechat: WeChatServer, make_client: Factory
) -> None:
    def tampered(request: RecordedRequest, fields: dict[str, str]) -> bytes:
        return refund_ok()(request, fields).replace(b"<refund_fee>100<", b"<refund_fee>999<")

    wechat.then(tampered, err("REFUNDNOTEXIST"))
    async with make_client() as client:
        with pytest.raises(SignatureError):
            await client.refund(out_trade_no="T1", total_fee=300, refund_fee=100)
    assert wechat.paths == ["/secapi/pay/refund", "/pay/refundquery"]


async def test_unsigned_success_reply_with_failing_query_is_outcome_unknown(
    wechat: WeChatServer, make_client: Factory
) -> None:
    unsigned = fixed(to_xml({"return_code": "SUCCESS", "result_code": "SUCCESS", "refund_fee": "100"}))
    wechat.then(unsigned, unsigned)  # the settling query's reply is unsigned too
    async with make_client() as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(out_trade_no="T1", total_fee=300, refund_fee=100, out_refund_no="R5")
    assert caught.value.refund_no == "R5"
    assert isinstance(caught.value.__cause__, SignatureError)


async def test_signature_error_on_query_and_close(wechat: WeChatServer, make_client: Factory) -> None:
    forged = fixed(signed_reply({"out_trade_no": "T1"}, key="0" * 32))
    wechat.then(forged, forged)
    async with make_client() as client:
        with pytest.raises(SignatureError):
            await client.query_refund(out_trade_no="T1")
        with pytest.raises(SignatureError):
            await client.close_order(out_trade_no="T1")
    assert len(wechat.sent) == 2


async def test_notenough_is_not_retried(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(err("NOTENOUGH"))
    async with make_client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.refund(out_trade_no="T1", total_fee=300, refund_fee=100)
    assert caught.value.code == "NOTENOUGH"
    assert not caught.value.retryable
    assert len(wechat.sent) == 1


async def test_frequency_limited_waits_at_least_the_hint(
    wechat: WeChatServer, make_client: Factory, clock: FakeClock
) -> None:
    wechat.then(err("FREQUENCY_LIMITED"), refund_ok())
    async with make_client() as client:
        await client.refund(out_trade_no="T1", total_fee=300, refund_fee=100)
    assert clock.sleeps
    assert clock.sleeps[0] >= 10.0


async def test_html_certificate_page_is_a_decode_error(
    scripted: ScriptedServer, make_client: Factory
) -> None:
    page = b"<html><head><title>400 The SSL certificate error</title></head><body>400</body></html>"
    scripted.app.reply_with(400, {"content-type": "text/html"}, page)
    async with make_client() as client:
        with pytest.raises(DecodeError, match="certificate"):
            await client.refund(out_trade_no="T1", total_fee=300, refund_fee=100)
    assert len(scripted.app.requests) == 1  # refused before the payment system: nothing to settle


async def test_billion_laughs_reply_is_refused(scripted: ScriptedServer, make_client: Factory) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
        b"<xml><return_code>&lol2;</return_code></xml>"
    )
    scripted.app.reply_with(200, XML_HEADERS, bomb)
    async with make_client() as client:
        with pytest.raises(DecodeError, match="DOCTYPE"):
            await client.query_refund(out_refund_no="R1")


async def test_query_refund_with_nested_indexes(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(
        fixed(
            signed_reply(
                {
                    "transaction_id": "4200",
                    "out_trade_no": "T1",
                    "total_fee": "300",
                    "refund_count": "2",
                    "out_refund_no_0": "R0",
                    "refund_fee_0": "100",
                    "refund_status_0": "SUCCESS",
                    "coupon_refund_count_0": "2",
                    "coupon_refund_fee_0_0": "1",
                    "coupon_refund_id_0_0": "C00",
                    "coupon_refund_fee_0_1": "2",
                    "coupon_refund_id_0_1": "C01",
                    "out_refund_no_1": "R1",
                    "refund_fee_1": "200",
                    "refund_status_1": "REFUNDCLOSE",
                }
            )
        )
    )
    async with make_client() as client:
        result = await client.query_refund(out_trade_no="T1", offset=10)
    (sent,) = wechat.sent
    assert wechat.paths == ["/pay/refundquery"]
    assert (sent["out_trade_no"], sent["offset"]) == ("T1", "10")
    assert [r.out_refund_no for r in result.refunds] == ["R0", "R1"]
    assert [c.coupon_refund_id for c in result.refunds[0].coupons] == ["C00", "C01"]
    assert result.refunds[1].refund_status == "REFUNDCLOSE"


async def test_query_of_unknown_refund(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(err("REFUNDNOTEXIST"))
    async with make_client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.query_refund(out_refund_no="R404")
    assert caught.value.code == "REFUNDNOTEXIST"


async def test_close_order_and_its_error_codes(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(fixed(signed_reply({"result_msg": "OK"})), err("ORDERPAID"), err("ORDERCLOSED"))
    async with make_client() as client:
        result = await client.close_order(out_trade_no="T1")
        assert result.appid == APPID
        for code in ("ORDERPAID", "ORDERCLOSED"):
            with pytest.raises(ProviderError) as caught:
                await client.close_order(out_trade_no="T1")
            assert caught.value.code == code
            assert not caught.value.retryable
    assert wechat.paths == ["/pay/closeorder"] * 3
    assert wechat.sent[0]["out_trade_no"] == "T1"


async def test_partner_mode_sends_sub_ids(wechat: WeChatServer, make_client: Factory) -> None:
    wechat.then(refund_ok())
    async with make_client(sub_appid="wx9999999999999999", sub_mch_id="1900000999") as client:
        await client.refund(out_trade_no="T1", total_fee=3, refund_fee=1)
    (sent,) = wechat.sent
    assert (sent["sub_appid"], sent["sub_mch_id"]) == ("wx9999999999999999", "1900000999")


async def test_server_rejects_an_untrusted_client_certificate(
    scripted: ScriptedServer, make_client: Factory
) -> None:
    async with make_client(
        cert=scripted.tls.untrusted_client_certificate(), retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(TransportError):
            await client.close_order(out_trade_no="T1")


async def test_failover_to_backup_on_connection_refused(
    wechat: WeChatServer, make_client: Factory, scripted: ScriptedServer
) -> None:
    wechat.then(refund_ok())
    # Nothing listens on port 1: the connection is refused before anything is sent.
    async with make_client(base_url="https://127.0.0.1:1", backup_base_url=scripted.base_url) as client:
        result = await client.refund(out_trade_no="T1", total_fee=3, refund_fee=1, out_refund_no="R-FO")
    assert wechat.paths == ["/secapi/pay/refund"]
    assert result.out_refund_no == "R-FO"
    assert result.attempts == 1
