"""Fault injection: seeded, per provider and endpoint, before or after the work."""

from __future__ import annotations

import json

import httpx
import pytest

from paykit_async.errors import ValidationError
from paykit_async.simulator import FaultPlan, FaultRule, Simulator, SimulatorConfig
from paykit_async.simulator.config import config_from_mapping
from paykit_async.simulator.faults import FaultInjector, FaultKind

from .helpers import from_xml, wechat_reply_verified, wechat_request

pytestmark = pytest.mark.anyio

REFUND = "/wechatpay/secapi/pay/refund"


def sim_with(**rates: float) -> Simulator:
    rule = FaultRule(provider="wechatpay", endpoint="refund", **rates)
    sim = Simulator(SimulatorConfig(faults=FaultPlan(seed=3, rules=(rule,))))
    sim.add_wechatpay_order("T1", 1000)
    return sim


def refund_body() -> bytes:
    return wechat_request(out_trade_no="T1", out_refund_no="R1", total_fee="1000", refund_fee="100")


async def send(sim: Simulator) -> httpx.Response:
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        return await http.post(REFUND, content=refund_body())


def test_same_seed_same_faults() -> None:
    plan = FaultPlan(seed=42, rules=(FaultRule(drop_before=0.2, truncated=0.2, bad_signature=0.2),))
    first = [FaultInjector(plan).decide("wechatpay", "refund").kind for _ in range(1)]
    a, b = FaultInjector(plan), FaultInjector(plan)
    seq_a = [a.decide("payjs", "refund").kind for _ in range(200)]
    seq_b = [b.decide("payjs", "refund").kind for _ in range(200)]
    assert seq_a == seq_b
    assert first
    counts = {kind: seq_a.count(kind) for kind in (FaultKind.DROP_BEFORE, FaultKind.TRUNCATED, None)}
    assert all(count > 10 for count in counts.values())


def test_rules_match_provider_and_endpoint() -> None:
    plan = FaultPlan(rules=(FaultRule(provider="payjs", endpoint="refund", server_error=1.0),))
    injector = FaultInjector(plan)
    assert injector.decide("payjs", "refund").kind is FaultKind.SERVER_ERROR
    assert injector.decide("payjs", "close").kind is None
    assert injector.decide("wechatpay", "refund").kind is None


def test_rates_are_validated() -> None:
    with pytest.raises(ValidationError):
        FaultRule(drop_before=0.7, drop_after=0.7)
    with pytest.raises(ValidationError):
        FaultRule(truncated=1.5)


async def test_drop_before_does_no_work() -> None:
    sim = sim_with(drop_before=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        await send(sim)
    assert sim.snapshot().refunds == {}
    assert sim.requests()[-1].fault == "drop_before"


async def test_drop_after_does_the_work() -> None:
    sim = sim_with(drop_after=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        await send(sim)
    assert sim.snapshot().refund("wechatpay", "R1").executions == 1


async def test_error_after_answers_500_but_refunded() -> None:
    sim = sim_with(error_after=1.0)
    response = await send(sim)
    assert response.status_code == 500
    assert sim.snapshot().order("wechatpay", "T1").refunded == 100


async def test_server_error_and_bad_gateway_do_no_work() -> None:
    for rates in ({"server_error": 1.0}, {"bad_gateway": 1.0}):
        sim = sim_with(**rates)
        response = await send(sim)
        assert response.status_code in (500, 502, 503)
        assert sim.snapshot().refunds == {}


async def test_truncated_reply_after_the_work() -> None:
    sim = sim_with(truncated=1.0)
    response = await send(sim)
    assert response.status_code == 200
    assert not response.content.endswith(b"</xml>")
    assert sim.snapshot().refund("wechatpay", "R1").executions == 1


async def test_bad_signature_after_the_work() -> None:
    sim = sim_with(bad_signature=1.0)
    reply = from_xml((await send(sim)).content)
    assert reply["result_code"] == "SUCCESS"
    assert not wechat_reply_verified(reply)


async def test_retryable_codes_and_rate_limit_in_wechat_shape() -> None:
    retry = from_xml((await send(sim_with(retryable_code=1.0))).content)
    assert retry["err_code"] in ("SYSTEMERROR", "BIZERR_NEED_RETRY")
    assert wechat_reply_verified(retry)
    limited = from_xml((await send(sim_with(rate_limited=1.0))).content)
    assert limited["err_code"] == "FREQUENCY_LIMITED"


async def test_payjs_rate_limit_is_http_429_with_retry_after() -> None:
    from .helpers import payjs_request

    rule = FaultRule(provider="payjs", rate_limited=1.0, retry_after=7)
    sim = Simulator(SimulatorConfig(auto_orders=True, faults=FaultPlan(rules=(rule,))))
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as http:
        response = await http.post("/payjs/api/refund", content=payjs_request(payjs_order_id="P1"))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert json.loads(response.content)["return_code"] == 0
    assert sim.snapshot().refunds == {}


def test_faults_from_toml_mapping() -> None:
    config = config_from_mapping(
        {
            "simulator": {"auto_orders": True, "completion_delay": 0.5},
            "faults": {
                "seed": 9,
                "rules": [{"provider": "eftpay", "endpoint": "JSAPIService", "drop_after": 0.25}],
            },
        }
    )
    assert config.auto_orders
    assert config.completion_delay == 0.5
    assert config.faults.seed == 9
    assert config.faults.rules[0].drop_after == 0.25
    with pytest.raises(ValidationError):
        config_from_mapping({"simulator": {"no_such_key": 1}})


async def test_a_plain_asgi_transport_sees_drops_as_transport_errors() -> None:
    from paykit_async import HttpxTransport, RetryPolicy
    from paykit_async.providers.wechatpay import WeChatPayClient
    from paykit_async.simulator import DEMO_WECHATPAY

    sim = sim_with(drop_after=1.0)
    transport = HttpxTransport(httpx_transport=httpx.ASGITransport(app=sim.app))
    async with WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url="http://sim/wechatpay",
        transport=transport,
        retry=RetryPolicy.none(),
    ) as client:
        # The reply is lost after the refund was made: the client settles it by a refund query.
        result = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, out_refund_no="R1")
    assert result.out_refund_no == "R1"
    assert [(r.endpoint, r.fault) for r in sim.requests()] == [
        ("refund", "drop_after"),
        ("refundquery", None),
    ]
    assert sim.snapshot().executions == {"wechatpay:R1": 1}
