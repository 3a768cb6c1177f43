"""Helpers for the ``paykit`` command tests: a simulator on a real local port, CSV files, subprocesses."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx

from paykit_async import WeChatPayClient
from paykit_async.simulator import (
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    Simulator,
    SimulatorConfig,
)
from paykit_async.simulator.serve import serve_in_thread

#: Faults on every endpoint: a couple of per cent of each kind, before and after the work.
FAULTS = FaultPlan(
    seed=11,
    rules=(
        FaultRule(
            drop_before=0.02,
            bad_gateway=0.02,
            server_error=0.02,
            rate_limited=0.0,  # WeChat asks for a long pause after FREQUENCY_LIMITED; the demo covers it
            retryable_code=0.02,
            drop_after=0.02,
            error_after=0.02,
            truncated=0.01,
            bad_signature=0.01,
            retry_after=0,
        ),
    ),
)


@attrs.frozen(kw_only=True)
class LiveSimulator:
    """A simulator served on 127.0.0.1 (in a thread of the test process) and its root URL."""

    simulator: Simulator
    root: str

    def config_file(self, directory: Path, **overrides: str) -> Path:
        """A paykit.toml for the WeChat Pay client pointing at this simulator."""
        values = {
            "appid": DEMO_WECHATPAY.appid,
            "mch_id": DEMO_WECHATPAY.mch_id,
            "api_key": DEMO_WECHATPAY.api_key,
            "base_url": f"{self.root}/wechatpay",
            **overrides,
        }
        lines = ["[wechatpay]"] + [f'{k} = "{v}"' for k, v in values.items() if v is not None]
        path = directory / "paykit.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


@contextlib.contextmanager
def live_simulator(config: SimulatorConfig) -> Iterator[LiveSimulator]:
    """The simulator served as ``paykit simulator serve`` serves it (uvicorn with its lifespan),
    on a free port, from a thread of the test process so that tests can read its ledger."""
    simulator = Simulator(config)
    with serve_in_thread(simulator) as root:
        yield LiveSimulator(simulator=simulator, root=root)


def seed_wechat_orders(simulator: Simulator, count: int, *, prefix: str = "T") -> list[dict[str, Any]]:
    """Paid orders and one partial refund row for each (half the order, so a second refund of
    the same order would succeed and show up in the ledger as a double payout)."""
    rows = []
    for i in range(count):
        total = 200 + 2 * i
        trade_no = f"{prefix}{i:06d}"
        simulator.add_wechatpay_order(trade_no, total)
        rows.append({"out_trade_no": trade_no, "total_fee": total, "refund_fee": total // 2})
    return rows


def write_csv(path: Path, rows: Sequence[dict[str, Any]], header: Sequence[str] | None = None) -> Path:
    columns = list(header if header is not None else rows[0].keys())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def paykit_command(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "paykit_async.cli", *map(str, args)]


def run_paykit(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    environment = paykit_env()
    environment.update(env or {})
    environment["COLUMNS"] = "120"
    return subprocess.run(
        paykit_command(*args), capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )


def read_results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def paykit_env() -> dict[str, str]:
    """The environment for a ``paykit`` process: this one's, without ``PAYKIT_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAYKIT_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served_simulator(directory: Path, config: str) -> Iterator[str]:
    """``paykit simulator serve --auto-orders`` with the TOML ``config``, in its own process on a
    free port, until it answers; its root URL."""
    config_file = directory / "sim.toml"
    config_file.write_text(config, encoding="utf-8")
    port = free_port()
    process = subprocess.Popen(
        paykit_command("simulator", "serve", "--port", str(port), "--auto-orders", "--config", config_file),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=paykit_env(),
    )
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{root}/wechatpay/pay/refundquery", content=b"<xml></xml>", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the simulator did not start"
                assert time.monotonic() < deadline
                time.sleep(0.05)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=20)


def demo_wechat_client(sim: Simulator, **options: Any) -> WeChatPayClient:
    """A WeChat Pay client of the demo merchant on the in-process simulator ``sim`` (its
    transport unless ``transport=`` names another)."""
    transport = options.pop("transport", None) or sim.transport()
    return WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=sim.base_url("wechatpay"),
        transport=transport,
        **options,
    )
