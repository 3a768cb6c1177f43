"""refund_many(batch_id=...): requests keyed by content, so edited batches refund each row once.

Checked against the in-process simulator's ledger: payouts per order, never two refund numbers
for one row, whatever was inserted, deleted or reordered between runs, and whether or not the
idempotency store survived.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from paykit_async import (
    BatchOutcome,
    BatchStatus,
    EftPayClient,
    IdempotencyStoreError,
    MemoryStore,
    WeChatPayClient,
    refund_many,
)
from paykit_async.batch import RateLimiter, order_of, refund_key
from paykit_async.pipeline import FakeClock
from paykit_async.pipeline.stores import IdempotencyRecord, IdempotencyStore
from paykit_async.simulator import DEMO_EFTPAY, DEMO_WECHATPAY, Simulator, SimulatorConfig

from .helpers import demo_wechat_client

pytestmark = pytest.mark.anyio


def _simulator(count: int) -> Simulator:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    for i in range(count):
        sim.add_wechatpay_order(f"K{i}", 1000 + i)
    return sim


def _row(i: int, **extra: Any) -> dict[str, Any]:
    return {"out_trade_no": f"K{i}", "total_fee": 1000 + i, "refund_fee": 100 + i, **extra}


def _client(sim: Simulator, store: IdempotencyStore | None = None, **options: Any) -> WeChatPayClient:
    return demo_wechat_client(sim, idempotency_store=store, **options)


async def _run(client: Any, rows: list[Any], **options: Any) -> list[BatchOutcome]:
    async with refund_many(client, rows, concurrency=4, **options) as outcomes:
        return sorted([o async for o in outcomes], key=lambda o: o.index)


def _assert_ledger(sim: Simulator, refunded: dict[str, int]) -> None:
    """Every order in ``refunded`` paid out once, of that amount; nothing else paid."""
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    for (_provider, order), view in snapshot.orders.items():
        expected = refunded.get(order, 0)
        assert view.refunded == expected, (order, view)
        assert view.payouts == (1 if expected else 0), (order, view)


async def test_inserting_deleting_and_reordering_rows_refunds_each_row_once(anyio_backend: str) -> None:
    sim = _simulator(6)
    store = MemoryStore()
    async with _client(sim, store) as client:
        first = await _run(client, [_row(1), _row(2), _row(3)], batch_id="event-42")
        assert [o.status for o in first] == [BatchStatus.SUCCEEDED] * 3
        # Row K0 inserted at the top, K2 deleted, K4 appended, the rest shuffled.
        edited = [_row(0), _row(3), _row(1), _row(4)]
        random.Random(7).shuffle(edited)
        second = await _run(client, edited, batch_id="event-42")
    by_order = {o.request["out_trade_no"]: o for o in second}
    assert {k: o.status for k, o in by_order.items()} == dict.fromkeys(
        ["K0", "K1", "K3", "K4"], BatchStatus.SUCCEEDED
    )
    first_numbers = {o.request["out_trade_no"]: o.refund_no for o in first}
    for order in ("K1", "K3"):
        assert by_order[order].refund_no == first_numbers[order]
        assert by_order[order].result.replayed
    assert not by_order["K0"].result.replayed
    _assert_ledger(sim, {"K0": 100, "K1": 101, "K2": 102, "K3": 103, "K4": 104})


async def test_a_lost_store_and_a_copied_batch_never_pay_twice(anyio_backend: str) -> None:
    sim = _simulator(3)
    rows = [_row(0), _row(1), _row(2)]
    async with _client(sim, MemoryStore()) as client:
        first = await _run(client, rows, batch_id="event-42")
    async with _client(sim, MemoryStore()) as client:  # the journal is gone
        again = await _run(client, list(reversed(rows)), batch_id="event-42")
    async with _client(sim, None) as client:  # no store at all
        bare = await _run(client, rows, batch_id="event-42")
    numbers = sorted(o.refund_no or "" for o in first)
    assert sorted(o.refund_no or "" for o in again) == numbers
    assert sorted(o.refund_no or "" for o in bare) == numbers
    assert all(o.status is BatchStatus.SUCCEEDED for o in first + again + bare)
    _assert_ledger(sim, {"K0": 100, "K1": 101, "K2": 102})


async def test_the_identity_is_the_refund_not_its_description(anyio_backend: str) -> None:
    sim = _simulator(2)
    store = MemoryStore()
    async with _client(sim, store) as client:
        await _run(client, [_row(0, refund_desc="event cancelled")], batch_id="b")
        (changed,) = await _run(client, [_row(0, refund_desc="event cancelled!")], batch_id="b")
        # Two genuine refunds of one order: told apart by their own refund numbers.
        partials = await _run(
            client,
            [
                _row(1, refund_fee=100, out_refund_no="PART-1"),
                _row(1, refund_fee=100, out_refund_no="PART-2"),
            ],
            batch_id="b",
        )
    # Same refund, other details: refused (nothing sent), not refunded a second time.
    assert changed.status is BatchStatus.INVALID
    assert changed.error_code == "IdempotencyConflict"
    assert [o.refund_no for o in partials] == ["PART-1", "PART-2"]
    assert all(o.status is BatchStatus.SUCCEEDED for o in partials)
    snapshot = sim.snapshot()
    assert snapshot.order("wechatpay", "K0").payouts == 1
    assert snapshot.order("wechatpay", "K1").payouts == 2
    assert snapshot.order("wechatpay", "K1").refunded == 200


def test_refund_keys_hash_identity_only() -> None:
    sim = _simulator(0)
    client = _client(sim)
    key = refund_key(client, _row(1), batch_id="b")
    assert key.startswith("b:")
    assert len(key) == 2 + 64
    assert (
        refund_key(client, {**_row(1), "refund_desc": "x", "notify_url": "https://n.test"}, batch_id="b")
        == key
    )
    assert refund_key(client, dict(reversed(list(_row(1).items()))), batch_id="b") == key
    assert refund_key(client, _row(1), batch_id="c") != key
    assert refund_key(client, _row(1, refund_fee=102), batch_id="b") != key
    assert refund_key(client, _row(1, out_refund_no="R1"), batch_id="b") != key
    assert refund_key(client, _row(1, idempotency_key="second"), batch_id="b") != key
    other_merchant = WeChatPayClient(
        DEMO_WECHATPAY.appid, "1900000999", DEMO_WECHATPAY.api_key, base_url=sim.base_url("wechatpay")
    )
    assert refund_key(other_merchant, _row(1), batch_id="b") != key
    eft = EftPayClient(DEMO_EFTPAY.user_confirm_key, DEMO_EFTPAY.secret, base_url=sim.base_url("eftpay"))
    order = {"paytype": "WeChat", "payment_type": "WECHATCN", "out_trade_no": "E1", "total_fee": "12.30"}
    amounts = {
        refund_key(eft, {**order, "transaction_amount": amount}, batch_id="b")
        for amount in ("5.10", "5.1", Decimal("5.100"), " 5.10 ")
    }
    assert len(amounts) == 1
    # The order's amounts read the same way, so a repeat under another batch id is found whatever
    # the spelling (the journal matches refunds of other batch ids by order and amounts).
    shown = {
        order_of(eft, {**order, "transaction_amount": amount}).amounts  # type: ignore[union-attr]
        for amount in ("5.10", "5.1", Decimal("5.100"), " 5.10 ")
    }
    assert shown == {"transaction_amount=5.1, total_fee=12.3"}
    # Order numbers are compared as text: leading zeros matter.
    assert refund_key(eft, {**order, "out_trade_no": "0012", "transaction_amount": "1"}, batch_id="b") != (
        refund_key(eft, {**order, "out_trade_no": "12", "transaction_amount": "1"}, batch_id="b")
    )


async def test_validate_only_reports_what_the_real_run_reports(anyio_backend: str) -> None:
    sim = _simulator(5)
    rows: list[Any] = [
        _row(0),
        _row(1, refund_fee=5000),  # more than the order: refused by the client before sending
        _row(2, colour="red"),
        {"out_trade_no": "K3", "total_fee": 1003},  # refund_fee missing
        _row(4, out_refund_no="bad number with spaces"),
    ]
    async with _client(sim, MemoryStore()) as client:
        dry = await _run(client, rows, batch_id="b", validate_only=True)
        assert sim.requests() == ()
        real = await _run(client, rows, batch_id="b")

    def invalid(outcomes: list[BatchOutcome]) -> dict[int, tuple[str | None, str | None]]:
        return {o.index: (o.error_code, o.error_message) for o in outcomes if o.status is BatchStatus.INVALID}

    assert invalid(dry) == invalid(real)
    assert sorted(invalid(dry)) == [1, 2, 3, 4]
    assert [o.status for o in dry if o.index == 0] == [BatchStatus.READY]
    assert dry[0].refund_no == real[0].refund_no  # derived: known before the run
    assert real[0].status is BatchStatus.SUCCEEDED


async def test_the_rate_paces_requests_sent_not_replays(anyio_backend: str) -> None:
    sim = _simulator(10)
    rows = [_row(i) for i in range(10)]
    store = MemoryStore()
    async with _client(sim, store) as client:
        clock = FakeClock()
        await _run(client, rows, batch_id="b", rate=RateLimiter(2, clock=clock))
        assert clock.now() == pytest.approx(4.5)  # ten requests at 2/s
        replay_clock = FakeClock()
        again = await _run(client, rows, batch_id="b", rate=RateLimiter(2, clock=replay_clock))
    assert all(o.result.replayed for o in again)
    assert replay_clock.sleeps == []  # nothing was sent, nothing was paced


class UnreadableStore(MemoryStore):
    async def get(self, key: str) -> IdempotencyRecord | None:
        raise IdempotencyStoreError("SQLite journal j.db cannot be used: it is read-only")


async def test_a_store_that_cannot_be_read_fails_the_row_and_sends_nothing(anyio_backend: str) -> None:
    sim = _simulator(2)
    async with _client(sim, UnreadableStore()) as client:
        outcomes = await _run(client, [_row(0), _row(1)], batch_id="b")
    assert {o.status for o in outcomes} == {BatchStatus.FAILED}
    assert {o.error_code for o in outcomes} == {"IdempotencyStoreError"}
    assert sim.requests() == ()


def test_batch_id_and_idempotency_key_are_exclusive() -> None:
    from paykit_async import ValidationError

    client = _client(_simulator(0))
    with pytest.raises(ValidationError, match="batch_id"):
        refund_many(client, [], batch_id="")
    with pytest.raises(ValidationError, match="not both"):
        refund_many(client, [], batch_id="b", idempotency_key=lambda i, r: "k")
