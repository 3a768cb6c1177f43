"""The provider's request id (WeChat Pay v3 ``Request-ID``) on results and on errors; None where a
provider sends none (WeChat Pay v2, PAYJS and eftPay document no request id)."""

from __future__ import annotations

import httpx
import pytest

from paykit_async import (
    HTTPStatusError,
    HttpxTransport,
    PayJSClient,
    ProviderError,
    RetryPolicy,
    WeChatPayV3Client,
)
from paykit_async.pipeline.core import WireResponse, recording_wire, request_id_of
from paykit_async.simulator import DEMO_PAYJS, Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio


async def test_v3_results_and_errors_carry_wechats_request_id() -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    async with WeChatPayV3Client(
        **sim.wechatpay_v3_keys().client_kwargs(),
        base_url=sim.base_url("wechatpay-v3"),
        transport=sim.transport(),
    ) as client:
        refund = await client.refund(refund=100, total=1000, out_trade_no="T1", out_refund_no="R1")
        query = await client.query_refund("R1")
        closed = await client.close_order("T2")
        ids = [refund.request_id, query.request_id, closed.request_id]
        assert all(isinstance(i, str) and len(i) == 24 for i in ids), ids
        assert len(set(ids)) == 3
        sim.set_balance("wechatpay-v3", 0)
        with pytest.raises(ProviderError) as refused:
            await client.refund(refund=100, total=1000, out_trade_no="T3", out_refund_no="R3")
    assert refused.value.code == "NOT_ENOUGH"
    assert isinstance(refused.value.request_id, str)
    assert refused.value.request_id not in ids


async def test_a_provider_without_request_ids_leaves_them_none() -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True))
    async with PayJSClient(
        DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs"), transport=sim.transport()
    ) as client:
        closed = await client.close(payjs_order_id="P1")
    assert not hasattr(closed, "request_id") or closed.request_id is None


async def test_any_error_after_a_reply_with_a_request_id_header_carries_it() -> None:
    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, headers={"Request-ID": "abc123"}, content=b"<html>bad gateway</html>")

    transport = HttpxTransport(httpx_transport=httpx.MockTransport(reply))
    async with PayJSClient(
        DEMO_PAYJS.mchid, DEMO_PAYJS.key, transport=transport, retry=RetryPolicy.none()
    ) as client:
        with recording_wire() as record, pytest.raises(HTTPStatusError) as failed:
            await client.close(payjs_order_id="P1")
    assert getattr(failed.value, "request_id", None) == "abc123"
    assert (record.method, record.status_code, record.request_id) == ("POST", 502, "abc123")
    assert record.url == "https://payjs.cn/api/close"


def test_request_ids_are_read_from_the_known_headers_and_bounded() -> None:
    assert request_id_of({"request-id": "x"}) == "x"
    assert request_id_of({"x-request-id": "y"}) == "y"
    assert request_id_of({}) is None
    assert (
        request_id_of(WireResponse(status_code=200, headers={"request-id": "z" * 500}).headers) == "z" * 128
    )
