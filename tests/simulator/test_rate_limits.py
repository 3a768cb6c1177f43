"""The simulator's per-merchant rate limit: each provider's over-limit reply, a sliding window."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paykit_async import (
    EftPayClient,
    HTTPStatusError,
    PayJSClient,
    ProviderError,
    RetryPolicy,
    ValidationError,
    WeChatPayClient,
    WeChatPayV3Client,
)
from paykit_async.pipeline.ratelimit import is_over_limit
from paykit_async.simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    ManualClock,
    Simulator,
    SimulatorConfig,
    load_config,
)
from paykit_async.simulator.ratelimit import RateLimits

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy.none()


def _client(sim: Simulator, provider: str) -> Any:
    options: dict[str, Any] = {
        "base_url": sim.base_url(provider),
        "transport": sim.transport(),
        "retry": ONCE,
    }
    if provider == "wechatpay":
        return WeChatPayClient(DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, DEMO_WECHATPAY.api_key, **options)
    if provider == "wechatpay-v3":
        return WeChatPayV3Client(**sim.wechatpay_v3_keys().client_kwargs(), **options)
    if provider == "payjs":
        return PayJSClient(DEMO_PAYJS.mchid, DEMO_PAYJS.key, **options)
    return EftPayClient(DEMO_EFTPAY.user_confirm_key, DEMO_EFTPAY.secret, **options)


async def _refund(sim: Simulator, client: Any, provider: str, n: int) -> Any:
    if provider == "wechatpay":
        return await client.refund(out_trade_no=f"T{n}", total_fee=100, refund_fee=10, out_refund_no=f"R{n}")
    if provider == "wechatpay-v3":
        return await client.refund(out_trade_no=f"T{n}", total=100, refund=10, out_refund_no=f"R{n}")
    if provider == "payjs":
        return await client.refund(payjs_order_id=f"P{n}")
    sim.add_eftpay_order(f"E{n}", Decimal("1.00"))
    return await client.refund(
        paytype="WeChat",
        payment_type="WECHATCN",
        out_trade_no=f"E{n}",
        transaction_amount=Decimal("0.10"),
        total_fee=Decimal("1.00"),
        refund_no=f"R{n}",
    )


EXPECTED = {
    # provider: (exception type, code or HTTP status the client sees)
    "wechatpay": (ProviderError, "FREQUENCY_LIMITED"),
    "wechatpay-v3": (ProviderError, "FREQUENCY_LIMITED"),
    "payjs": (HTTPStatusError, 429),
    "eftpay": (HTTPStatusError, 429),
}


@pytest.mark.parametrize("provider", list(EXPECTED))
async def test_beyond_the_limit_each_provider_answers_its_over_limit_reply(provider: str) -> None:
    clock = ManualClock()
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=3), clock=clock)
    async with _client(sim, provider) as client:
        for n in range(3):
            await _refund(sim, client, provider, n)
        with pytest.raises(EXPECTED[provider][0]) as refused:
            await _refund(sim, client, provider, 3)
        error = refused.value
        kind, detail = EXPECTED[provider]
        if kind is ProviderError:
            assert isinstance(error, ProviderError)
            assert error.code == detail
        else:
            assert isinstance(error, HTTPStatusError)
            assert error.status_code == detail
            assert error.retry_after == 1.0
        assert error.retryable
        assert is_over_limit(error)
        assert sim.over_limit_replies(provider) == 1
        # Nothing was done: the refund does not exist; a second later it goes through.
        clock.advance(1.0)
        await _refund(sim, client, provider, 3)
    records = [r for r in sim.requests() if r.provider == provider]
    assert [r.over_limit for r in records] == [False, False, False, True, False]
    assert all(0 < r.arrived <= r.at for r in records)
    ledger = sim.snapshot()
    assert len([key for key in ledger.refunds if key[0] == provider]) == 4
    assert ledger.duplicate_payouts == 0


async def test_the_window_slides_and_merchants_are_counted_apart() -> None:
    clock = ManualClock()
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=2), clock=clock)
    async with _client(sim, "wechatpay") as wechat, _client(sim, "payjs") as payjs:
        await _refund(sim, wechat, "wechatpay", 0)
        clock.advance(0.5)
        await _refund(sim, wechat, "wechatpay", 1)
        await _refund(sim, payjs, "payjs", 0)  # another merchant: its own window
        clock.advance(0.25)  # 0.75 s after the first: still two in the last second
        with pytest.raises(ProviderError):
            await _refund(sim, wechat, "wechatpay", 2)
        clock.advance(0.25)  # the first has left the window; the refusal never counted
        await _refund(sim, wechat, "wechatpay", 2)
        with pytest.raises(ProviderError):
            await _refund(sim, wechat, "wechatpay", 3)
    assert sim.over_limit_replies() == sim.over_limit_replies("wechatpay") == 2
    assert sim.over_limit_replies("payjs") == 0


def test_off_by_default_and_in_the_demo() -> None:
    assert SimulatorConfig().rate_limit is None
    limits = RateLimits(None)
    assert all(limits.admit("wechatpay", 0.0) for _ in range(10_000))
    assert limits.refused() == 0
    # The demo builds its SimulatorConfig without a rate limit (its faults may still inject some).
    demo_source = Path(__file__).resolve().parents[2] / "paykit_async" / "cli" / "demo.py"
    assert re.search(r"\brate_limit\s*=", demo_source.read_text(encoding="utf-8")) is None


def test_toml_key_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text("[simulator]\nrate_limit = 150\n", encoding="utf-8")
    assert load_config(path).rate_limit == 150
    for bad in ("0", "1.5", '"150"', "true"):
        path.write_text(f"[simulator]\nrate_limit = {bad}\n", encoding="utf-8")
        with pytest.raises(ValidationError) as error:
            load_config(path)
        assert "rate_limit" in str(error.value)
    with pytest.raises(ValidationError):
        SimulatorConfig(rate_limit=0)
