"""The ledger: orders, refunds and payouts, and a frozen snapshot of them for test assertions.

Amounts are integers in the smallest unit (fen / cents; eftPay's ``Decimal`` amounts are
converted exactly). The provider handlers hold :attr:`Ledger.lock` while they check a rule and
act on it, so a check-then-refund is atomic even with concurrent requests from several threads.
Orders and refunds are frozen: the ledger changes one by storing an evolved copy, so a handler
that needs the latest state reads it back from the ledger.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

__all__ = [
    "FINAL_STATES",
    "Ledger",
    "LedgerSnapshot",
    "Order",
    "OrderView",
    "Refund",
    "RefundView",
    "to_cents",
]

#: Refund states: PROCESSING, then one of these.
FINAL_STATES = ("SUCCESS", "CLOSED", "CHANGE", "FAIL")


def to_cents(text: str) -> int | None:
    """``"10.01"`` → ``1001``; ``None`` for anything but a non-negative amount with ≤ 2 decimals."""
    # Checked first: quantize() raises on numbers longer than the context's precision.
    if len(text) > 24 or "e" in text.lower() or text.strip() != text:
        return None
    try:
        value = Decimal(text)
        if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
            return None
    except (InvalidOperation, ValueError):
        return None
    return int(value * 100)


def cents_text(cents: int) -> str:
    """``1001`` → ``"10.01"``."""
    return f"{cents // 100}.{cents % 100:02d}"


@attrs.frozen(kw_only=True)
class Order:
    """A paid (or unpaid) order at one provider."""

    provider: str
    order_no: str
    """The merchant's order number (``out_trade_no``) — for PAYJS the ``payjs_order_id``."""
    provider_no: str
    """The provider's number (``transaction_id``)."""
    total: int
    created_at: float
    paid: bool = True
    closed: bool = False
    kind: str = "native"
    """PAYJS: ``native``/``jsapi`` (refund, close) or ``micropay``/``facepay`` (also reverse)."""
    paytype: str = "WeChat"
    payment_type: str = "WECHATCN"
    extra: Mapping[str, str] = attrs.field(factory=dict)
    refund_nos: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Refund:
    """One refund number's refund. ``requests`` counts accepted requests, ``executions`` payouts."""

    provider: str
    refund_no: str
    refund_id: str
    order_no: str
    amount: int
    order_total: int
    created_at: float
    complete_at: float
    state: str = "PROCESSING"
    completed_at: float | None = None
    notify_url: str = ""
    fields: Mapping[str, str] = attrs.field(factory=dict)
    """Request fields worth echoing in queries and notifications (refund_account, service...)."""
    requests: int = 1
    executions: int = 1


@attrs.frozen(kw_only=True)
class RefundView:
    """A refund as the snapshot shows it."""

    provider: str
    refund_no: str
    order_no: str
    amount: int
    state: str
    requests: int
    executions: int


@attrs.frozen(kw_only=True)
class OrderView:
    """An order as the snapshot shows it; ``refunded`` excludes refunds that ended CLOSED/FAIL."""

    provider: str
    order_no: str
    total: int
    refunded: int
    payouts: int
    paid: bool
    closed: bool


@attrs.frozen(kw_only=True)
class LedgerSnapshot:
    """A consistent copy of the ledger for assertions.

    ``duplicate_payouts`` counts payouts made for a refund number that had already been paid —
    an exactly-once violation; it must stay 0. The simulator answers a known number with the same
    refund, so it stays 0 by construction: a refund paid again under a NEW number (the failure a
    client can cause after an unknown outcome) shows in ``payouts_per_order`` / ``OrderView.payouts``.
    """

    orders: Mapping[tuple[str, str], OrderView]
    refunds: Mapping[tuple[str, str], RefundView]
    executions: Mapping[str, int]
    """Payouts per refund number (``provider:refund_no`` keys also present in ``refunds``)."""
    payouts_per_order: Mapping[str, int]
    duplicate_payouts: int

    def refund(self, provider: str, refund_no: str) -> RefundView:
        """The refund ``refund_no`` at ``provider`` (``KeyError`` when unknown)."""
        return self.refunds[(provider, refund_no)]

    def order(self, provider: str, order_no: str) -> OrderView:
        """The order ``order_no`` at ``provider`` (``KeyError`` when unknown)."""
        return self.orders[(provider, order_no)]


class Ledger:
    """Orders and refunds of all three providers, keyed by ``(provider, number)``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._orders: dict[tuple[str, str], Order] = {}
        self._by_provider_no: dict[tuple[str, str], Order] = {}
        self._refunds: dict[tuple[str, str], Refund] = {}
        # The refunds still PROCESSING (key -> (complete_at, creation order)) and a heap of the
        # same by due time, so that completing the due ones on each request costs O(log n) per
        # refund completed instead of a scan of every refund still processing. A heap entry
        # whose refund is no longer processing (or is due at another time) is stale: skipped.
        self._processing: dict[tuple[str, str], tuple[float, int]] = {}
        self._due: list[tuple[float, int, tuple[str, str]]] = []
        self._order = itertools.count()
        #: Heap entries ``complete_due`` has looked at, stale ones included (a diagnostic for
        #: tests: it grows with the refunds completed, not with the refunds in the ledger).
        self.examined = 0
        self._payout_log: list[tuple[str, str, int]] = []
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A fresh serial number for provider-side ids."""
        with self.lock:
            return next(self._ids)

    def add_order(self, order: Order) -> Order:
        """Record ``order`` (replacing an order with the same number)."""
        with self.lock:
            self._orders[(order.provider, order.order_no)] = order
            self._by_provider_no[(order.provider, order.provider_no)] = order
            return order

    def _update_order(self, order: Order, **changes: Any) -> Order:
        """Store the current copy of ``order`` with ``changes``; return it. Call under the lock."""
        return self.add_order(attrs.evolve(self._orders[(order.provider, order.order_no)], **changes))

    def _update_refund(self, refund: Refund, **changes: Any) -> Refund:
        """Store the current copy of ``refund`` with ``changes``; return it. Call under the lock."""
        key = (refund.provider, refund.refund_no)
        updated = attrs.evolve(self._refunds[key], **changes)
        self._refunds[key] = updated
        self._track(key, updated)
        return updated

    def _track(self, key: tuple[str, str], refund: Refund) -> None:
        if refund.state != "PROCESSING":
            self._processing.pop(key, None)
            return
        entry = self._processing.get(key)
        if entry is not None and entry[0] == refund.complete_at:
            return
        # Newly processing (or due at another time): keep its place in creation order if known.
        order = next(self._order) if entry is None else entry[1]
        self._processing[key] = (refund.complete_at, order)
        heapq.heappush(self._due, (refund.complete_at, order, key))

    def close_order(self, order: Order) -> Order:
        """Mark ``order`` closed; return the updated order."""
        with self.lock:
            return self._update_order(order, closed=True)

    def order(self, provider: str, *, order_no: str = "", provider_no: str = "") -> Order | None:
        """Find an order by merchant number, else by provider number."""
        with self.lock:
            if order_no:
                found = self._orders.get((provider, order_no))
                if found is not None:
                    return found
            if provider_no:
                return self._by_provider_no.get((provider, provider_no))
            return None

    def refund(self, provider: str, refund_no: str) -> Refund | None:
        """The refund with this merchant refund number, if any."""
        with self.lock:
            return self._refunds.get((provider, refund_no))

    def refund_by_id(self, provider: str, refund_id: str) -> Refund | None:
        """The refund with this provider refund id, if any."""
        with self.lock:
            return next(
                (r for r in self._refunds.values() if r.provider == provider and r.refund_id == refund_id),
                None,
            )

    def refunds_of(self, order: Order) -> list[Refund]:
        """The refunds of ``order``, oldest first."""
        with self.lock:
            return [self._refunds[(order.provider, no)] for no in order.refund_nos]

    def refunded(self, order: Order) -> int:
        """Money refunded or being refunded from ``order`` (CLOSED/FAIL refunds give it back)."""
        with self.lock:
            return sum(r.amount for r in self.refunds_of(order) if r.state not in ("CLOSED", "FAIL"))

    def add_refund(self, order: Order, refund: Refund) -> Refund:
        """Execute a new refund: record it and its payout."""
        with self.lock:
            self._refunds[(refund.provider, refund.refund_no)] = refund
            self._track((refund.provider, refund.refund_no), refund)
            current = self._orders[(order.provider, order.order_no)]
            self._update_order(current, refund_nos=(*current.refund_nos, refund.refund_no))
            self._payout_log.append((refund.provider, refund.refund_no, refund.amount))
            return refund

    def count_repeat_request(self, refund: Refund) -> Refund:
        """Count one more accepted request for an existing refund; return the updated refund."""
        with self.lock:
            current = self._refunds[(refund.provider, refund.refund_no)]
            return self._update_refund(current, requests=current.requests + 1)

    def annotate_refund(self, refund: Refund, **fields: str) -> Refund:
        """Add or replace echoed request ``fields`` of ``refund``; return the updated refund."""
        with self.lock:
            current = self._refunds[(refund.provider, refund.refund_no)]
            return self._update_refund(current, fields={**current.fields, **fields})

    def mark_completed(self, refund: Refund, outcome: str, now: float) -> Refund:
        """Move ``refund`` to its final state ``outcome`` at ``now``; return the updated refund."""
        with self.lock:
            return self._update_refund(refund, state=outcome, completed_at=now)

    def complete_due(self, now: float, outcome: str) -> list[Refund]:
        """Move PROCESSING refunds whose time has come to ``outcome``; return them, oldest first.

        Pops the due entries off a heap ordered by due time: O(log n) per refund completed, and
        a look at the heap's top when nothing is due (it runs on every request).
        """
        with self.lock:
            heap = self._due
            due: list[tuple[int, tuple[str, str]]] = []
            while heap and heap[0][0] <= now:
                complete_at, order, key = heapq.heappop(heap)
                self.examined += 1
                if self._processing.get(key) == (complete_at, order):
                    due.append((order, key))
            # In the order the refunds started processing, as before the heap.
            due.sort()
            return [self.mark_completed(self._refunds[key], outcome, now) for _order, key in due]

    def snapshot(self) -> LedgerSnapshot:
        """A consistent frozen copy."""
        with self.lock:
            refunds = {
                key: RefundView(
                    provider=r.provider,
                    refund_no=r.refund_no,
                    order_no=r.order_no,
                    amount=r.amount,
                    state=r.state,
                    requests=r.requests,
                    executions=r.executions,
                )
                for key, r in self._refunds.items()
            }
            orders = {}
            for key, order in self._orders.items():
                own = self.refunds_of(order)
                orders[key] = OrderView(
                    provider=order.provider,
                    order_no=order.order_no,
                    total=order.total,
                    refunded=self.refunded(order),
                    payouts=len(own),
                    paid=order.paid,
                    closed=order.closed,
                )
            executions: dict[str, int] = {}
            payouts_per_order: dict[str, int] = {}
            duplicates = 0
            for provider, refund_no, _amount in self._payout_log:
                name = f"{provider}:{refund_no}"
                if name in executions:
                    duplicates += 1
                executions[name] = executions.get(name, 0) + 1
                refund = self._refunds[(provider, refund_no)]
                order_name = f"{provider}:{refund.order_no}"
                payouts_per_order[order_name] = payouts_per_order.get(order_name, 0) + 1
            return LedgerSnapshot(
                orders=orders,
                refunds=refunds,
                executions=executions,
                payouts_per_order=payouts_per_order,
                duplicate_payouts=duplicates,
            )
