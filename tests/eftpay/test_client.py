"""EftPayClient against a real HTTPS server (trustme CA via ``ca_file=``), on asyncio and trio."""

from __future__ import annotations

import inspect
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from paykit_async import (
    FakeClock,
    ProviderError,
    RefundOutcomeUnknown,
    RetryPolicy,
    SignatureError,
    TransportError,
    ValidationError,
)
from paykit_async.providers.eftpay import (
    EftPayClient,
    RefundStatus,
    SignatureRule,
    TradeStatus,
)

from ..servers import RecordedRequest
from .conftest import EftPayServer
from .helpers import SECRET, USER_CONFIRM_KEY, accepted_refund, json_reply, reference_sign, signed

pytestmark = pytest.mark.anyio

SERVICE = "/VMP/Servlet/JSAPIService.do"
QUERY = "/VMP/Servlet/QRcodeTradeQuery.do"


def make_client(server: EftPayServer, *, attempts: int = 1, tid: str | None = None) -> EftPayClient:
    return EftPayClient(
        USER_CONFIRM_KEY,
        SECRET,
        base_url=server.base_url,
        tid=tid,
        ca_file=server.ca_file,
        retry=RetryPolicy(attempts=attempts, initial_delay=0.01),
        clock=FakeClock(),
    )


def body_of(request: RecordedRequest) -> dict[str, str]:
    body = json.loads(request.body)
    assert isinstance(body, dict)
    assert body["sign"] == reference_sign(body), "the request signature must check independently"
    return body


def refund_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "paytype": "WeChat",
        "payment_type": "WECHATCN",
        "out_trade_no": "rrn_1686280006045",
        "transaction_amount": Decimal("0.01"),
        "total_fee": Decimal("10.01"),
    }
    args.update(overrides)
    return args


def test_base_url_is_required() -> None:
    parameter = inspect.signature(EftPayClient).parameters["base_url"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    assert parameter.default is inspect.Parameter.empty


@pytest.mark.parametrize(
    ("paytype", "payment_type", "service"),
    [
        ("WeChat", "WECHATCN", "service.wechat.jsapi.Refund"),
        ("WeChat", "WECHATHK", "service.wechat.jsapi.Refund"),
        ("Alipay", "ALIPAYCN", "service.alipay.jsapi.Refund"),
        ("Alipay", "ALIPAYHK", "service.alipay.jsapi.Refund"),
    ],
)
async def test_refund_picks_the_service_from_paytype(
    eftpay_server: EftPayServer, paytype: str, payment_type: str, service: str
) -> None:
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    async with make_client(eftpay_server, tid="tid_3378") as client:
        result = await client.refund(
            **refund_args(paytype=paytype, payment_type=payment_type), refund_desc="test测试退款"
        )
    (request,) = eftpay_server.app.requests
    assert request.method == "POST"
    assert request.path == SERVICE
    assert request.headers["content-type"].startswith("application/json")
    body = body_of(request)
    assert body["service"] == service
    assert body["paytype"] == paytype
    assert body["payment_type"] == payment_type
    assert body["user_confirm_key"] == USER_CONFIRM_KEY
    assert (body["transaction_amount"], body["total_fee"]) == ("0.01", "10.01")
    assert body["tid"] == "tid_3378"
    assert body["refund_desc"] == "test测试退款"
    assert len(body["refund_no"]) <= 28
    assert "notify_url" not in body
    assert result.refund_no == body["refund_no"]
    assert result.trade_status == TradeStatus.TRADE_CLOSED
    assert result.trade_status.is_refunded
    assert result.transaction_amount == Decimal("0.01")
    assert result.total_fee == Decimal("10.01")
    assert result.rate == Decimal("0.88")
    assert result.refund_trade_no == "EFTR0001"
    assert result.signature_rule is SignatureRule.NON_EMPTY
    assert result.raw["eftpay_trade_no"] == "EFT0001"
    assert result.attempts == 1
    assert not result.settled_by_query


async def test_given_refund_no_and_tid_override_are_sent(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    async with make_client(eftpay_server, tid="client-tid") as client:
        result = await client.refund(**refund_args(refund_no="201901010011", tid="call-tid"))
        await client.refund(**refund_args(refund_no="201901010012", transaction_amount="10.01"))
    first, second = (body_of(r) for r in eftpay_server.app.requests)
    assert (first["refund_no"], first["tid"]) == ("201901010011", "call-tid")
    assert (second["refund_no"], second["tid"], second["transaction_amount"]) == (
        "201901010012",
        "client-tid",
        "10.01",
    )
    assert result.refund_no == "201901010011"


async def test_time_is_utc_plus_8_whatever_the_host_zone(
    eftpay_server: EftPayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert time.localtime().tm_gmtoff != 8 * 3600
        eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
        utc8 = timezone(timedelta(hours=8))
        async with make_client(eftpay_server) as client:
            before = datetime.now(utc8).strftime("%Y%m%d%H%M%S")
            await client.refund(**refund_args())
            after = datetime.now(utc8).strftime("%Y%m%d%H%M%S")
        sent = body_of(eftpay_server.app.requests[0])["time"]
        assert len(sent) == 14
        assert before <= sent <= after
    finally:
        monkeypatch.undo()
        time.tzset()


async def test_apply_refund(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        accepted_refund(request.body, trade_status="APPLY_SUCCESS")
    )
    async with make_client(eftpay_server) as client:
        result = await client.apply_refund(**refund_args(), notify_url="https://shop.example/eftpay/notify")
    body = body_of(eftpay_server.app.requests[0])
    assert body["service"] == "service.wechat.jsapi.ApplyRefund"
    assert body["notify_url"] == "https://shop.example/eftpay/notify"
    assert result.trade_status == TradeStatus.APPLY_SUCCESS
    assert not result.trade_status.is_final


@pytest.mark.parametrize(
    ("method", "overrides", "field"),
    [
        ("refund", {"transaction_amount": 0.01}, "transaction_amount"),
        ("refund", {"total_fee": 10.01}, "total_fee"),
        ("refund", {"transaction_amount": True}, "transaction_amount"),
        ("refund", {"transaction_amount": Decimal("0.001")}, "transaction_amount"),
        ("refund", {"transaction_amount": Decimal("-1")}, "transaction_amount"),
        ("refund", {"transaction_amount": Decimal("0")}, "transaction_amount"),
        ("refund", {"total_fee": Decimal("123456.78")}, "total_fee"),
        ("refund", {"transaction_amount": Decimal("20")}, "transaction_amount"),
        ("refund", {"paytype": "Alipay"}, "payment_type"),
        ("refund", {"paytype": "UnionPay"}, "paytype"),
        ("refund", {"out_trade_no": "x" * 29}, "out_trade_no"),
        ("refund", {"refund_no": "x" * 29}, "refund_no"),
        ("refund", {"tid": "x" * 21}, "tid"),
        ("refund", {"refund_desc": "x" * 257}, "refund_desc"),
        ("apply_refund", {"notify_url": "https://a.example/" + "x" * 240}, "notify_url"),
        ("apply_refund", {"paytype": "Alipay", "payment_type": "ALIPAYHK"}, "paytype"),
    ],
)
async def test_bad_input_is_refused_before_any_io(
    eftpay_server: EftPayServer, method: str, overrides: dict[str, Any], field: str
) -> None:
    args = refund_args(**overrides)
    if method == "apply_refund":
        args.setdefault("notify_url", "https://shop.example/notify")
    async with make_client(eftpay_server) as client:
        with pytest.raises(ValidationError) as info:
            await getattr(client, method)(**args)
    assert info.value.field == field
    assert eftpay_server.app.requests == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"user_confirm_key": "x" * 13, "secret": SECRET}, "user_confirm_key"),
        ({"user_confirm_key": USER_CONFIRM_KEY, "secret": ""}, "secret"),
        ({"user_confirm_key": USER_CONFIRM_KEY, "secret": SECRET, "tid": "x" * 21}, "tid"),
    ],
)
def test_bad_client_configuration(args: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        EftPayClient(base_url="https://vmp.eftpay.com.cn/VMP", **args)
    assert info.value.field == field


async def test_non_00_return_status_is_a_provider_error(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        signed({"return_status": "01", "return_char": "退款金额超过可退金额", "time": "20240101120000"})
    )
    async with make_client(eftpay_server, attempts=3) as client:
        with pytest.raises(ProviderError) as info:
            await client.refund(**refund_args())
    assert info.value.code == "01"
    assert info.value.message == "退款金额超过可退金额"
    assert len(eftpay_server.app.requests) == 1  # unknown codes are not retried


async def test_unknown_trade_status_is_kept_verbatim(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        accepted_refund(request.body, trade_status="TRADE_REFUNDING_V2")
    )
    async with make_client(eftpay_server) as client:
        result = await client.refund(**refund_args())
    assert result.trade_status == "TRADE_REFUNDING_V2"
    assert not result.trade_status.is_known
    assert not result.trade_status.is_final


async def test_reply_signed_with_empty_fields_is_accepted_and_recorded(eftpay_server: EftPayServer) -> None:
    def respond(request: RecordedRequest) -> Any:
        fields = {k: v for k, v in accepted_refund(request.body).items() if k != "sign"}
        return json_reply(signed(fields, keep_empty=True))  # return_char and tid are ""

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server) as client:
        result = await client.refund(**refund_args())
    assert result.signature_rule is SignatureRule.ALL_FIELDS


def query_reply(request: RecordedRequest, **overrides: str) -> dict[str, str]:
    sent = json.loads(request.body)
    fields = {
        "return_status": "00",
        "return_char": "",
        "time": sent["time"],
        "out_trade_no": sent["out_trade_no"],
        "extra_trade_no": "4200001",
        "eftpay_trade_no": "EFT0001",
        "trade_status": "TRADE_CLOSED",
        "trade_type": "REFUND" if "refund_no" in sent else "SALE",
        "refund_no": sent.get("refund_no", ""),
        "paytype": sent["paytype"],
        "payment_type": sent["payment_type"],
        "transaction_amount": "0.01",
        "total_fee": "10.01",
    }
    fields.update(overrides)
    return signed(fields)


async def test_tampered_reply_is_settled_by_a_verified_query(eftpay_server: EftPayServer) -> None:
    def respond(request: RecordedRequest) -> Any:
        if request.path == SERVICE:
            return json_reply({**accepted_refund(request.body), "trade_status": "TRADE_FAIL"})  # tampered
        return json_reply(query_reply(request))

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server) as client:
        result = await client.refund(**refund_args(refund_no="R-SETTLE-1"))
    refund_request, query_request = eftpay_server.app.requests
    assert query_request.path == QUERY
    query = body_of(query_request)
    assert "service" not in query
    assert query["querytype"] == "OUT_TRADE"
    assert query["refund_no"] == "R-SETTLE-1"
    assert query["out_trade_no"] == body_of(refund_request)["out_trade_no"]
    assert result.settled_by_query
    assert result.refund_no == "R-SETTLE-1"
    assert result.trade_status == TradeStatus.TRADE_CLOSED
    assert result.raw["trade_type"] == "REFUND"


async def test_unsettled_refund_reports_the_same_refund_no(eftpay_server: EftPayServer) -> None:
    def respond(request: RecordedRequest) -> Any:
        if request.path == SERVICE:
            return 503, {"retry-after": "0"}, b"busy"
        return json_reply(signed({"return_status": "05", "return_char": "no such trade"}))

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server, attempts=3) as client:
        with pytest.raises(RefundOutcomeUnknown) as info:
            await client.refund(**refund_args())
    requests = eftpay_server.app.requests
    assert [r.path for r in requests] == [SERVICE, SERVICE, SERVICE, QUERY]
    numbers = {body_of(r)["refund_no"] for r in requests}
    assert numbers == {info.value.refund_no}  # every retry and the query used one number


async def test_retry_reuses_the_refund_no(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.reply_with(502, {}, b"bad gateway")
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    async with make_client(eftpay_server, attempts=2) as client:
        result = await client.refund(**refund_args())
    first, second = (body_of(r) for r in eftpay_server.app.requests)
    assert first["refund_no"] == second["refund_no"] == result.refund_no
    assert result.attempts == 2


async def test_query_sale_and_refund(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        query_reply(
            request,
            trade_status="TRADE_SUCCESS" if "refund_no" not in json.loads(request.body) else "TRADE_REFUND",
        )
    )
    async with make_client(eftpay_server) as client:
        sale = await client.query(out_trade_no="T1", paytype="Alipay", payment_type="ALIPAYHK")
        refund = await client.query(
            out_trade_no="T1", paytype="Alipay", payment_type="ALIPAYHK", refund_no="R1"
        )
    sale_body, refund_body = (body_of(r) for r in eftpay_server.app.requests)
    assert all(r.path == QUERY for r in eftpay_server.app.requests)
    assert "refund_no" not in sale_body
    assert refund_body["refund_no"] == "R1"
    assert sale.trade_type == "SALE"
    assert sale.trade_status == TradeStatus.TRADE_SUCCESS
    assert sale.extra_trade_no == "4200001"
    assert refund.trade_type == "REFUND"
    assert refund.trade_status == TradeStatus.TRADE_REFUND
    assert refund.transaction_amount == Decimal("0.01")


async def test_refund_status(eftpay_server: EftPayServer) -> None:
    statuses = iter(["SUCCESS", "REFUND_REVIEW"])

    def respond(request: RecordedRequest) -> Any:
        sent = json.loads(request.body)
        return json_reply(
            signed(
                {
                    "return_status": "00",
                    "return_char": "",
                    "refund_no": sent["refund_no"],
                    "refund_status": next(statuses),
                    "time": sent["time"],
                }
            )
        )

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server) as client:
        done = await client.refund_status(refund_no="R1", out_trade_no="T1", paytype="WeChat")
        odd = await client.refund_status(refund_no="R2")
    first, second = (body_of(r) for r in eftpay_server.app.requests)
    assert first["service"] == "service.unified.RefundStatusQuery"
    assert eftpay_server.app.requests[0].path == SERVICE
    assert (first["refund_no"], first["out_trade_no"], first["paytype"]) == ("R1", "T1", "WeChat")
    assert set(second) == {"service", "user_confirm_key", "refund_no", "time", "sign"}
    assert done.refund_status == RefundStatus.SUCCESS
    assert odd.refund_status == "REFUND_REVIEW"
    assert not odd.refund_status.is_known


async def test_secret_never_leaves_in_text(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        {**accepted_refund(request.body), "sign": "0" * 64}
    )
    async with make_client(eftpay_server) as client:
        assert SECRET not in repr(client)
        with pytest.raises(RefundOutcomeUnknown) as info:
            await client.refund(**refund_args())
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.__cause__)
    for request in eftpay_server.app.requests:
        assert SECRET.encode() not in request.body


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"trade_type": "SALE", "refund_no": ""}, id="answered-with-the-sale"),
        pytest.param({"refund_no": "SOMEONE-ELSE"}, id="another-refund"),
        pytest.param({"trade_type": "", "refund_no": ""}, id="about-nothing-in-particular"),
    ],
)
async def test_query_that_cannot_confirm_leaves_the_outcome_unknown(
    eftpay_server: EftPayServer, overrides: dict[str, str]
) -> None:
    def respond(request: RecordedRequest) -> Any:
        if request.path == SERVICE:
            return 500, {}, b"oops"
        return json_reply(query_reply(request, **overrides))

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as info:
            await client.refund(**refund_args(refund_no="R-UNSURE"))
    assert info.value.refund_no == "R-UNSURE"


async def test_retry_after_is_honoured(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.reply_with(503, {"retry-after": "3"}, b"")
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    clock = FakeClock()
    client = EftPayClient(
        USER_CONFIRM_KEY,
        SECRET,
        base_url=eftpay_server.base_url,
        ca_file=eftpay_server.ca_file,
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
        clock=clock,
    )
    async with client:
        result = await client.refund(**refund_args())
    assert result.attempts == 2
    assert clock.sleeps[0] >= 3


async def test_tls_is_verified(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    client = EftPayClient(USER_CONFIRM_KEY, SECRET, base_url=eftpay_server.base_url, retry=RetryPolicy.none())
    async with client:
        with pytest.raises(TransportError):
            await client.query(out_trade_no="T1", paytype="WeChat", payment_type="WECHATCN")
    assert eftpay_server.app.requests == []


async def test_tampered_query_reply(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(
        {**query_reply(request), "trade_status": "TRADE_SUCCESS"}
    )
    async with make_client(eftpay_server) as client:
        with pytest.raises(SignatureError):
            await client.query(out_trade_no="T1", paytype="WeChat", payment_type="WECHATCN")


async def test_listed_codes_are_retried_with_the_same_refund_no(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.reply_with(*json_reply(signed({"return_status": "99", "return_char": "busy"})))
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    client = EftPayClient(
        USER_CONFIRM_KEY,
        SECRET,
        base_url=eftpay_server.base_url,
        ca_file=eftpay_server.ca_file,
        retryable_codes={"99"},
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
        clock=FakeClock(),
    )
    async with client:
        result = await client.refund(**refund_args())
    first, second = (body_of(r) for r in eftpay_server.app.requests)
    assert first["refund_no"] == second["refund_no"] == result.refund_no
    assert result.attempts == 2


@pytest.mark.parametrize("codes", [["00"], [""], [99]])
def test_bad_retryable_codes(codes: list[Any]) -> None:
    with pytest.raises(ValidationError):
        EftPayClient(
            USER_CONFIRM_KEY, SECRET, base_url="https://vmp.eftpay.com.cn/VMP", retryable_codes=codes
        )


async def test_unreadable_verified_refund_reply_is_unknown_with_its_refund_no(
    eftpay_server: EftPayServer,
) -> None:
    """A verified "00" refund reply that cannot be read is an unknown outcome, reported with the
    refund number the client minted (``RefundOutcomeUnknown.refund_no``), as WeChat Pay and PAYJS
    report it.

    /work/shared/specs/eftpay.md:9 — ``return_status="00"`` means only "accepted"; the state is
    ``trade_status``; the refund number is "the idempotency key" (line 39), and an unknown outcome
    is settled with the SAME number (wechatpay-v2.md:70, the rule every provider follows). A
    ``DecodeError`` without the number leaves a caller that let the client mint it (no
    ``refund_no``, no ``idempotency_key``) nothing to retry or query with but a new number.
    """
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body, rate="n/a"))
    async with make_client(eftpay_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as info:
            await client.refund(**refund_args())
    (request,) = eftpay_server.app.requests
    assert info.value.refund_no == body_of(request)["refund_no"]
