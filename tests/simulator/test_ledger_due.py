"""The ledger completes due refunds from a heap: same results as a scan, O(log n) work per request."""

from __future__ import annotations

import random

from paykit_async.simulator.ledger import Ledger, Order, Refund


def _ledger_with(refunds: list[tuple[str, float]]) -> Ledger:
    ledger = Ledger()
    order = ledger.add_order(
        Order(provider="wechatpay", order_no="O1", provider_no="T1", total=10**9, created_at=0)
    )
    for number, complete_at in refunds:
        ledger.add_refund(
            order,
            Refund(
                provider="wechatpay",
                refund_no=number,
                refund_id=f"id-{number}",
                order_no="O1",
                amount=1,
                order_total=10**9,
                created_at=0,
                complete_at=complete_at,
            ),
        )
    return ledger


def _scan(pending: dict[str, float], now: float) -> list[str]:
    """What the ledger did before the heap: every processing refund due by ``now``, creation order."""
    return [number for number, at in pending.items() if at <= now]


def test_complete_due_matches_a_scan_in_creation_order() -> None:
    rng = random.Random(18)
    refunds = [(f"R{i}", rng.choice([5.0, 1.0, 3.0, 3.0, 9.0])) for i in range(300)]
    ledger = _ledger_with(refunds)
    pending = dict(refunds)
    for now in (0.5, 1.0, 1.0, 2.9, 3.0, 8.0, 9.0, 100.0):
        expected = _scan(pending, now)
        done = ledger.complete_due(now, "SUCCESS")
        assert [refund.refund_no for refund in done] == expected
        assert all(refund.state == "SUCCESS" and refund.completed_at == now for refund in done)
        for number in expected:
            del pending[number]
            assert ledger.refund("wechatpay", number).state == "SUCCESS"  # type: ignore[union-attr]
        for number in pending:
            assert ledger.refund("wechatpay", number).state == "PROCESSING"  # type: ignore[union-attr]
    assert pending == {}


def test_updates_of_a_processing_refund_keep_it_due_once() -> None:
    ledger = _ledger_with([("R1", 5.0), ("R2", 1.0)])
    refund = ledger.refund("wechatpay", "R1")
    assert refund is not None
    ledger.count_repeat_request(refund)
    ledger.annotate_refund(refund, refund_account="REFUND_SOURCE_RECHARGE_FUNDS")
    assert [r.refund_no for r in ledger.complete_due(10.0, "CLOSED")] == ["R1", "R2"]
    assert ledger.complete_due(20.0, "CLOSED") == []
    assert ledger.refund("wechatpay", "R1").requests == 2  # type: ignore[union-attr]


def test_completing_due_refunds_does_not_look_at_the_others() -> None:
    # 20,000 refunds still processing, one request after another: each call looks only at the
    # heap's top, and completing k refunds looks at k entries — never at the whole ledger.
    ledger = _ledger_with([(f"R{i}", 1000.0 + i) for i in range(20_000)])
    for step in range(2_000):
        assert ledger.complete_due(float(step) / 10, "SUCCESS") == []
    assert ledger.examined == 0
    done = ledger.complete_due(1000.0 + 49, "SUCCESS")
    assert len(done) == 50
    assert ledger.examined == 50
