"""The fake PAYJS and eftPay, driven with requests signed in the test itself (in process)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from paykit_async.simulator import ManualClock, Simulator, SimulatorConfig

from .helpers import (
    CHINA,
    eft_refund,
    eft_reply_verified,
    eft_request,
    eft_time,
    payjs_request,
    payjs_sign,
)

pytestmark = pytest.mark.anyio

START = 1_700_000_000.0
DAY = 86400.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=START)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    simulator = Simulator(SimulatorConfig(completion_delay=30.0), clock=clock)
    simulator.add_payjs_order("P1", 500)
    simulator.add_eftpay_order("T1", "10.01")
    return simulator


async def payjs(http: httpx.AsyncClient, endpoint: str, body: bytes) -> dict[str, Any]:
    response = await http.post(
        f"/payjs/api/{endpoint}", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 200
    return dict(response.json())


def payjs_verified(reply: dict[str, Any]) -> bool:
    return "sign" in reply and payjs_sign(reply, "simulator-payjs-key") == reply["sign"]


def eft_now(clock: ManualClock) -> str:
    return eft_time(datetime.fromtimestamp(clock.now(), CHINA))


async def eft(
    http: httpx.AsyncClient, clock: ManualClock, path: str = "JSAPIService", **kw: Any
) -> dict[str, Any]:
    kw.setdefault("time", eft_now(clock))
    response = await http.post(
        f"/eftpay/Servlet/{path}.do", content=eft_request(**kw), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    return dict(response.json())


# -- PAYJS ----------------------------------------------------------------------------------------


async def test_payjs_refund_is_the_whole_order(http: httpx.AsyncClient, sim: Simulator) -> None:
    reply = await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
    assert reply["return_code"] == 1
    assert reply["payjs_order_id"] == "P1"
    assert payjs_verified(reply)
    assert sim.snapshot().order("payjs", "P1").refunded == 500


async def test_payjs_duplicate_refund_answers_unsigned_success_and_pays_once(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
    again = await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
    assert again["return_code"] == 1
    assert "sign" not in again
    snap = sim.snapshot()
    assert snap.executions == {"payjs:P1": 1}
    assert snap.duplicate_payouts == 0


async def test_payjs_duplicate_refund_can_answer_a_signed_failure(clock: ManualClock) -> None:
    sim = Simulator(SimulatorConfig(payjs_unsigned_duplicate=False), clock=clock)
    sim.add_payjs_order("P1", 500)
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
        again = await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
    assert again["return_code"] == 0
    assert payjs_verified(again)


async def test_payjs_unsettled_funds_must_exceed_the_refund(http: httpx.AsyncClient, sim: Simulator) -> None:
    sim.set_balance("payjs", 500)
    reply = await payjs(http, "refund", payjs_request(payjs_order_id="P1"))
    assert reply["return_code"] == 0
    assert "未结算" in reply["return_msg"]
    sim.set_balance("payjs", 501)
    assert (await payjs(http, "refund", payjs_request(payjs_order_id="P1")))["return_code"] == 1


async def test_payjs_wrong_key_is_refused(http: httpx.AsyncClient, sim: Simulator) -> None:
    reply = await payjs(http, "refund", payjs_request(key="wrong", payjs_order_id="P1"))
    assert reply["return_code"] == 0
    assert "sign" not in reply
    assert sim.snapshot().refunds == {}


async def test_payjs_close_within_thirty_days(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    sim.add_payjs_order("U1", 100, paid=False, created_at=START - 29 * DAY)
    sim.add_payjs_order("U2", 100, paid=False, created_at=START - 31 * DAY)
    assert (await payjs(http, "close", payjs_request(payjs_order_id="U1")))["return_code"] == 1
    assert (await payjs(http, "close", payjs_request(payjs_order_id="U2")))["return_code"] == 0


async def test_payjs_reverse_within_seven_days_refunds_paid_micropay(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    sim.add_payjs_order("M1", 300, kind="micropay")
    sim.add_payjs_order("M2", 300, kind="micropay", created_at=START - 8 * DAY)
    ok = await payjs(http, "reverse", payjs_request(payjs_order_id="M1"))
    assert ok["return_code"] == 1
    assert payjs_verified(ok)
    assert sim.snapshot().order("payjs", "M1").refunded == 300
    assert (await payjs(http, "reverse", payjs_request(payjs_order_id="M2")))["return_code"] == 0
    assert (await payjs(http, "reverse", payjs_request(payjs_order_id="P1")))["return_code"] == 0


async def test_payjs_check(http: httpx.AsyncClient) -> None:
    reply = await payjs(http, "check", payjs_request(payjs_order_id="P1", future_field="ignored"))
    assert reply["status"] == 1
    assert reply["total_fee"] == 500
    assert payjs_verified(reply)


# -- eftPay ---------------------------------------------------------------------------------------


async def test_eftpay_refund_processing_then_closed(http: httpx.AsyncClient, clock: ManualClock) -> None:
    reply = await eft(http, clock, **eft_refund(transaction_amount="10.01"))
    assert reply["return_status"] == "00"
    assert reply["trade_status"] == "TRADE_PROCESSING"
    assert eft_reply_verified(reply)
    clock.advance(31)
    status = await eft(http, clock, service="service.unified.RefundStatusQuery", refund_no="R1")
    assert status["refund_status"] == "SUCCESS"
    assert status["trade_status"] == "TRADE_CLOSED"
    query = await eft(
        http,
        clock,
        "QRcodeTradeQuery",
        querytype="OUT_TRADE",
        out_trade_no="T1",
        paytype="WeChat",
        payment_type="WECHATCN",
    )
    assert query["trade_type"] == "SALE"
    assert query["trade_status"] == "TRADE_CLOSED"
    assert eft_reply_verified(query)


async def test_eftpay_partial_refund_ends_trade_refund(http: httpx.AsyncClient, clock: ManualClock) -> None:
    await eft(http, clock, **eft_refund(transaction_amount="1.00"))
    clock.advance(31)
    query = await eft(
        http,
        clock,
        "QRcodeTradeQuery",
        querytype="OUT_TRADE",
        out_trade_no="T1",
        refund_no="R1",
        paytype="WeChat",
        payment_type="WECHATCN",
    )
    assert query["trade_type"] == "REFUND"
    assert query["trade_status"] == "TRADE_REFUND"


async def test_eftpay_trade_fail_when_configured(clock: ManualClock) -> None:
    sim = Simulator(SimulatorConfig(completion_delay=0.0, refund_outcome="fail"), clock=clock)
    sim.add_eftpay_order("T1", "10.01")
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        reply = await eft(http, clock, **eft_refund())
    assert reply["trade_status"] == "TRADE_FAIL"


async def test_eftpay_idempotent_and_mismatch(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    first = await eft(http, clock, **eft_refund())
    second = await eft(http, clock, **eft_refund())
    assert first["refund_trade_no"] == second["refund_trade_no"]
    other = await eft(http, clock, **eft_refund(transaction_amount="0.02"))
    assert other["return_status"] not in ("00", "")
    assert eft_reply_verified(other)
    snap = sim.snapshot()
    assert snap.executions == {"eftpay:R1": 1}
    assert snap.order("eftpay", "T1").refunded == 1


async def test_eftpay_never_refunds_more_than_the_order(http: httpx.AsyncClient, clock: ManualClock) -> None:
    assert (await eft(http, clock, **eft_refund(refund_no="A", transaction_amount="10.00")))[
        "return_status"
    ] == "00"
    over = await eft(http, clock, **eft_refund(refund_no="B", transaction_amount="0.02"))
    assert over["return_status"] != "00"


async def test_eftpay_time_more_than_ten_minutes_away_is_refused(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    now = datetime.fromtimestamp(clock.now(), CHINA)
    late = await eft(http, clock, time=eft_time(now - timedelta(minutes=11)), **eft_refund())
    utc = await eft(http, clock, time=(now - timedelta(hours=8)).strftime("%Y%m%d%H%M%S"), **eft_refund())
    near = await eft(http, clock, time=eft_time(now + timedelta(minutes=9)), **eft_refund())
    assert late["return_status"] != "00"
    assert "sign" not in late
    assert utc["return_status"] != "00"
    assert near["return_status"] == "00"


async def test_eftpay_wrong_secret_is_refused(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    reply = await eft(http, clock, secret="wrong", **eft_refund())
    assert reply["return_status"] != "00"
    assert "sign" not in reply
    assert sim.snapshot().refunds == {}


async def test_eftpay_balance(http: httpx.AsyncClient, sim: Simulator, clock: ManualClock) -> None:
    sim.set_balance("eftpay", 50)
    reply = await eft(http, clock, **eft_refund(transaction_amount="0.51"))
    assert reply["return_status"] != "00"
    assert (await eft(http, clock, **eft_refund(transaction_amount="0.50")))["return_status"] == "00"


async def test_eftpay_unknown_fields_are_ignored(http: httpx.AsyncClient, clock: ManualClock) -> None:
    reply = await eft(http, clock, **eft_refund(future_field="x"))
    assert reply["return_status"] == "00"
    assert json.dumps(reply)  # plain JSON
