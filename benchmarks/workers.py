"""Many workers: refunds/s of ``paykit worker`` processes under one shared per-merchant limit.

A private redis-server; the simulator served by uvicorn (a thread of this process, which only
waits meanwhile) with 20 ms of latency on every refund and a rate limit of 150 requests/s for
the merchant — each provider's over-limit reply beyond it, counted. The batch is queued with
``paykit refunds enqueue``; 1, then 3 ``paykit worker --burst`` processes (16 refunds at a time
each) take it, all with ``rate_limit = 150`` in their configuration, shared through the Redis.

This process, which hosts the simulator, pauses Python's cyclic garbage collector while it
measures: a generation-2 collection over the simulator's growing ledger and request log stalls
it for 50–80 ms on a busy 2-core machine, and the simulator would count every request of that
moment as arriving that much late — a pause of the test double, not of a provider.

Reported from the simulator's own log of arrivals: the aggregate rate over whole windows of
150 requests after the first second (the first window may fill at once), beside the limit; the
busiest one-second window anywhere; the over-limit replies (the goal: none, and ≥ 95 % of the
limit). The wall rate (every refund from the first arrival to the last) is shown too.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from .processes import ROOT

__all__ = ["WorkersRow", "run_workers", "workers_table"]

LIMIT = 150
LATENCY = 0.02
CONCURRENCY = 16


@attrs.frozen(kw_only=True)
class WorkersRow:
    workers: int
    limit: int
    refunds: int
    done: int
    rate: float
    wall_rate: float
    busiest_second: int
    over_limit: int

    @property
    def share(self) -> float:
        return self.rate / self.limit


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _redis(directory: Path) -> Iterator[str]:
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYKIT_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _paykit(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "paykit_async.cli", *map(str, args)]


def _measure(workers: int, count: int, directory: Path, redis_url: str) -> WorkersRow:
    from paykit_async.simulator import DEMO_WECHATPAY, FaultPlan, FaultRule, Simulator, SimulatorConfig
    from paykit_async.simulator.serve import serve_in_thread

    faults = FaultPlan(rules=(FaultRule(endpoint="refund", latency=LATENCY, latency_rate=1.0),))
    config = SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=LIMIT, faults=faults)
    simulator = Simulator(config)
    with _no_gc_pauses(), serve_in_thread(simulator) as root:
        settings = directory / f"paykit-{workers}.toml"
        settings.write_text(
            f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
            f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{root}/wechatpay"\nrate_limit = {LIMIT}\n',
            encoding="utf-8",
        )
        rows = directory / f"refunds-{workers}.csv"
        with rows.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["out_trade_no", "total_fee", "refund_fee"])
            for n in range(count):
                writer.writerow([f"W{workers}-{n:06d}", 1000, 100])
        batch = f"bench-{workers}-{time.monotonic_ns()}"
        common = ("--config", settings, "--redis", redis_url)
        subprocess.run(
            _paykit("refunds", "enqueue", rows, "-p", "wechatpay", *common, "--batch-id", batch),
            check=True,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes = [
            subprocess.Popen(
                _paykit("worker", *common, "-c", str(CONCURRENCY), "--burst", "-q"),
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        for process in processes:
            process.wait(timeout=count / LIMIT * 3 + 60)
        accepted = [r for r in simulator.requests() if r.endpoint == "refund" and not r.over_limit]
        arrivals = sorted(r.arrived for r in accepted)
        over_limit = simulator.over_limit_replies()
        done = len(simulator.snapshot().refunds)
    return WorkersRow(
        workers=workers,
        limit=LIMIT,
        refunds=count,
        done=done,
        rate=_rate(arrivals, LIMIT),
        wall_rate=(len(arrivals) - 1) / (arrivals[-1] - arrivals[0]),
        busiest_second=_busiest_second(arrivals),
        over_limit=over_limit,
    )


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rate(arrivals: Sequence[float], limit: int) -> float:
    """Requests/s over whole windows of ``limit`` requests, from the first arrival 1 s in."""
    first = next(i for i, at in enumerate(arrivals) if at >= arrivals[0] + 1.0)
    last = first + limit * ((len(arrivals) - 1 - first) // limit)
    return (last - first) / (arrivals[last] - arrivals[first])


def _busiest_second(arrivals: Sequence[float]) -> int:
    busiest, start = 0, 0
    for end, at in enumerate(arrivals):
        while arrivals[start] <= at - 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


def run_workers(_tls_dir: Path, *, quick: bool = False) -> list[WorkersRow]:
    """1, then 3 worker processes, each run against a fresh simulator and batch."""
    count = 600 if quick else 3000
    with tempfile.TemporaryDirectory(prefix="paykit-workers-") as name:
        directory = Path(name)
        with _redis(directory) as redis_url:
            return [_measure(workers, count, directory, redis_url) for workers in (1, 3)]


def workers_table(rows: Sequence[WorkersRow]) -> str:
    out = [
        "| Worker processes | Limit /s | Refunds | Made | Refunds/s (whole windows) | Share of limit "
        "| Wall refunds/s | Busiest second | Over-limit replies |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.workers} | {r.limit} | {r.refunds:,} | {r.done:,} | {r.rate:.1f} | {r.share:.1%} "
            f"| {r.wall_rate:.1f} | {r.busiest_second} | {r.over_limit} |"
        )
    return "\n".join(out)
