"""Real processes: a worker killed with SIGKILL mid-refund and restarted (SQLiteStore), and two
workers racing over the same keys (RedisStore, and SQLiteStore on one file). The provider and its
ledger live in this process, served over real HTTP on 127.0.0.1, so what the workers did is judged
by what the provider executed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import serve_asgi

from .fake_provider import FakeProvider

WORKER = str(Path(__file__).with_name("refund_worker.py"))
HTTP_FAULTS = ("http_502", "systemerror", "http_500", "cut_reply")


def _orders(count: int) -> dict[str, int]:
    return {f"O{i:03d}": 100 + i for i in range(count)}


def _start(
    base_url: str,
    store: str,
    backend: str,
    out: Path,
    orders: dict[str, int],
    env: dict[str, str],
    *,
    lease: float,
) -> subprocess.Popen[bytes]:
    specs = [f"{order_id}:{amount}" for order_id, amount in orders.items()]
    return subprocess.Popen(
        [sys.executable, WORKER, base_url, store, backend, str(lease), str(out), *specs],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(process: subprocess.Popen[bytes]) -> None:
    try:
        _, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the worker did not finish")
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]


def _lines(out: Path) -> list[dict[str, object]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def _wait_for(condition: object, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None:
            pytest.fail(f"the worker exited early: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the worker")
        time.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_sigkill_mid_refund_then_restart_executes_every_refund_once(
    backend: str, tmp_path: Path, worker_env: dict[str, str]
) -> None:
    orders = _orders(40)
    provider = FakeProvider(orders=orders, fault_rate=0.15, seed=9, faults=HTTP_FAULTS)
    # The 20th refund executes and then never answers: the worker is killed while it waits.
    provider.hang_at_execution = 20
    database = tmp_path / "keys.db"
    out = tmp_path / "done.jsonl"
    with serve_asgi(provider, tls=None) as base_url:
        try:
            # A short lease, so the restart may take over the killed worker's claims soon.
            worker = _start(base_url, f"sqlite:{database}", backend, out, orders, worker_env, lease=1.0)
            _wait_for(provider.hung.is_set, 60, worker)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
            assert worker.returncode == -signal.SIGKILL
        finally:
            provider.hang_release.set()
        finished_before = {line["order_id"] for line in _lines(out)}
        executed_before = provider.executed_count()
        hung = provider.hung_refund
        assert hung is not None
        assert hung.order_id not in finished_before
        assert 0 < len(finished_before) < len(orders)
        # Executed, but its worker died first: the file still says "in flight", with that number.
        with sqlite3.connect(database) as db:
            row = db.execute(
                "SELECT state, refund_no FROM paykit_idempotency WHERE key = ?", (f"key-{hung.order_id}",)
            ).fetchone()
        assert row == ("in_flight", hung.refund_no)

        restarted = _start(base_url, f"sqlite:{database}", backend, out, orders, worker_env, lease=1.0)
        _finish(restarted)

    by_order = provider.executions_by_order()
    assert set(by_order) == set(orders)
    assert all(len(executions) == 1 for executions in by_order.values()), "a refund was executed twice"
    lines = _lines(out)
    assert {line["order_id"] for line in lines} == set(orders)
    for line in lines:
        (executed,) = by_order[str(line["order_id"])]
        assert line["refund_no"] == executed.refund_no
    # The restart resumed the hung refund under its first number and replayed the finished ones.
    assert by_order[hung.order_id] == [hung]
    assert provider.executed_count() > executed_before
    restart_lines = [line for line in lines if line["pid"] == restarted.pid]
    assert any(line["replayed"] for line in restart_lines)
    with sqlite3.connect(database) as db:
        states = {row[0] for row in db.execute("SELECT state FROM paykit_idempotency")}
    assert states == {"succeeded"}


@pytest.mark.slow
@pytest.mark.parametrize("store_kind", ["redis", "sqlite"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_two_workers_racing_over_the_same_keys_refund_each_once(
    backend: str, store_kind: str, tmp_path: Path, worker_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    orders = _orders(60)
    provider = FakeProvider(orders=orders, fault_rate=0.2, seed=11, faults=HTTP_FAULTS)
    if store_kind == "redis":
        redis_url = request.getfixturevalue("redis_url")
        store = f"redis:{redis_url}|{request.getfixturevalue('redis_prefix')}"
    else:
        store = f"sqlite:{tmp_path / 'shared.db'}"
    outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    reversed_orders = dict(reversed(list(orders.items())))
    with serve_asgi(provider, tls=None) as base_url:
        workers = [
            _start(base_url, store, backend, outs[0], orders, worker_env, lease=60.0),
            _start(base_url, store, backend, outs[1], reversed_orders, worker_env, lease=60.0),
        ]
        for worker in workers:
            _finish(worker)

    by_order = provider.executions_by_order()
    assert set(by_order) == set(orders)
    assert all(len(executions) == 1 for executions in by_order.values()), "a refund was executed twice"
    for out in outs:
        lines = _lines(out)
        assert {line["order_id"] for line in lines} == set(orders)
        for line in lines:
            (executed,) = by_order[str(line["order_id"])]
            assert line["refund_no"] == executed.refund_no
    replayed = sum(bool(line["replayed"]) for out in outs for line in _lines(out))
    assert replayed == len(orders)  # each refund was sent by one worker only, and replayed to the other
    assert sum(provider.fault_counts.values()) > 0
