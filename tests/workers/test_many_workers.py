"""Real processes: ``paykit worker`` processes sharing one redis-server, against the simulator.

- Three workers refund 600 rows; one is killed with SIGKILL half-way and started again. Its
  refunds in flight are run again by arq once their in-progress keys expire (``--job-timeout 10``:
  20 s after they started) and resume under the same refund numbers. The simulator, served by
  ``paykit simulator serve`` in its own process, is read the way a merchant reads WeChat Pay — a
  refund query per order: every order holds exactly one refund, under the number the batch's
  results name, and ``paykit refunds status`` reports every row done.
- Three workers share one Redis-backed limit of 50 requests/s against a simulator enforcing
  50/s: no over-limit reply, and the aggregate rate within 10 % of the limit (measured from the
  simulator's arrival log over 400 requests, so it is a rate, not a latency).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from paykit_async import WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY, SimulatorConfig
from paykit_async.workers import batch_progress, connect

from ..cli.helpers import (
    live_simulator,
    paykit_command,
    paykit_env,
    read_results,
    run_paykit,
    served_simulator,
    write_csv,
)

pytestmark = pytest.mark.slow


def _config(directory: Path, root: str, rate_limit: int, margin: float = 0.03) -> Path:
    path = directory / "paykit.toml"
    path.write_text(
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{root}/wechatpay"\nrate_limit = {rate_limit}\n'
        f"rate_limit_margin = {margin}\n",
        encoding="utf-8",
    )
    return path


class Workers:
    """``paykit worker`` processes, their logs in ``directory``."""

    def __init__(self, directory: Path, *args: str | os.PathLike[str]) -> None:
        self.directory = directory
        self.args = args
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = (self.directory / f"worker{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            paykit_command("worker", *self.args), stdout=log, stderr=subprocess.STDOUT, env=paykit_env()
        )
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in self.directory.glob("worker*.log"))

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"a worker did not finish:\n{self.logs()}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``paykit simulator serve --auto-orders`` in its own process; its root URL."""
    # Each refund takes 20 ms at the provider, so that a killed worker has refunds in flight.
    config = (
        '[simulator]\ncompletion_delay = 0\n[[faults.rules]]\nendpoint = "refund"\n'
        "latency = 0.02\nlatency_rate = 1.0\n"
    )
    with served_simulator(tmp_path, config) as root:
        yield root


def _progress(redis_url: str, batch: str) -> Any:
    async def read() -> Any:
        pool = await connect(redis_url)
        try:
            return await batch_progress(pool, batch)
        finally:
            await pool.aclose()

    return anyio.run(read)


def _refunds_of(root: str, orders: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Each order's refunds (number, amount), as WeChat Pay's refund query lists them."""

    async def query() -> dict[str, list[tuple[str, int]]]:
        found: dict[str, list[tuple[str, int]]] = {}
        async with WeChatPayClient(
            DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, DEMO_WECHATPAY.api_key, base_url=f"{root}/wechatpay"
        ) as client:

            async def one(order: str) -> None:
                result = await client.query_refund(out_trade_no=order)
                found[order] = [(r.out_refund_no, r.refund_fee or 0) for r in result.refunds]

            limiter = anyio.Semaphore(16)
            async with anyio.create_task_group() as group:
                for order in orders:

                    async def bounded(order: str = order) -> None:
                        async with limiter:
                            await one(order)

                    group.start_soon(bounded)
        return found

    return anyio.run(query)


def test_a_worker_killed_half_way_leaves_every_refund_made_once(
    tmp_path: Path, served: str, redis_url: str, redis_prefix: str
) -> None:
    rows = [{"out_trade_no": f"K{i:04d}", "total_fee": 1000 + i, "refund_fee": 100 + i} for i in range(600)]
    csv_file = write_csv(tmp_path / "refunds.csv", rows)
    config = _config(tmp_path, served, rate_limit=100)  # 600 refunds: about 6 s
    batch = f"{redis_prefix}kill"
    enqueued = run_paykit(
        "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", config,
        "--redis", redis_url, "--batch-id", batch,
    )  # fmt: skip
    assert enqueued.returncode == 0, enqueued.stderr
    workers = Workers(
        tmp_path, "--config", config, "--redis", redis_url, "-c", "8", "--job-timeout", "10", "--burst"
    )
    try:
        for _ in range(3):
            workers.start()
        deadline = time.monotonic() + 60
        while (done := _progress(redis_url, batch).counts["done"]) < 200:
            assert time.monotonic() < deadline, workers.logs()
            time.sleep(0.1)
        assert done < 450, "the batch went too fast to kill a worker half-way"
        victim = workers.processes[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        workers.start()  # the same worker, started again
        status = run_paykit(
            "refunds", "status", "--redis", redis_url, "--batch-id", batch, "--wait",
            "--out", tmp_path / "results.jsonl", timeout=90,
        )  # fmt: skip
        assert status.returncode == 0, (status.stdout, status.stderr, workers.logs())
        workers.wait(timeout=30)
    finally:
        workers.stop()
    assert "done" in status.stdout
    assert "600" in status.stdout
    results = read_results(tmp_path / "results.jsonl")
    assert len(results) == 600
    assert {r["status"] for r in results} == {"succeeded"}
    # The killed worker's jobs in flight ran a second time (and resumed, not re-refunded).
    progress = _progress(redis_url, batch)
    assert any(job.tries >= 2 for job in progress.jobs), "no job was in flight in the killed worker"
    numbers = {r["row"]: r["refund_no"] for r in results}
    refunds = _refunds_of(served, [row["out_trade_no"] for row in rows])
    for number, row in enumerate(rows, start=1):
        assert refunds[row["out_trade_no"]] == [(numbers[number], row["refund_fee"])], row


def _busiest_second(times: list[float]) -> int:
    busiest, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        busiest = max(busiest, end - start + 1)
    return busiest


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Python's cyclic GC paused in this process, which serves the simulator: a generation-2
    collection of pytest's heap stalls it for tens of milliseconds, and the simulator would see
    every request of that moment arrive late (a pause of the test double, not of a provider)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_three_workers_share_one_rate_limit(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    limit, count = 50, 400
    sim_config = SimulatorConfig(auto_orders=True, completion_delay=0.0, rate_limit=limit)
    with _no_gc_pauses(), live_simulator(sim_config) as live:
        rows = [{"out_trade_no": f"L{i:04d}", "total_fee": 500, "refund_fee": 50} for i in range(count)]
        csv_file = write_csv(tmp_path / "refunds.csv", rows)
        # 60 ms of headroom (the default is 30): on a loaded 2-core machine the simulator and the
        # workers share the CPUs with everything else, and a stall longer than the margin would
        # bunch arrivals. The ceiling is then 50 / 1.06 = 47.2/s, within 10 % of the limit.
        paykit_toml = _config(tmp_path, live.root, rate_limit=limit, margin=0.06)
        batch = f"{redis_prefix}rate"
        enqueued = run_paykit(
            "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", paykit_toml,
            "--redis", redis_url, "--batch-id", batch,
        )  # fmt: skip
        assert enqueued.returncode == 0, enqueued.stderr
        workers = Workers(
            tmp_path, "--config", paykit_toml, "--redis", redis_url, "-c", "10", "--burst", "-q"
        )
        try:
            for _ in range(3):
                workers.start()
            workers.wait(timeout=60)
        finally:
            workers.stop()
        sim = live.simulator
        arrivals = sorted(r.arrived for r in sim.requests() if r.endpoint == "refund")
        assert sim.over_limit_replies() == 0, workers.logs()
    assert len(arrivals) == count
    assert _progress(redis_url, batch).all_done
    assert _busiest_second(arrivals) <= limit
    # The aggregate rate over whole windows of `limit` requests, after the first second (the
    # first window fills at once): 350 requests, from one request to the one 7 windows later.
    first = next(i for i, at in enumerate(arrivals) if at >= arrivals[0] + 1.0)
    last = first + limit * ((len(arrivals) - 1 - first) // limit)
    rate = (last - first) / (arrivals[last] - arrivals[first])
    assert last - first >= 300
    assert 0.9 * limit <= rate <= limit, rate
    # Every worker process took part.
    assert all("jobs done" in log.read_text() for log in tmp_path.glob("worker*.log"))
