"""PayJSClient against a real HTTPS server (trustme CA, uvicorn in a thread), on asyncio and trio.

Every scripted reply is signed by the independent ``php_sign``; every request the server received
is parsed back and its signature checked with ``php_sign`` too.
"""

from __future__ import annotations

from collections import deque
from typing import Any
from urllib.parse import parse_qs

import pytest

from paykit_async.errors import (
    DecodeError,
    HTTPStatusError,
    ProviderError,
    RefundOutcomeUnknown,
    SignatureError,
    TransportError,
    ValidationError,
)
from paykit_async.pipeline import FakeClock, RetryPolicy
from paykit_async.providers.payjs import (
    FAIL,
    CheckResult,
    PayJSClient,
    RefundResult,
    UnsignedReplyError,
)

from ..servers import RecordedRequest, Reply, ScriptedServer
from .payjs_fixtures import KEY, MCHID, ORDER_ID, check_reply, json_body, php_sign, refund_reply, signed

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


class Routes:
    """Answers by path, each path from its own queue of replies (404 when empty)."""

    def __init__(self, server: ScriptedServer) -> None:
        self.queues: dict[str, deque[Reply]] = {}
        server.app.respond = self

    def add(
        self, endpoint: str, fields: dict[str, Any] | bytes, *, status: int = 200, **headers: str
    ) -> None:
        body = fields if isinstance(fields, bytes) else json_body(fields)
        self.queues.setdefault(f"/api/{endpoint}", deque()).append((status, {**JSON, **headers}, body))

    def __call__(self, request: RecordedRequest) -> Reply:
        queue = self.queues.get(request.path)
        if not queue:
            return (404, {"content-type": "text/plain"}, b"no scripted reply")
        return queue.popleft()


def make_client(server: ScriptedServer, **options: Any) -> PayJSClient:
    options.setdefault("clock", FakeClock())
    return PayJSClient(MCHID, KEY, base_url=server.base_url, ca_file=server.tls.ca_file, **options)


def received(request: RecordedRequest, endpoint: str, order_id: str = ORDER_ID) -> dict[str, str]:
    """Check one recorded request: path, form encoding, fields, and an independently valid sign."""
    assert request.method == "POST"
    assert request.path == f"/api/{endpoint}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    parsed = parse_qs(request.body.decode("ascii"), strict_parsing=True, keep_blank_values=True)
    fields = {name: values[0] for name, values in parsed.items()}
    assert all(len(values) == 1 for values in parsed.values())
    assert set(fields) == {"mchid", "payjs_order_id", "sign"}
    assert (fields["mchid"], fields["payjs_order_id"]) == (MCHID, order_id)
    assert fields["sign"] == php_sign({k: v for k, v in fields.items() if k != "sign"})
    return fields


# --- refund -------------------------------------------------------------------------------------


async def test_refund_success(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    reply = refund_reply()
    routes.add("refund", reply)
    async with make_client(payjs_server) as client:
        result = await client.refund(payjs_order_id=ORDER_ID)
    assert isinstance(result, RefundResult)
    assert result.return_code == 1
    assert result.return_msg == "退款成功"
    assert result.payjs_order_id == ORDER_ID
    assert result.out_trade_no == "shop-20190518-0001"
    assert result.transaction_id == "4200000311201905181234567890"
    assert result.refund is None
    assert not result.settled_by_query
    assert result.raw == reply
    [request] = payjs_server.app.requests
    received(request, "refund")


@pytest.mark.parametrize("marker", [1, "1"])
async def test_refund_of_an_already_refunded_order_surfaces_refund_marker(
    payjs_server: ScriptedServer, marker: object
) -> None:
    Routes(payjs_server).add("refund", refund_reply(refund=marker, unknown_future_field="x"))
    async with make_client(payjs_server) as client:
        result = await client.refund(payjs_order_id=ORDER_ID)
    assert result.refund == 1
    assert result.raw["unknown_future_field"] == "x"


async def test_verified_refund_reply_that_cannot_be_typed_is_unknown(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("refund", refund_reply(refund="yes"))
    async with make_client(payjs_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    assert caught.value.refund_no == ORDER_ID
    assert isinstance(caught.value.__cause__, DecodeError)


async def test_refund_reply_without_optional_order_fields(payjs_server: ScriptedServer) -> None:
    # The seed marks payjs_order_id, out_trade_no and transaction_id optional in refund replies.
    reply = signed({"return_code": 1, "return_msg": "退款成功"})
    Routes(payjs_server).add("refund", reply)
    async with make_client(payjs_server) as client:
        result = await client.refund(payjs_order_id=ORDER_ID)
    assert (result.payjs_order_id, result.out_trade_no, result.transaction_id) == (ORDER_ID, None, None)
    assert result.raw == reply


async def test_refund_refused_is_a_provider_error_and_not_retried(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("refund", {"return_code": 0, "return_msg": "退款失败", "msg": "未结算金额不足"})
    async with make_client(payjs_server) as client:
        with pytest.raises(ProviderError) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    assert caught.value.code == FAIL
    assert caught.value.message == "退款失败 / 未结算金额不足"
    assert len(payjs_server.app.requests) == 1


async def test_refund_retries_a_5xx_with_the_same_request(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    routes.add("refund", b"busy", status=503, **{"retry-after": "3"})
    routes.add("refund", refund_reply())
    clock = FakeClock()
    async with make_client(payjs_server, clock=clock) as client:
        result = await client.refund(payjs_order_id=ORDER_ID)
    assert result.return_code == 1
    first, second = payjs_server.app.requests
    assert received(first, "refund") == received(second, "refund")
    assert first.body == second.body
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 3


async def test_unsigned_success_is_confirmed_by_check_or_unknown(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    routes.add(
        "refund", {"return_code": 1, "return_msg": "退款成功", "payjs_order_id": ORDER_ID, "refund": 1}
    )
    routes.add("check", check_reply())  # verified, but says only "paid": proves no refund
    async with make_client(payjs_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    assert caught.value.refund_no == ORDER_ID
    assert isinstance(caught.value.__cause__, UnsignedReplyError)
    refund_request, check_request = payjs_server.app.requests
    received(refund_request, "refund")
    received(check_request, "check")


async def test_unsigned_success_settled_by_a_signed_check_with_refund_marker(
    payjs_server: ScriptedServer,
) -> None:
    routes = Routes(payjs_server)
    routes.add("refund", {"return_code": 1, "return_msg": "退款成功", "payjs_order_id": ORDER_ID})
    check = check_reply(refund=1)
    routes.add("check", check)
    async with make_client(payjs_server) as client:
        result = await client.refund(payjs_order_id=ORDER_ID)
    assert result.settled_by_query
    assert result.refund == 1
    assert result.raw == check
    assert [r.path for r in payjs_server.app.requests] == ["/api/refund", "/api/check"]


async def test_unsigned_success_and_tampered_check_is_unknown(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    routes.add("refund", {"return_code": 1, "payjs_order_id": ORDER_ID})
    forged = {**check_reply(), "refund": 1}  # marker added after signing
    routes.add("check", forged)
    async with make_client(payjs_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    assert KEY not in str(caught.value)


async def test_tampered_refund_reply_is_settled_or_unknown_never_success(
    payjs_server: ScriptedServer,
) -> None:
    routes = Routes(payjs_server)
    tampered = refund_reply()
    tampered["return_msg"] = "changed"
    routes.add("refund", tampered)
    routes.add("check", check_reply())
    async with make_client(payjs_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    cause = caught.value.__cause__
    assert isinstance(cause, SignatureError)
    assert not isinstance(cause, UnsignedReplyError)
    assert len(payjs_server.app.requests) == 2  # a signature error is never retried


async def test_refund_5xx_until_the_end_asks_check_then_unknown(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    for _ in range(3):
        routes.add("refund", b"oops", status=502)
    routes.add("check", check_reply(status=0))
    async with make_client(payjs_server, retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(payjs_order_id=ORDER_ID, idempotency_key="order-1-refund")
    assert isinstance(caught.value.__cause__, HTTPStatusError)
    paths = [r.path for r in payjs_server.app.requests]
    assert paths == ["/api/refund"] * 3 + ["/api/check"]
    bodies = {r.body for r in payjs_server.app.requests if r.path == "/api/refund"}
    assert len(bodies) == 1  # every retry re-sent the identical request


async def test_refund_without_trusting_the_test_ca_fails_before_sending(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("refund", refund_reply())
    async with PayJSClient(MCHID, KEY, base_url=payjs_server.base_url, retry=RetryPolicy.none()) as client:
        with pytest.raises(TransportError) as caught:
            await client.refund(payjs_order_id=ORDER_ID)
    assert caught.value.sent is False
    assert payjs_server.app.requests == []


# --- close and reverse --------------------------------------------------------------------------


async def test_close_success(payjs_server: ScriptedServer) -> None:
    reply = signed({"return_code": 1, "return_msg": "订单关闭成功", "payjs_order_id": ORDER_ID})
    Routes(payjs_server).add("close", reply)
    async with make_client(payjs_server) as client:
        result = await client.close(payjs_order_id=ORDER_ID)
    assert (result.return_code, result.return_msg, result.payjs_order_id) == (1, "订单关闭成功", ORDER_ID)
    assert result.raw == reply
    [request] = payjs_server.app.requests
    received(request, "close")


async def test_close_refused(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("close", {"return_code": 0, "return_msg": "只能关闭30天内的订单"})
    async with make_client(payjs_server) as client:
        with pytest.raises(ProviderError, match="30"):
            await client.close(payjs_order_id=ORDER_ID)


async def test_close_tampered_reply_raises_signature_error(payjs_server: ScriptedServer) -> None:
    reply = signed({"return_code": 1, "return_msg": "ok", "payjs_order_id": ORDER_ID})
    reply["return_msg"] = "OK"
    Routes(payjs_server).add("close", reply)
    async with make_client(payjs_server) as client:
        with pytest.raises(SignatureError):
            await client.close(payjs_order_id=ORDER_ID)
    assert len(payjs_server.app.requests) == 1


async def test_close_unsigned_success_raises(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("close", {"return_code": 1, "return_msg": "ok", "payjs_order_id": ORDER_ID})
    async with make_client(payjs_server) as client:
        with pytest.raises(UnsignedReplyError):
            await client.close(payjs_order_id=ORDER_ID)
    assert [r.path for r in payjs_server.app.requests] == ["/api/close"]


async def test_reverse_success(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add(
        "reverse", signed({"return_code": 1, "return_msg": "撤销成功", "payjs_order_id": ORDER_ID})
    )
    async with make_client(payjs_server) as client:
        result = await client.reverse(payjs_order_id=ORDER_ID)
    assert (result.return_code, result.payjs_order_id, result.settled_by_query) == (1, ORDER_ID, False)
    [request] = payjs_server.app.requests
    received(request, "reverse")


async def test_reverse_refused_and_unsigned(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    routes.add("reverse", {"return_code": 0, "return_msg": "订单超过7天"})
    routes.add("reverse", {"return_code": 1, "payjs_order_id": ORDER_ID})
    routes.add("check", check_reply())
    async with make_client(payjs_server) as client:
        with pytest.raises(ProviderError):
            await client.reverse(payjs_order_id=ORDER_ID)
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.reverse(payjs_order_id=ORDER_ID)
    assert isinstance(caught.value.__cause__, UnsignedReplyError)


# --- check --------------------------------------------------------------------------------------


async def test_check_paid_order(payjs_server: ScriptedServer) -> None:
    reply = check_reply(attach="note 1+1")
    Routes(payjs_server).add("check", reply)
    async with make_client(payjs_server) as client:
        result = await client.check(payjs_order_id=ORDER_ID)
    assert isinstance(result, CheckResult)
    assert result.paid
    assert result.status == 1
    assert result.total_fee == 1250
    assert isinstance(result.total_fee, int)
    assert result.attach == "note 1+1"
    assert result.mchid == MCHID
    assert result.raw == reply
    [request] = payjs_server.app.requests
    received(request, "check")


async def test_check_unpaid_order_with_zero_and_empty_fields(payjs_server: ScriptedServer) -> None:
    reply = signed(
        {"return_code": 1, "mchid": MCHID, "payjs_order_id": ORDER_ID, "status": 0, "total_fee": "1250"}
    )
    Routes(payjs_server).add("check", reply)
    async with make_client(payjs_server) as client:
        result = await client.check(payjs_order_id=ORDER_ID)
    assert not result.paid
    assert (result.status, result.total_fee, result.transaction_id, result.attach) == (0, 1250, None, None)


async def test_check_refused_and_rate_limited(payjs_server: ScriptedServer) -> None:
    routes = Routes(payjs_server)
    routes.add("check", {"return_code": 0, "return_msg": "订单不存在"})
    routes.add("check", b"slow down", status=429, **{"retry-after": "30"})
    async with make_client(payjs_server, retry=RetryPolicy.none()) as client:
        with pytest.raises(ProviderError, match="订单不存在"):
            await client.check(payjs_order_id=ORDER_ID)
        with pytest.raises(HTTPStatusError) as caught:
            await client.check(payjs_order_id=ORDER_ID)
    assert (caught.value.status_code, caught.value.retry_after) == (429, 30.0)


async def test_check_with_fractional_total_fee_is_refused(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("check", check_reply(total_fee="12.50"))
    async with make_client(payjs_server) as client:
        with pytest.raises(DecodeError, match="total_fee"):
            await client.check(payjs_order_id=ORDER_ID)


# --- validation before I/O ----------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["refund", "close", "reverse", "check"])
@pytest.mark.parametrize("order_id", ["", "0", "A" * 33, "a b", "a&sign=x", "订单", 12345, None])
async def test_bad_order_id_is_refused_before_any_io(
    payjs_server: ScriptedServer, endpoint: str, order_id: Any
) -> None:
    Routes(payjs_server)
    async with make_client(payjs_server) as client:
        with pytest.raises(ValidationError) as caught:
            await getattr(client, endpoint)(payjs_order_id=order_id)
    assert caught.value.field == "payjs_order_id"
    assert payjs_server.app.requests == []
