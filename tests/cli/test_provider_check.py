"""``--check-provider``'s parts: the provider's refunds of an order (every page), and the rule."""

from __future__ import annotations

import pytest

from paykit_async import WeChatPayClient
from paykit_async.cli.provider_check import ProviderRefunds, provider_refunds, repeat_refusal
from paykit_async.simulator import DEMO_WECHATPAY, Simulator, SimulatorConfig

from .helpers import demo_wechat_client

pytestmark = pytest.mark.anyio

ROW = {"out_trade_no": "P1", "total_fee": 1000, "refund_fee": 300}


async def test_every_page_of_an_orders_refunds_is_read_and_an_unknown_order_has_none() -> None:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("P1", 10_000)
    async with demo_wechat_client(sim) as client:
        for n in range(12):  # two pages of the refund query (10 per page)
            await client.refund(
                out_trade_no="P1", total_fee=10_000, refund_fee=10 + n, out_refund_no=f"R{n:02d}"
            )
        listed = await provider_refunds(
            client, [("out_trade_no", "P1"), ("out_trade_no", "NO-SUCH-ORDER"), ("out_trade_no", "P1")],
            concurrency=2, rate=None,
        )  # fmt: skip
    assert sorted(listed) == [("out_trade_no", "NO-SUCH-ORDER"), ("out_trade_no", "P1")]
    order = listed[("out_trade_no", "P1")]
    assert order.error is None
    assert sorted((number, fee) for number, fee, _status in order.refunds) == [
        (f"R{n:02d}", 10 + n) for n in range(12)
    ]
    assert listed[("out_trade_no", "NO-SUCH-ORDER")] == ProviderRefunds(
        identifier="out_trade_no=NO-SUCH-ORDER"
    )


async def test_an_order_that_cannot_be_queried_is_an_error_not_an_exception() -> None:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("P1", 1000)
    wrong_key = WeChatPayClient(
        DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, "0" * 32,
        base_url=sim.base_url("wechatpay"), transport=sim.transport(),
    )  # fmt: skip
    async with wrong_key:
        listed = await provider_refunds(wrong_key, [("out_trade_no", "P1")], concurrency=1, rate=None)
    found = listed[("out_trade_no", "P1")]
    assert found.error is not None
    assert "0" * 32 not in found.error
    reason = repeat_refusal(found, ROW, "MINE")
    assert reason is not None
    assert "could not ask the provider" in reason


@pytest.mark.parametrize(
    ("refunds", "refused"),
    [
        pytest.param((("OTHER", 300, "SUCCESS"),), True, id="same-amount-other-number"),
        pytest.param((("OTHER", 300, "PROCESSING"),), True, id="still-processing"),
        pytest.param((("OTHER", 300, None),), True, id="status-not-given"),
        pytest.param((("OTHER", None, "SUCCESS"),), True, id="amount-not-given"),
        pytest.param((("OTHER", 300, "REFUNDCLOSE"),), False, id="closed-refunds-paid-nothing"),
        pytest.param((("OTHER", 200, "SUCCESS"),), False, id="another-amount"),
        pytest.param((("MINE", 300, "SUCCESS"), ("OTHER", 300, "SUCCESS")), False, id="own-number-listed"),
        pytest.param((), False, id="no-refunds"),
    ],
)
def test_the_rule(refunds: tuple[tuple[str, int | None, str | None], ...], refused: bool) -> None:
    listed = ProviderRefunds(identifier="out_trade_no=P1", refunds=refunds)
    reason = repeat_refusal(listed, ROW, "MINE")
    assert (reason is not None) is refused
    if refused:
        assert "OTHER" in str(reason)
        assert "--repeat-other-batches" in str(reason)
