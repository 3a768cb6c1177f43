"""``paykit demo``: thousands of refunds through the in-process simulator, checked against its ledger."""

from __future__ import annotations

import anyio
import click
from rich.console import Console
from rich.table import Table

from ..batch import BatchOutcome, BatchStatus
from .app import cli, fail, progress_bar

__all__ = ["demo"]


@cli.command()
@click.option("--orders", default=1000, show_default=True, help="Paid orders per provider.")
@click.option("--concurrency", default=32, show_default=True, help="Refunds in flight per provider.")
@click.option(
    "--fault-rate", default=0.02, show_default=True, help="Share of requests meeting each of 9 fault kinds."
)
@click.option("--seed", default=2024, show_default=True, help="Seed of the fault injector.")
def demo(orders: int, concurrency: int, fault_rate: float, seed: int) -> None:
    """Refund thousands of orders through the in-process simulator, with faults; no setup needed.

    Exits 0 only when the simulator's ledger shows every refund exactly once: no duplicate
    payouts, nothing reported succeeded that the ledger lacks, no ledger refund reported failed,
    no ledger refund under a number never reported (a refund paid again under a new number).
    """
    from .demo import PROVIDERS as DEMOPROVIDER_CHOICES
    from .demo import run_demo, v3_orders

    if orders < 1 or concurrency < 1 or not 0 <= fault_rate <= 1 / 9:
        fail("--orders and --concurrency must be >= 1 and --fault-rate between 0 and 0.111")
    console = Console(stderr=True)
    console.print(
        f"[bold]paykit demo[/]: {orders * 3 + v3_orders(orders):,} refunds across WeChat Pay v2 and v3 "
        "(a quarter of the orders: RSA), PAYJS and eftPay through the "
        f"in-process simulator; {fault_rate:.0%} of requests meet each of 9 fault kinds "
        "(dropped connections, 5xx, rate limits, busy codes, lost and badly signed replies)."
    )
    with progress_bar(console) as progress:
        tasks = {
            p: progress.add_task(p, total=v3_orders(orders) if p == "wechatpay-v3" else orders)
            for p in DEMOPROVIDER_CHOICES
        }

        def advance(provider: str, outcome: BatchOutcome) -> None:
            progress.advance(tasks[provider])

        report = anyio.run(
            lambda: run_demo(
                orders=orders, concurrency=concurrency, fault_rate=fault_rate, seed=seed, progress=advance
            )
        )
    table = Table(title="Refunds", title_justify="left")
    for column in ("provider", "succeeded", "failed", "unknown", "retries", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for p in report.providers:
        table.add_row(
            p.provider,
            f"{p.counts.get(BatchStatus.SUCCEEDED, 0):,}",
            f"{p.counts.get(BatchStatus.FAILED, 0):,}",
            f"{p.counts.get(BatchStatus.UNKNOWN, 0):,}",
            f"{p.retries:,}",
            f"{p.percentile(0.5) * 1000:.1f}",
            f"{p.percentile(0.99) * 1000:.1f}",
        )
    console.print(table)
    latencies = report.latencies
    from .demo import _percentile

    summary = Table.grid(padding=(0, 2))
    summary.add_row("refunds", f"{report.total:,} in {report.elapsed:.1f} s ({report.throughput:,.0f}/s)")
    summary.add_row(
        "latency",
        f"p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, p99 {_percentile(latencies, 0.99) * 1000:.1f} ms",
    )
    summary.add_row(
        "retries", f"{sum(p.retries for p in report.providers):,} (same refund numbers, same amounts)"
    )
    summary.add_row(
        "unknown re-sent", f"{sum(p.settled_on_rerun for p in report.providers):,} settled on a second pass"
    )
    colour = "green" if report.duplicate_payouts == 0 else "red"
    summary.add_row(
        "duplicate payouts", f"[{colour}]{report.duplicate_payouts}[/] (from the simulator's ledger)"
    )
    summary.add_row("succeeded, not in ledger", str(len(report.missing_in_ledger)))
    summary.add_row("failed, but in ledger", str(len(report.failed_but_in_ledger)))
    summary.add_row("in ledger, never reported", str(len(report.unreported_in_ledger)))
    summary.add_row("orders paid out twice", str(len(report.orders_paid_twice)))
    console.print(summary)
    if report.ok:
        console.print("[bold green]ledger check passed[/]: every refund paid at most once, as reported.")
        return
    problems = [
        *report.missing_in_ledger,
        *report.failed_but_in_ledger,
        *(f"{name} (in the ledger, never reported)" for name in report.unreported_in_ledger),
        *(f"order {name} paid out twice" for name in report.orders_paid_twice),
    ]
    for problem in problems[:10]:
        console.print(f"[red]ledger mismatch[/]: {problem}")
    fail("ledger invariants violated", status=1)
