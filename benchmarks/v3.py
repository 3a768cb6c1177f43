"""WeChat Pay API v3 throughput beside v2, over TLS against the local endpoint (another process).

v3 requests carry a fresh SHA256-with-RSA signature each (a private-key operation, about a quarter
of a millisecond of CPU on this class of machine) and every reply's RSA signature is verified,
where v2 hashes with MD5: at high concurrency the client's CPU decides the rate, so v3 reaches a
fraction of v2's refunds per second. Against WeChat itself (150 refunds/s per merchant, tens of ms
per call) neither is the limit. The endpoint serves TLS without asking for a client certificate
and answers v3 with a reply signed once a minute (see :mod:`benchmarks.endpoint`); the v2 rows
run against the same endpoint process, with the same TLS setup, for the comparison.
"""

from __future__ import annotations

from pathlib import Path

from .fixtures import v3_keys
from .processes import started
from .throughput import ThroughputRow, measure_kinds, rows_for

__all__ = ["V3_KINDS", "run_v3"]

V3_KINDS = ("raw-aiohttp-v3", "paykit-v3-aiohttp", "paykit-v3-httpx", "paykit-aiohttp")
_BASELINE = {"paykit-v3-aiohttp": "raw-aiohttp-v3"}


def run_v3(tls_dir: Path, *, quick: bool = False, runs: int | None = None) -> list[ThroughputRow]:
    """Each kind at concurrency 1 and 64; rows are medians of interleaved runs."""
    runs = runs if runs is not None else (1 if quick else 3)
    v3_keys(tls_dir)
    plan = [(1, 100 if quick else 500), (64, 300 if quick else 3000)]
    rows: list[ThroughputRow] = []
    endpoint = ["-m", "benchmarks.endpoint", "--tls-dir", str(tls_dir), "--echo", "--no-client-cert"]
    with started(endpoint) as (port, pid):
        url = f"https://127.0.0.1:{port}"
        for concurrency, count in plan:
            counts = dict.fromkeys(V3_KINDS, count)
            # httpcore's pool costs milliseconds per request at high concurrency (see the README).
            counts["paykit-v3-httpx"] = min(count, 500)
            measured = measure_kinds(V3_KINDS, url, tls_dir, counts, concurrency, runs, server_pid=pid)
            rows += rows_for(
                "local TLS endpoint (v3 vs v2)", measured, counts, concurrency, runs, baseline=_BASELINE
            )
    return rows
