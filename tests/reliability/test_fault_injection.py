"""500 refunds through a provider that fails a quarter of all attempts: exactly once, never lied about.

The provider's ledger is the judge: no order refunded under two refund numbers, no executed refund
reported as a definite failure, nothing reported done that was not executed.
"""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from paykit_async.errors import PaykitError, ProviderError, RefundOutcomeUnknown
from paykit_async.pipeline.clock import FakeClock
from paykit_async.pipeline.core import Outcome
from paykit_async.pipeline.retry import RetryBudget, RetryPolicy
from paykit_async.pipeline.stores import MemoryStore, SQLiteStore
from paykit_async.pipeline.stores.base import IdempotencyStore

from .fake_provider import (
    AFTER_WORK_FAULTS,
    BEFORE_WORK_FAULTS,
    FakeProvider,
    FakeRefundClient,
    FakeTransport,
)

pytestmark = pytest.mark.anyio

REFUNDS = 500
ORDER_TOTAL = 1000


def _business_refunds() -> dict[str, int]:
    """Order id → refund amount; every 20th asks for more than was paid (a definite refusal)."""
    return {f"O{i:04d}": (ORDER_TOTAL * 2 if i % 20 == 7 else 100 + i) for i in range(REFUNDS)}


def _store(kind: str, tmp_path: Path) -> IdempotencyStore | None:
    """The idempotency store a ``store_kind`` parameter names (``"none"``: no store)."""
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(tmp_path / "keys.db")
    assert kind == "none", kind
    return None


def _is_definite_failure(error: PaykitError) -> bool:
    return isinstance(error, ProviderError) and not error.retryable and not error.outcome_unknown


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "none"])
async def test_500_refunds_with_a_quarter_of_attempts_failing(store_kind: str, tmp_path: Path) -> None:
    refunds = _business_refunds()
    provider = FakeProvider(orders=dict.fromkeys(refunds, ORDER_TOTAL), fault_rate=0.25, seed=20261122)
    store = _store(store_kind, tmp_path)
    clock = FakeClock()
    client = FakeRefundClient(
        base_url="https://fake.test",
        transport=FakeTransport(provider),
        store=store,
        policy=RetryPolicy(),  # the defaults: 4 attempts, 0.5 s → 8 s, full jitter
        budget=RetryBudget(),
        clock=clock,
        rng=random.Random(7),
    )
    done: dict[str, Outcome] = {}
    failed: dict[str, PaykitError] = {}
    unknown: dict[str, PaykitError] = {}
    first_numbers: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(25)

    async def one(order_id: str, amount: int) -> None:
        async with limiter:
            operation = client.refund_operation(order_id=order_id, amount=amount, key=f"key-{order_id}")
            first_numbers[order_id] = operation.fields["refund_no"]
            try:
                done[order_id] = await client.pipeline(operation)
            except PaykitError as error:
                (failed if _is_definite_failure(error) else unknown)[order_id] = error

    async with anyio.create_task_group() as tg:
        for order_id, amount in refunds.items():
            tg.start_soon(one, order_id, amount)

    # The faults really happened, on both sides of the work, and retries and settling ran.
    assert sum(provider.fault_counts.values()) > REFUNDS * 0.2
    for kind in BEFORE_WORK_FAULTS + AFTER_WORK_FAULTS:
        assert provider.fault_counts[kind] > 10, kind
    assert any(outcome.attempts > 1 for outcome in done.values())
    assert clock.sleeps
    assert max(clock.sleeps) <= RetryPolicy().max_retry_after

    assert any(outcome.settled_by_query for outcome in done.values())
    by_order = provider.executions_by_order()
    # No business refund executed under two refund numbers.
    assert all(len(executions) == 1 for executions in by_order.values())
    # Nothing reported done that was not executed, and under the number that was reported.
    for order_id, outcome in done.items():
        (executed,) = by_order[order_id]
        assert outcome.fields["refund_no"] == executed.refund_no == first_numbers[order_id]
        assert outcome.fields["refund_id"] == executed.refund_id
    # No executed refund reported as a definite failure; the definite failures are exactly the
    # refunds larger than their order.
    assert not set(failed) & set(by_order)
    too_large = {order_id for order_id, amount in refunds.items() if amount > ORDER_TOTAL}
    assert set(failed) <= too_large
    assert len(failed) > len(too_large) // 2
    assert all(isinstance(error, ProviderError) and error.code == "NOT_ENOUGH" for error in failed.values())
    # An unknown outcome always names the refund number that was sent, never a new one.
    for order_id, error in unknown.items():
        if isinstance(error, RefundOutcomeUnknown):
            assert error.refund_no == first_numbers[order_id]

    # Calling again resolves every open refund with its first refund number (through the key, or
    # with the number itself when there is no store); definite failures stay failures.
    provider.fault_rate = 0.0
    for order_id in unknown:
        refund_no = None if store is not None else first_numbers[order_id]
        if order_id in too_large:
            with pytest.raises(ProviderError, match="NOT_ENOUGH"):
                await client.refund(
                    order_id=order_id, amount=refunds[order_id], key=f"key-{order_id}", refund_no=refund_no
                )
            continue
        outcome = await client.refund(
            order_id=order_id, amount=refunds[order_id], key=f"key-{order_id}", refund_no=refund_no
        )
        assert outcome.fields["refund_no"] == first_numbers[order_id]
    if store is not None:
        replayed = await client.refund(order_id="O0001", amount=refunds["O0001"], key="key-O0001")
        assert replayed.replayed
        assert replayed.attempts == 0
        with pytest.raises(ProviderError, match="NOT_ENOUGH"):
            await client.refund(order_id="O0007", amount=refunds["O0007"], key="key-O0007")
        await store.aclose()

    by_order = provider.executions_by_order()
    assert set(by_order) == set(refunds) - too_large
    assert all(len(executions) == 1 for executions in by_order.values())
    assert provider.executed_count() == REFUNDS - len(too_large)


# -- the same run on WeChat Pay API v3: the simulator's v3 endpoints are the provider -------------


V3_FAULT_KINDS = (
    "drop_before",
    "bad_gateway",
    "server_error",
    "rate_limited",
    "retryable_code",
    "drop_after",
    "error_after",
    "truncated",
    "bad_signature",
)


@pytest.mark.parametrize("store_kind", ["memory", "sqlite", "none"])
async def test_500_v3_refunds_with_a_quarter_of_attempts_failing(store_kind: str, tmp_path: Path) -> None:
    """Real RSA signatures, real verification, nine fault kinds on every endpoint (queries too)."""
    from paykit_async import WeChatPayV3Client, derive_refund_no
    from paykit_async.simulator import FaultPlan, FaultRule, Simulator, SimulatorConfig

    rule = FaultRule(provider="wechatpay-v3", **dict.fromkeys(V3_FAULT_KINDS, 0.25 / len(V3_FAULT_KINDS)))
    simulator = Simulator(
        SimulatorConfig(completion_delay=0.0, faults=FaultPlan(seed=20261122, rules=(rule,)))
    )
    # Every 20th refund names the wrong order total: a definite, signed PARAM_ERROR.
    totals = {f"O{i:04d}": ORDER_TOTAL * 2 if i % 20 == 7 else ORDER_TOTAL for i in range(REFUNDS)}
    for order_id in totals:
        simulator.add_wechatpay_v3_order(order_id, ORDER_TOTAL)
    store = _store(store_kind, tmp_path)
    clock = FakeClock()
    keys = simulator.wechatpay_v3_keys()
    client = WeChatPayV3Client(
        **keys.client_kwargs(),
        base_url=simulator.base_url("wechatpay-v3"),
        transport=simulator.transport(),
        idempotency_store=store,
        retry=RetryPolicy(),  # the defaults: 4 attempts, 0.5 s → 8 s, full jitter
        retry_budget=RetryBudget(capacity=100_000),
        clock=clock,
    )
    number = {
        o: derive_refund_no(provider="wechatpay-v3", merchant=keys.mchid, key=f"key-{o}") for o in totals
    }
    done: dict[str, object] = {}
    failed: dict[str, PaykitError] = {}
    unknown: dict[str, PaykitError] = {}
    limiter = anyio.CapacityLimiter(25)

    async def one(order_id: str) -> None:
        async with limiter:
            try:
                done[order_id] = await client.refund(
                    refund=100 + int(order_id[1:]), total=totals[order_id], out_trade_no=order_id,
                    idempotency_key=f"key-{order_id}",
                )  # fmt: skip
            except PaykitError as error:
                (failed if _is_definite_failure(error) else unknown)[order_id] = error

    async with client, anyio.create_task_group() as tg:
        for order_id in totals:
            tg.start_soon(one, order_id)

    records = simulator.requests()
    for kind in V3_FAULT_KINDS:
        assert sum(r.fault == kind for r in records) > 5, kind
    assert sum(r.fault is not None for r in records) > REFUNDS * 0.2
    results = list(done.values())
    assert any(getattr(r, "attempts", 1) > 1 for r in results)
    assert any(getattr(r, "settled_by_query", False) for r in results)
    assert clock.sleeps
    snapshot = simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    # No business refund executed under two refund numbers, and every number is the derived one.
    assert all(count == 1 for count in snapshot.payouts_per_order.values())
    for (_provider, refund_no), view in snapshot.refunds.items():
        assert refund_no == number[view.order_no]
    for order_id, result in done.items():
        assert getattr(result, "out_refund_no", None) == number[order_id]
        assert ("wechatpay-v3", number[order_id]) in snapshot.refunds
    too_large = {o for o, total in totals.items() if total != ORDER_TOTAL}
    assert not {number[o] for o in failed} & {no for _p, no in snapshot.refunds}
    assert set(failed) <= too_large
    assert len(failed) > len(too_large) // 2
    assert all(isinstance(error, ProviderError) and error.code == "PARAM_ERROR" for error in failed.values())
    for order_id, error in unknown.items():
        if isinstance(error, RefundOutcomeUnknown):
            assert error.refund_no == number[order_id]

    # Again without faults: every open refund resolves under its first number.
    simulator.set_faults(FaultPlan())
    async with WeChatPayV3Client(
        **keys.client_kwargs(),
        base_url=simulator.base_url("wechatpay-v3"),
        transport=simulator.transport(),
        idempotency_store=store,
        clock=clock,
    ) as again:
        for order_id in unknown:
            if order_id in too_large:
                with pytest.raises(ProviderError, match="PARAM_ERROR"):
                    await again.refund(
                        refund=100 + int(order_id[1:]), total=totals[order_id], out_trade_no=order_id,
                        idempotency_key=f"key-{order_id}",
                    )  # fmt: skip
                continue
            result = await again.refund(
                refund=100 + int(order_id[1:]), total=totals[order_id], out_trade_no=order_id,
                idempotency_key=f"key-{order_id}",
            )  # fmt: skip
            assert result.out_refund_no == number[order_id]
        if store is not None:
            replayed = await again.refund(
                refund=101, total=ORDER_TOTAL, out_trade_no="O0001", idempotency_key="key-O0001"
            )
            assert replayed.replayed
            assert replayed.attempts == 0
            await store.aclose()
    snapshot = simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert {view.order_no for view in snapshot.refunds.values()} == set(totals) - too_large
    assert all(count == 1 for count in snapshot.payouts_per_order.values())
