"""A refusal caused by a wrong configuration can be retried under the same number once fixed;
the idempotency options are client options; ``validate_refund`` is ``refund()`` without I/O."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import anyio
import pytest

from paykit_async import (
    EftPayClient,
    IdempotencyConflict,
    IdempotencyMiddleware,
    MemoryStore,
    PayJSClient,
    ProviderError,
    RetryPolicy,
    ValidationError,
    WeChatPayClient,
)
from paykit_async.pipeline.clock import FakeClock
from paykit_async.pipeline.stores import RecordState
from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY, Simulator, SimulatorConfig

pytestmark = pytest.mark.anyio

KEY = "refund-ORDER-7"


def _wechat(sim: Simulator, api_key: str, store: MemoryStore | None, **options: Any) -> WeChatPayClient:
    return WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        api_key,
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
        idempotency_store=store,
        **options,
    )


async def _refund(client: WeChatPayClient, **extra: Any) -> Any:
    return await client.refund(
        out_trade_no="ORDER-7", total_fee=700, refund_fee=700, idempotency_key=KEY, **extra
    )


def _simulator() -> Simulator:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("ORDER-7", 700)
    return sim


async def test_a_wrong_key_refusal_is_replayed_by_default(anyio_backend: str) -> None:
    sim = _simulator()
    store = MemoryStore()
    async with _wechat(sim, "wrong-key-" + "x" * 22, store) as client:
        with pytest.raises(ProviderError) as caught:
            await _refund(client)
    assert caught.value.message == "签名错误"
    async with _wechat(sim, DEMO_WECHATPAY.api_key, store) as fixed:
        with pytest.raises(ProviderError):
            await _refund(fixed)  # the recorded refusal: nothing sent
    assert sum(r.endpoint == "refund" for r in sim.requests()) == 1


async def test_retry_failed_resends_a_refusal_under_the_same_number_once_fixed(anyio_backend: str) -> None:
    sim = _simulator()
    store = MemoryStore()
    async with _wechat(sim, "wrong-key-" + "x" * 22, store, idempotency_retry_failed=True) as client:
        for _ in range(2):  # refused each time, each time sent again (nothing was executed)
            with pytest.raises(ProviderError):
                await _refund(client)
    refused = await store.get(KEY)
    assert refused is not None
    assert refused.state is RecordState.FAILED
    async with _wechat(sim, DEMO_WECHATPAY.api_key, store, idempotency_retry_failed=True) as fixed:
        result = await _refund(fixed)
        assert not result.replayed
        again = await _refund(fixed)
        assert again.replayed  # a success is never sent again
    numbers = [r.fields["out_refund_no"] for r in sim.requests() if r.endpoint == "refund"]
    assert numbers == [refused.refund_no] * 3
    assert result.out_refund_no == refused.refund_no
    snapshot = sim.snapshot()
    assert snapshot.order("wechatpay", "ORDER-7").payouts == 1
    assert snapshot.duplicate_payouts == 0


async def test_a_corrected_refused_request_is_sent_under_its_number(anyio_backend: str) -> None:
    # Refused for a reason in a descriptive field; the corrected request has another fingerprint.
    sim = _simulator()
    store = MemoryStore()
    async with _wechat(sim, "wrong-key-" + "x" * 22, store) as client:
        with pytest.raises(ProviderError):
            await _refund(client, refund_desc="typo")
    async with _wechat(sim, DEMO_WECHATPAY.api_key, store) as strict:
        with pytest.raises(IdempotencyConflict):  # by default a different request is a conflict
            await _refund(strict, refund_desc="event cancelled")
    async with _wechat(sim, DEMO_WECHATPAY.api_key, store, idempotency_retry_failed=True) as fixed:
        result = await _refund(fixed, refund_desc="event cancelled")
    record = await store.get(KEY)
    assert record is not None
    assert record.state is RecordState.SUCCEEDED
    assert result.out_refund_no == record.refund_no


async def test_idempotency_options_are_client_options(anyio_backend: str) -> None:
    sim = _simulator()
    client = _wechat(
        sim,
        DEMO_WECHATPAY.api_key,
        MemoryStore(),
        retry=RetryPolicy(deadline=10),
        idempotency_lease=45,
        idempotency_wait=2,
        idempotency_retry_failed=True,
    )
    layer = client.pipeline.middlewares[0]
    assert isinstance(layer, IdempotencyMiddleware)
    assert (layer.lease, layer.wait, layer.deadline, layer.retry_failed) == (45, 2, 10, True)
    assert layer.clock is client.clock
    default = _wechat(sim, DEMO_WECHATPAY.api_key, MemoryStore())
    default_layer = default.pipeline.middlewares[0]
    assert isinstance(default_layer, IdempotencyMiddleware)
    assert (default_layer.lease, default_layer.wait, default_layer.retry_failed) == (120, 30, False)
    long_deadline = _wechat(sim, DEMO_WECHATPAY.api_key, MemoryStore(), retry=RetryPolicy(deadline=300))
    assert long_deadline.pipeline.middlewares[0].lease == 600  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match="idempotency_lease"):
        _wechat(sim, DEMO_WECHATPAY.api_key, MemoryStore(), idempotency_lease=30)  # < the 60 s deadline
    for made in (client, default, long_deadline):
        await made.aclose()


async def test_waiting_for_another_worker_never_outlasts_the_deadline(anyio_backend: str) -> None:
    sim = _simulator()
    store = MemoryStore()
    clock = FakeClock()
    async with _wechat(
        sim, DEMO_WECHATPAY.api_key, store, clock=clock, retry=RetryPolicy(deadline=0.2), idempotency_lease=5
    ) as client:
        operation = await client.validate_refund(
            out_trade_no="ORDER-7", total_fee=700, refund_fee=700, idempotency_key=KEY
        )
        from paykit_async.pipeline.idempotency import request_fingerprint

        await store.claim(
            KEY,
            refund_no=operation.refund_no or "",
            fingerprint=request_fingerprint(operation),
            owner="x",
            lease=60,
        )
        with anyio.fail_after(5):  # the default wait is 30 s: the 0.2 s deadline ends it first
            with pytest.raises(Exception, match="another worker"):
                await _refund(client)


async def test_validate_refund_runs_refunds_checks_and_sends_nothing(anyio_backend: str) -> None:
    sim = _simulator()
    async with _wechat(sim, DEMO_WECHATPAY.api_key, MemoryStore()) as client:
        operation = await client.validate_refund(
            out_trade_no="ORDER-7", total_fee=700, refund_fee=700, idempotency_key=KEY
        )
        assert operation.refund_no == client.derived_refund_no(KEY)
        assert operation.fields["refund_fee"] == "700"
        assert operation.url.endswith("/secapi/pay/refund")
        with pytest.raises(ValidationError) as too_much:
            await client.validate_refund(out_trade_no="ORDER-7", total_fee=700, refund_fee=701)
        with pytest.raises(ValidationError) as same:
            await client.refund(out_trade_no="ORDER-7", total_fee=700, refund_fee=701)
        assert str(too_much.value) == str(same.value)
        with pytest.raises(ValidationError, match="colour"):
            await client.validate_refund(out_trade_no="ORDER-7", total_fee=700, refund_fee=7, colour="red")
        with pytest.raises(ValidationError, match="refund_fee"):
            await client.validate_refund(out_trade_no="ORDER-7", total_fee=700)
    async with EftPayClient(
        DEMO_EFTPAY.user_confirm_key,
        DEMO_EFTPAY.secret,
        base_url=sim.base_url("eftpay"),
        transport=sim.transport(),
    ) as eft:
        operation = await eft.validate_refund(
            paytype="WeChat",
            payment_type="WECHATCN",
            out_trade_no="E1",
            transaction_amount=Decimal("1.00"),
            total_fee="2.00",
            idempotency_key=KEY,
        )
        assert operation.refund_no == eft.derived_refund_no(KEY)
        assert len(operation.refund_no or "") == 28
        with pytest.raises(ValidationError, match="exceeds"):
            await eft.validate_refund(
                paytype="WeChat",
                payment_type="WECHATCN",
                out_trade_no="E1",
                transaction_amount="3.00",
                total_fee="2.00",
            )
    async with PayJSClient(
        DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs"), transport=sim.transport()
    ) as payjs:
        operation = await payjs.validate_refund(payjs_order_id="P" * 32)
        assert operation.refund_no == "P" * 32
        with pytest.raises(ValidationError):
            await payjs.validate_refund(payjs_order_id="")
    assert sim.requests() == ()
