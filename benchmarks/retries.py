"""Retries: ``refund_many`` over mutual TLS with 0% and 10% injected retryable faults.

The endpoint answers a seeded 10% of requests with a correctly signed ``SYSTEMERROR`` reply
(retryable: the same ``out_refund_no`` is sent again). Retry delays are short (a few ms) so
the figure shows the cost of the extra requests and waits, not a production backoff.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .processes import run_json, started

__all__ = ["RetryRow", "run_retries"]

RETRY_DELAY = 0.005


@attrs.frozen(kw_only=True)
class RetryRow:
    fault_rate: float
    count: int
    ok: int
    requests: int
    extra_requests: int
    wall: float
    per_second: float


def run_retries(tls_dir: Path, *, quick: bool = False) -> list[RetryRow]:
    """Each fault rate against its own endpoint process; the median wall time of ``runs``."""
    count = 500 if quick else 3000
    runs = 1 if quick else 3
    rows = []
    for fault_rate in (0.0, 0.1):
        endpoint = ["-m", "benchmarks.endpoint", "--tls-dir", str(tls_dir), "--echo"]
        with started([*endpoint, "--fault-rate", str(fault_rate)]) as (port, _pid):
            worker = [
                "-m", "benchmarks.batch_worker", "--transport", "aiohttp",
                "--url", f"https://127.0.0.1:{port}", "--tls-dir", str(tls_dir),
                "--count", str(count), "--concurrency", "64", "--retry-delay", str(RETRY_DELAY),
            ]  # fmt: skip
            samples = sorted((run_json(worker) for _ in range(runs)), key=lambda r: float(r["wall"]))  # type: ignore[arg-type]
        r = samples[len(samples) // 2]
        attempts = int(r["attempts"])  # type: ignore[call-overload]
        wall = float(r["wall"])  # type: ignore[arg-type]
        rows.append(
            RetryRow(
                fault_rate=fault_rate,
                count=count,
                ok=int(r["ok"]),  # type: ignore[call-overload]
                requests=attempts,
                extra_requests=attempts - count,
                wall=wall,
                per_second=count / wall,
            )
        )
    return rows
