"""Clients this project did not write: wechatpy (sync, requests) over real mutual TLS."""

from __future__ import annotations

import anyio
import pytest
from wechatpy.exceptions import WeChatPayException
from wechatpy.pay import WeChatPay

from paykit_async.simulator import DEMO_WECHATPAY, Simulator, SimulatorConfig

from ..servers import TLSFiles, serve_asgi

pytestmark = pytest.mark.anyio


def wechatpy_client(base_url: str, tls: TLSFiles, api_key: str = DEMO_WECHATPAY.api_key) -> WeChatPay:
    client = WeChatPay(
        appid=DEMO_WECHATPAY.appid,
        api_key=api_key,
        mch_id=DEMO_WECHATPAY.mch_id,
        mch_cert=tls.client_cert_file,
        mch_key=tls.client_key_file,
    )
    client.API_BASE_URL = f"{base_url}/wechatpay/"
    client._http.verify = tls.ca_file  # requests: trust the test CA (verification stays on)
    client._http.trust_env = False
    return client


async def test_wechatpy_refund_and_query_over_mtls(tls_files: TLSFiles) -> None:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("W1", 888)
    with serve_asgi(sim.app, tls=tls_files, require_client_cert=True) as base_url:
        client = wechatpy_client(base_url, tls_files)
        # wechatpy sends the legacy op_user_id and refund_account: the simulator ignores/keeps them.
        reply = await anyio.to_thread.run_sync(
            lambda: client.refund.apply(total_fee=888, refund_fee=88, out_refund_no="WR1", out_trade_no="W1")
        )
        assert reply["result_code"] == "SUCCESS"
        assert reply["refund_fee"] == "88"
        assert client.check_signature(dict(reply))
        query = await anyio.to_thread.run_sync(lambda: client.refund.query(out_refund_no="WR1"))
        assert query["refund_status_0"] == "SUCCESS"
    assert sim.snapshot().order("wechatpay", "W1").refunded == 88
    fields = sim.requests()[0].fields
    assert "op_user_id" in fields


async def test_wechatpy_with_a_wrong_key_gets_signerror(tls_files: TLSFiles) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True))
    with serve_asgi(sim.app, tls=tls_files, require_client_cert=True) as base_url:
        client = wechatpy_client(base_url, tls_files, api_key="0" * 32)
        with pytest.raises(WeChatPayException) as refused:
            await anyio.to_thread.run_sync(
                lambda: client.refund.apply(total_fee=1, refund_fee=1, out_refund_no="X", out_trade_no="X")
            )
    assert refused.value.return_code == "FAIL"
    assert refused.value.return_msg == "签名错误"
    assert sim.snapshot().refunds == {}
