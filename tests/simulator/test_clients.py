"""The project's provider clients against the simulator: in process and over real mutual TLS."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from paykit_async import (
    FakeClock,
    HttpxTransport,
    ProviderError,
    RefundOutcomeUnknown,
    RetryPolicy,
    SignatureError,
)
from paykit_async.providers.eftpay import EftPayClient
from paykit_async.providers.payjs import PayJSClient
from paykit_async.providers.wechatpay import WeChatPayClient
from paykit_async.simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    Simulator,
    SimulatorConfig,
)
from paykit_async.transport import build_ssl_context

from ..servers import TLSFiles, serve_asgi

pytestmark = pytest.mark.anyio


class Target:
    """Where clients reach the simulator and the client options that get them there."""

    def __init__(self, sim: Simulator, mode: str, root: str | None, tls: TLSFiles) -> None:
        self.sim, self.mode, self.root, self.tls = sim, mode, root, tls

    def url(self, provider: str) -> str:
        return self.sim.base_url(provider) if self.root is None else self.sim.base_url(provider, self.root)

    def wechat_options(self) -> dict[str, Any]:
        if self.root is None:
            return {"transport": self.sim.transport()}
        return {"cert": self.tls.client_certificate(), "ca_file": self.tls.ca_file}

    def plain_options(self) -> dict[str, Any]:
        """PAYJS and eftPay need no client certificate; the mTLS test server demands one anyway."""
        if self.root is None:
            return {"transport": self.sim.transport()}
        context = build_ssl_context(self.tls.client_certificate(), self.tls.ca_file)
        return {"transport": HttpxTransport(httpx_transport=httpx.AsyncHTTPTransport(verify=context))}

    def wechat(self, **extra: Any) -> WeChatPayClient:
        options = self.wechat_options() | extra
        return WeChatPayClient(
            DEMO_WECHATPAY.appid,
            DEMO_WECHATPAY.mch_id,
            DEMO_WECHATPAY.api_key,
            base_url=self.url("wechatpay"),
            **options,
        )

    def payjs(self, **extra: Any) -> PayJSClient:
        return PayJSClient(
            DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=self.url("payjs"), **(self.plain_options() | extra)
        )

    def eftpay(self, **extra: Any) -> EftPayClient:
        return EftPayClient(
            DEMO_EFTPAY.user_confirm_key,
            DEMO_EFTPAY.secret,
            base_url=self.url("eftpay"),
            **(self.plain_options() | extra),
        )


@contextlib.contextmanager
def target_for(config: SimulatorConfig, mode: str, tls: TLSFiles) -> Iterator[Target]:
    sim = Simulator(config)
    if mode == "in_process":
        yield Target(sim, mode, None, tls)
    else:
        with serve_asgi(sim.app, tls=tls, require_client_cert=True) as root:
            yield Target(sim, mode, root, tls)


@pytest.fixture(params=["in_process", "mtls"])
def target(request: pytest.FixtureRequest, tls_files: TLSFiles) -> Iterator[Target]:
    with target_for(SimulatorConfig(auto_orders=True, completion_delay=0.0), request.param, tls_files) as t:
        yield t


async def test_wechatpay_refund_query_and_close(target: Target) -> None:
    target.sim.add_wechatpay_order("U1", 100, paid=False, created_at=target.sim.clock.now() - 600)
    async with target.wechat() as client:
        result = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=250, out_refund_no="R1")
        assert result.out_refund_no == "R1"
        assert result.refund_fee == 250
        again = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=250, out_refund_no="R1")
        assert again.refund_id == result.refund_id
        query = await client.query_refund(out_refund_no="R1")
        assert query.refunds[0].refund_status == "SUCCESS"
        await client.close_order(out_trade_no="U1")
        with pytest.raises(ProviderError) as refused:
            await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=251, out_refund_no="R1")
        assert "不一致" in refused.value.message
    snap = target.sim.snapshot()
    assert snap.executions == {"wechatpay:R1": 1}
    assert snap.duplicate_payouts == 0


async def test_wechatpay_hmac_and_refundv2(target: Target) -> None:
    async with target.wechat(sign_type="HMAC-SHA256") as client:
        detail = {"goods_detail": [{"goods_id": "1", "refund_quantity": 1, "refund_amount": 100}]}
        result = await client.refund(
            out_trade_no="T2", total_fee=500, refund_fee=100, out_refund_no="V2", detail=detail
        )
        assert result.out_refund_no == "V2"
    assert target.sim.requests()[-1].path == "/wechatpay/secapi/pay/refundv2"


async def test_wechatpay_wrong_key_is_refused(target: Target) -> None:
    options = target.wechat_options()
    async with WeChatPayClient(
        DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, "f" * 32, base_url=target.url("wechatpay"), **options
    ) as client:
        with pytest.raises(ProviderError):
            await client.refund(out_trade_no="T1", total_fee=100, refund_fee=1, out_refund_no="R1")
    assert target.sim.snapshot().refunds == {}


async def test_payjs_refund_check_and_unsigned_duplicate(target: Target) -> None:
    async with target.payjs() as client:
        result = await client.refund(payjs_order_id="P1")
        assert result.return_code == 1
        assert result.payjs_order_id == "P1"
        check = await client.check(payjs_order_id="P1")
        assert check.status == 1
        # The duplicate answers return_code=1 without sign: the client must not trust it blindly.
        duplicate = await client.refund(payjs_order_id="P1")
        assert duplicate.settled_by_query
    assert target.sim.snapshot().executions == {"payjs:P1": 1}


async def test_payjs_wrong_key(target: Target) -> None:
    async with PayJSClient(
        DEMO_PAYJS.mchid, "wrong-key", base_url=target.url("payjs"), **target.plain_options()
    ) as client:
        with pytest.raises((ProviderError, SignatureError)):
            await client.refund(payjs_order_id="P1")
    assert target.sim.snapshot().refunds == {}


async def test_eftpay_refund_and_query(target: Target) -> None:
    async with target.eftpay() as client:
        result = await client.refund(
            paytype="WeChat",
            payment_type="WECHATCN",
            out_trade_no="E1",
            transaction_amount=Decimal("1.50"),
            total_fee=Decimal("10.00"),
            refund_no="ER1",
        )
        assert result.return_status == "00"
        assert result.refund_no == "ER1"
        query = await client.query(
            out_trade_no="E1", paytype="WeChat", payment_type="WECHATCN", refund_no="ER1"
        )
        assert query.trade_status == "TRADE_REFUND"
    snap = target.sim.snapshot()
    assert snap.order("eftpay", "E1").refunded == 150


async def test_eftpay_wrong_secret(target: Target) -> None:
    async with EftPayClient(
        DEMO_EFTPAY.user_confirm_key, "wrong", base_url=target.url("eftpay"), **target.plain_options()
    ) as client:
        with pytest.raises(ProviderError):
            await client.refund(
                paytype="WeChat",
                payment_type="WECHATCN",
                out_trade_no="E1",
                transaction_amount=Decimal("1"),
                total_fee=Decimal("10"),
                refund_no="ER1",
            )


@pytest.mark.parametrize("mode", ["in_process", "mtls"])
async def test_exactly_once_through_faults(mode: str, tls_files: TLSFiles) -> None:
    """Lost replies, 5xx and bad signatures: retries with the same numbers never pay twice."""
    rule = FaultRule(
        endpoint="refund",
        drop_before=0.1,
        drop_after=0.15,
        error_after=0.1,
        truncated=0.1,
        bad_signature=0.05,
        retryable_code=0.1,
        server_error=0.05,
    )
    config = SimulatorConfig(auto_orders=True, completion_delay=0.0, faults=FaultPlan(seed=11, rules=(rule,)))
    settled = 0
    with target_for(config, mode, tls_files) as target:
        policy = RetryPolicy(attempts=8, deadline=None)
        async with target.wechat(retry=policy, clock=FakeClock()) as client:
            for n in range(25):
                try:
                    await client.refund(
                        out_trade_no=f"F{n}", total_fee=100, refund_fee=100, out_refund_no=f"FR{n}"
                    )
                    settled += 1
                except (SignatureError, ProviderError, RefundOutcomeUnknown):
                    pass
        snap = target.sim.snapshot()
    assert snap.duplicate_payouts == 0
    assert all(count == 1 for count in snap.executions.values())
    assert settled > 0
    assert any(r.fault for r in target.sim.requests())
