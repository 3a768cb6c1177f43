"""The fake WeChat Pay v2, driven with requests signed in the test itself (in process)."""

from __future__ import annotations

import httpx
import pytest

from paykit_async.simulator import ManualClock, Simulator, SimulatorConfig, WeChatPayMerchant

from .helpers import from_xml, wechat_reply_verified, wechat_request

pytestmark = pytest.mark.anyio

REFUND = "/wechatpay/secapi/pay/refund"
QUERY = "/wechatpay/pay/refundquery"
CLOSE = "/wechatpay/pay/closeorder"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1_700_000_000.0)


@pytest.fixture
def sim(clock: ManualClock) -> Simulator:
    simulator = Simulator(SimulatorConfig(completion_delay=60.0), clock=clock)
    simulator.add_wechatpay_order("T1", 1000, transaction_id="4200000001")
    return simulator


async def post(http: httpx.AsyncClient, path: str, body: bytes) -> dict[str, str]:
    response = await http.post(path, content=body)
    assert response.status_code == 200
    return from_xml(response.content)


def refund(no: str = "R1", total: str = "1000", fee: str = "300", **extra: str) -> bytes:
    return wechat_request(out_trade_no="T1", out_refund_no=no, total_fee=total, refund_fee=fee, **extra)


async def test_refund_is_accepted_then_completes_after_the_delay(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    reply = await post(http, REFUND, refund(op_user_id="1900000109"))  # a legacy field, ignored
    assert reply["return_code"] == "SUCCESS"
    assert reply["result_code"] == "SUCCESS"
    assert reply["out_refund_no"] == "R1"
    assert reply["refund_fee"] == "300"
    assert wechat_reply_verified(reply)

    query = await post(http, QUERY, wechat_request(out_refund_no="R1"))
    assert query["refund_status_0"] == "PROCESSING"
    assert wechat_reply_verified(query)
    clock.advance(61)
    query = await post(http, QUERY, wechat_request(out_trade_no="T1"))
    assert query["refund_status_0"] == "SUCCESS"
    assert query["refund_success_time_0"]
    assert query["total_refund_count"] == "1"


async def test_hmac_sha256_requests_get_hmac_signed_replies(http: httpx.AsyncClient) -> None:
    reply = await post(
        http,
        REFUND,
        wechat_request(
            sign_type="HMAC-SHA256", out_trade_no="T1", out_refund_no="R1", total_fee="1000", refund_fee="1"
        ),
    )
    assert reply["result_code"] == "SUCCESS"
    assert len(reply["sign"]) == 64
    assert wechat_reply_verified(reply)


async def test_wrong_key_is_refused_unsigned_with_return_code_fail(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    body = wechat_request(
        key="0" * 32, out_trade_no="T1", out_refund_no="R1", total_fee="1000", refund_fee="1"
    )
    reply = await post(http, REFUND, body)
    assert reply == {"return_code": "FAIL", "return_msg": "签名错误"}
    assert sim.snapshot().refunds == {}
    assert sim.requests()[-1].outcome == "SIGNERROR"


async def test_bad_xml_is_a_protocol_error(http: httpx.AsyncClient) -> None:
    reply = await post(http, REFUND, b"<xml><appid>")
    assert reply["return_code"] == "FAIL"
    assert "sign" not in reply


async def test_same_refund_number_same_amounts_pays_once(http: httpx.AsyncClient, sim: Simulator) -> None:
    first = await post(http, REFUND, refund())
    second = await post(http, REFUND, refund())
    assert first["refund_id"] == second["refund_id"]
    snap = sim.snapshot()
    assert snap.refund("wechatpay", "R1").requests == 2
    assert snap.executions == {"wechatpay:R1": 1}
    assert snap.order("wechatpay", "T1").refunded == 300
    assert snap.duplicate_payouts == 0


async def test_same_refund_number_different_amount_is_refused(
    http: httpx.AsyncClient, sim: Simulator
) -> None:
    await post(http, REFUND, refund(fee="300"))
    reply = await post(http, REFUND, refund(fee="301"))
    assert reply["result_code"] == "FAIL"
    assert reply["err_code"] == "PARAM_ERROR"
    assert "订单金额或退款金额与之前请求不一致" in reply["err_code_des"]
    assert wechat_reply_verified(reply)
    assert sim.snapshot().order("wechatpay", "T1").refunded == 300


async def test_refunds_never_exceed_the_order(http: httpx.AsyncClient, sim: Simulator) -> None:
    assert (await post(http, REFUND, refund("R1", fee="600")))["result_code"] == "SUCCESS"
    over = await post(http, REFUND, refund("R2", fee="401"))
    assert over["result_code"] == "FAIL"
    assert over["err_code"] == "ERROR"
    assert (await post(http, REFUND, refund("R3", fee="400")))["result_code"] == "SUCCESS"
    assert sim.snapshot().order("wechatpay", "T1").refunded == 1000


async def test_at_most_fifty_refunds_per_order(http: httpx.AsyncClient, sim: Simulator) -> None:
    for n in range(50):
        assert (await post(http, REFUND, refund(f"R{n}", fee="1")))["result_code"] == "SUCCESS"
    reply = await post(http, REFUND, refund("R50", fee="1"))
    assert reply["result_code"] == "FAIL"
    assert sim.snapshot().order("wechatpay", "T1").payouts == 50


async def test_notenough_when_the_balance_does_not_cover_the_refund(
    clock: ManualClock,
) -> None:
    merchant = WeChatPayMerchant(
        appid="wxd930ea5d5a258f4f",
        mch_id="1900000109",
        api_key="simulatorsimulatorsimulator00001",
        balance=500,
    )
    sim = Simulator(SimulatorConfig(wechatpay=merchant), clock=clock)
    sim.add_wechatpay_order("T1", 1000)
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        assert (await post(http, REFUND, refund("R1", fee="400")))["result_code"] == "SUCCESS"
        reply = await post(http, REFUND, refund("R2", fee="200"))
    assert reply["err_code"] == "NOTENOUGH"
    assert sim.balance("wechatpay") == 100


async def test_unknown_order_and_auto_orders(clock: ManualClock) -> None:
    sim = Simulator(SimulatorConfig(), clock=clock)
    auto = Simulator(SimulatorConfig(auto_orders=True), clock=clock)
    body = wechat_request(out_trade_no="NEW", out_refund_no="R1", total_fee="250", refund_fee="250")
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        assert (await post(http, REFUND, body))["err_code"] == "ORDERNOTEXIST"
    async with httpx.AsyncClient(transport=auto.httpx_transport(), base_url="http://sim") as http:
        assert (await post(http, REFUND, body))["result_code"] == "SUCCESS"
    assert auto.snapshot().order("wechatpay", "NEW").total == 250


async def test_close_not_before_five_minutes(
    http: httpx.AsyncClient, sim: Simulator, clock: ManualClock
) -> None:
    sim.add_wechatpay_order("U1", 100, paid=False)
    early = await post(http, CLOSE, wechat_request(out_trade_no="U1"))
    assert early["result_code"] == "FAIL"
    clock.advance(301)
    closed = await post(http, CLOSE, wechat_request(out_trade_no="U1"))
    assert closed["result_code"] == "SUCCESS"
    assert wechat_reply_verified(closed)
    again = await post(http, CLOSE, wechat_request(out_trade_no="U1"))
    assert again["err_code"] == "ORDERCLOSED"
    paid = await post(http, CLOSE, wechat_request(out_trade_no="T1"))
    assert paid["err_code"] == "ORDERPAID"


async def test_refund_close_outcome_is_reported_and_gives_the_money_back(clock: ManualClock) -> None:
    sim = Simulator(SimulatorConfig(completion_delay=0.0, refund_outcome="closed"), clock=clock)
    sim.add_wechatpay_order("T1", 1000)
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        await post(http, REFUND, refund(fee="1000"))
        query = await post(http, QUERY, wechat_request(out_refund_no="R1"))
    assert query["refund_status_0"] == "REFUNDCLOSE"
    assert sim.snapshot().order("wechatpay", "T1").refunded == 0


async def test_refundv2_with_detail_is_accepted(http: httpx.AsyncClient) -> None:
    detail = '{"goods_detail":[{"goods_id":"1","refund_quantity":1,"refund_amount":300}]}'
    reply = await post(http, "/wechatpay/secapi/pay/refundv2", refund(detail=detail))
    assert reply["result_code"] == "SUCCESS"
    assert "promotion_detail" in reply
    assert wechat_reply_verified(reply)


async def test_query_of_unknown_refund(http: httpx.AsyncClient) -> None:
    reply = await post(http, QUERY, wechat_request(out_refund_no="nope"))
    assert reply["err_code"] == "REFUNDNOTEXIST"
