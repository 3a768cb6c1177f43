"""Throughput against the paykit simulator, served by uvicorn in a separate process.

The simulator does real work per request (verifies the signature, applies the ledger's refund
rules, signs its reply), so it, not the client, sets the pace: the row shows what a test suite
or a demo can expect, not the client's ceiling. The raw clients replay one pre-built refund, which
the simulator answers as an idempotent repeat, so no paykit/raw ratio is given here.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from .processes import started
from .throughput import KINDS, ThroughputRow, interleaved_medians, measure_kind, rows_for

__all__ = ["run_simulator"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_simulator(tls_dir: Path, *, quick: bool = False) -> list[ThroughputRow]:
    """Each run against a fresh simulator process, so that no run inherits a ledger grown by the
    ones before it (the simulator's work per request grows with its ledger)."""
    concurrency = 64
    counts = dict.fromkeys(KINDS, 300 if quick else 2000)
    counts["raw-httpx"] = counts["paykit-httpx"] = 300 if quick else 600
    runs = 1 if quick else 3
    kinds = [kind for kind in KINDS if not kind.startswith("transport-")]

    def measure(kind: str) -> dict[str, Any]:
        port = _free_port()
        server = ["-m", "benchmarks.sim_server", "--tls-dir", str(tls_dir), "--port", str(port)]
        with started(server) as (_, pid):
            url = f"https://127.0.0.1:{port}/wechatpay"
            return measure_kind(
                kind, url, tls_dir, counts[kind], concurrency, 1, extra=["--distinct-orders"], server_pid=pid
            )

    measured = interleaved_medians(kinds, runs, measure)
    # No ratio: the raw clients replay one pre-built refund (cheap for the simulator) while paykit
    # sends a new refund of a new order each time, so the two do not cost the server the same.
    return rows_for("simulator (uvicorn)", measured, counts, concurrency, runs, compare=False)
