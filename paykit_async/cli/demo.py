"""The ``paykit demo`` scenario: thousands of refunds through a faulty in-process simulator.

No configuration and no network: the simulator runs in this process (``httpx.ASGITransport``),
orders are seeded across WeChat Pay (v2 and v3), PAYJS and eftPay, a few per cent of requests meet
each kind of fault, and everything is refunded concurrently with :func:`~paykit_async.batch.refund_many`.
Refunds left unknown after the first pass are sent once more with the *same* refund numbers, as a
real operator would. The report is checked against the simulator's ledger: no refund number paid
twice, nothing reported succeeded that the ledger lacks, no ledger refund reported failed, no
ledger refund that no row reports (a refund re-issued under a new number), no order refunded twice.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import anyio
import attrs

from ..batch import BatchOutcome, BatchStatus, count_attempts, refund_many
from ..pipeline.retry import RetryBudget, RetryPolicy
from ..providers.eftpay import EftPayClient
from ..providers.payjs import PayJSClient
from ..providers.wechatpay import WeChatPayClient
from ..providers.wechatpay_v3 import WeChatPayV3Client
from ..simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    LedgerSnapshot,
    Simulator,
    SimulatorConfig,
)

__all__ = ["PROVIDERS", "DemoReport", "ProviderReport", "demo_faults", "run_demo", "v3_orders"]

PROVIDERS = ("wechatpay", "wechatpay-v3", "payjs", "eftpay")

#: Retry waits suited to an in-process simulator (a real provider wants the defaults).
DEMO_RETRY = RetryPolicy(attempts=5, initial_delay=0.002, max_delay=0.02, max_retry_after=0.02, deadline=10.0)

Progress = Callable[[str, BatchOutcome], None]


def demo_faults(rate: float = 0.01, *, seed: int = 2024) -> FaultPlan:
    """``rate`` of requests meet each kind of fault (nine kinds), on every endpoint."""
    return FaultPlan(
        seed=seed,
        rules=(
            FaultRule(
                latency=0.002,
                latency_rate=0.2,
                drop_before=rate,
                bad_gateway=rate,
                server_error=rate,
                rate_limited=rate,
                retryable_code=rate,
                drop_after=rate,
                error_after=rate,
                truncated=rate,
                bad_signature=rate,
            ),
        ),
    )


@attrs.frozen(kw_only=True)
class ProviderReport:
    """One provider's batch: outcome counts, retries and latencies (seconds, sorted)."""

    provider: str
    counts: Mapping[BatchStatus, int]
    retries: int
    settled_on_rerun: int
    latencies: Sequence[float] = attrs.field(repr=False)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, fraction: float) -> float:
        return _percentile(self.latencies, fraction)


@attrs.frozen(kw_only=True)
class DemoReport:
    """What the demo did and what the ledger says about it. ``ok`` when every invariant holds."""

    providers: Sequence[ProviderReport]
    elapsed: float
    duplicate_payouts: int
    missing_in_ledger: Sequence[str]
    failed_but_in_ledger: Sequence[str]
    fault_rate: float
    #: Ledger payouts under a refund number no outcome reports (a refund paid again under a new
    #: number shows here; ``duplicate_payouts`` counts one number paid twice only).
    unreported_in_ledger: Sequence[str] = ()
    #: Orders paid out more than once (every demo order gets one refund request).
    orders_paid_twice: Sequence[str] = ()

    @property
    def total(self) -> int:
        return sum(p.total for p in self.providers)

    @property
    def throughput(self) -> float:
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def latencies(self) -> list[float]:
        return sorted(x for p in self.providers for x in p.latencies)

    def count(self, status: BatchStatus) -> int:
        return sum(p.counts.get(status, 0) for p in self.providers)

    @property
    def ok(self) -> bool:
        return (
            self.duplicate_payouts == 0
            and not self.missing_in_ledger
            and not self.failed_but_in_ledger
            and not self.unreported_in_ledger
            and not self.orders_paid_twice
        )


async def run_demo(
    *,
    orders: int = 1000,
    concurrency: int = 32,
    fault_rate: float = 0.01,
    seed: int = 2024,
    progress: Progress | None = None,
) -> DemoReport:
    """Seed ``orders`` paid orders per provider (a quarter of that for WeChat Pay v3, see
    :func:`v3_orders`), refund them all, and check the ledger."""
    config = SimulatorConfig(completion_delay=0.0, faults=demo_faults(fault_rate, seed=seed))
    simulator = Simulator(config)
    batches = _seed(simulator, orders)
    reports: dict[str, ProviderReport] = {}
    finals: dict[str, list[BatchOutcome]] = {}
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for provider in PROVIDERS:
            group.start_soon(
                _refund_provider,
                simulator,
                provider,
                batches[provider],
                concurrency,
                progress,
                reports,
                finals,
            )
    elapsed = time.perf_counter() - started
    snapshot = simulator.snapshot()
    missing, failed_in_ledger, unreported = _check_ledger(snapshot, finals)
    return DemoReport(
        providers=[reports[p] for p in PROVIDERS],
        elapsed=elapsed,
        duplicate_payouts=snapshot.duplicate_payouts,
        missing_in_ledger=missing,
        failed_but_in_ledger=failed_in_ledger,
        unreported_in_ledger=unreported,
        fault_rate=fault_rate,
        orders_paid_twice=sorted(order for order, n in snapshot.payouts_per_order.items() if n > 1),
    )


def v3_orders(orders: int) -> int:
    """WeChat Pay v3 gets a quarter of the orders: each v3 refund costs two RSA-2048 signatures
    (the client's request, the simulator's reply), about ten times a v2 refund's CPU, and the
    demo should stay a few seconds long."""
    return max(1, orders // 4)


def _seed(simulator: Simulator, orders: int) -> dict[str, list[dict[str, Any]]]:
    """Paid orders at each provider and the refund request for each."""
    batches: dict[str, list[dict[str, Any]]] = {p: [] for p in PROVIDERS}
    for i in range(orders):
        total = 100 + (i * 37) % 9900
        trade_no = f"DEMO{i:08d}"
        simulator.add_wechatpay_order(trade_no, total)
        # Every third WeChat refund is partial; the rest refund the whole order.
        refund_fee = total // 2 if i % 3 == 0 else total
        batches["wechatpay"].append({"out_trade_no": trade_no, "total_fee": total, "refund_fee": refund_fee})
        if i < v3_orders(orders):
            simulator.add_wechatpay_v3_order(trade_no, total)
            batches["wechatpay-v3"].append({"out_trade_no": trade_no, "total": total, "refund": refund_fee})
        payjs_id = f"PJ{i:030d}"
        simulator.add_payjs_order(payjs_id, total)
        batches["payjs"].append({"payjs_order_id": payjs_id})
        amount = Decimal(total) / 100
        simulator.add_eftpay_order(trade_no, amount)
        batches["eftpay"].append(
            {
                "paytype": "WeChat",
                "payment_type": "WECHATCN",
                "out_trade_no": trade_no,
                "transaction_amount": amount,
                "total_fee": amount,
            }
        )
    return batches


def _client(simulator: Simulator, provider: str, concurrency: int) -> Any:
    options: dict[str, Any] = {
        "base_url": simulator.base_url(provider),
        "transport": simulator.transport(),
        "retry": DEMO_RETRY,
        "retry_budget": RetryBudget(capacity=100_000),
        "middleware": [count_attempts],
        "max_connections": concurrency,
    }
    if provider == "wechatpay":
        w = DEMO_WECHATPAY
        return WeChatPayClient(w.appid, w.mch_id, w.api_key, **options)
    if provider == "wechatpay-v3":
        return WeChatPayV3Client(**simulator.wechatpay_v3_keys().client_kwargs(), **options)
    if provider == "payjs":
        return PayJSClient(DEMO_PAYJS.mchid, DEMO_PAYJS.key, **options)
    e = DEMO_EFTPAY
    # eftPay documents no transient codes; the simulator's "99 system busy" is one, so opt in.
    return EftPayClient(e.user_confirm_key, e.secret, retryable_codes=("99",), **options)


async def _refund_provider(
    simulator: Simulator,
    provider: str,
    requests: list[dict[str, Any]],
    concurrency: int,
    progress: Progress | None,
    reports: dict[str, ProviderReport],
    finals: dict[str, list[BatchOutcome]],
) -> None:
    final: dict[int, BatchOutcome] = {}
    retries = 0
    async with _client(simulator, provider, concurrency) as client:
        async with refund_many(client, requests, concurrency=concurrency) as outcomes:
            async for outcome in outcomes:
                final[outcome.index] = outcome
                retries += max(0, (outcome.attempts or 1) - 1)
                if progress is not None:
                    progress(provider, outcome)
        # Unknown outcomes: send the same requests again, with the same refund numbers.
        unknown = [o for o in final.values() if o.status is BatchStatus.UNKNOWN]
        settled = 0
        if unknown:
            again = [o.request for o in unknown]
            async with refund_many(client, again, concurrency=concurrency) as outcomes:
                async for outcome in outcomes:
                    first = unknown[outcome.index]
                    retries += outcome.attempts or 0
                    settled += outcome.status is not BatchStatus.UNKNOWN
                    final[first.index] = attrs.evolve(outcome, index=first.index, elapsed=first.elapsed)
    counts = Counter(o.status for o in final.values())
    reports[provider] = ProviderReport(
        provider=provider,
        counts=dict(counts),
        retries=retries,
        settled_on_rerun=settled,
        latencies=sorted(o.elapsed for o in final.values()),
    )
    finals[provider] = list(final.values())


def _check_ledger(
    snapshot: LedgerSnapshot, finals: Mapping[str, list[BatchOutcome]]
) -> tuple[list[str], list[str], list[str]]:
    """(reported succeeded but not in the ledger, reported failed but in the ledger, in the
    ledger but reported under no number). The simulator never pays one refund number twice, so
    ``duplicate_payouts`` alone cannot see a refund paid again under a NEW number (after an
    unknown outcome): that shows here as a ledger payout no outcome reports."""
    missing: list[str] = []
    failed_in_ledger: list[str] = []
    unreported: list[str] = []
    for provider, outcomes in finals.items():
        reported = {outcome.refund_no for outcome in outcomes if outcome.refund_no}
        for outcome in outcomes:
            key = (provider, outcome.refund_no or "")
            if outcome.status is BatchStatus.SUCCEEDED and key not in snapshot.refunds:
                missing.append(f"{provider}:{outcome.refund_no}")
            if outcome.status in (BatchStatus.FAILED, BatchStatus.INVALID) and key in snapshot.refunds:
                failed_in_ledger.append(f"{provider}:{outcome.refund_no}")
        unreported.extend(
            f"{provider}:{refund_no}"
            for ledger_provider, refund_no in snapshot.refunds
            if ledger_provider == provider and refund_no not in reported
        )
    return missing, failed_in_ledger, unreported


def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    if not sorted_values:
        return math.nan
    rank = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]
