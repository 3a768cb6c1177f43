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
from typing import Any

from .fixtures import v3_keys
from .processes import started
from .throughput import ThroughputRow, measure_kind, median_of

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
            samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in V3_KINDS}
            for _ in range(runs):
                for kind in V3_KINDS:
                    samples[kind].append(
                        measure_kind(kind, url, tls_dir, counts[kind], concurrency, 1, server_pid=pid)
                    )
            measured = {kind: median_of(values) for kind, values in samples.items()}
            for kind in V3_KINDS:
                m = measured[kind]
                base = _BASELINE.get(kind)
                ratio = m["per_second"] / measured[base]["per_second"] if base else None
                rows.append(
                    ThroughputRow(
                        target="local TLS endpoint (v3 vs v2)",
                        kind=kind,
                        concurrency=concurrency,
                        count=counts[kind],
                        runs=runs,
                        per_second=m["per_second"],
                        cpu_us=m["cpu_us"],
                        errors=int(m["errors"]),
                        ratio=ratio,
                        first_error=m["first_error"],
                        server_cpu_us=m.get("server_cpu_us"),
                    )
                )
    return rows
