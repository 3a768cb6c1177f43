"""Memory: peak RSS of ``refund_many`` over 10,000 and 100,000 refunds, a fresh process per size.

The client uses an in-process transport, so the figure is the batch machinery, the client and
the interpreter — nothing that grows with the number of requests should show up.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .processes import run_json

__all__ = ["MemoryRow", "run_memory"]


@attrs.frozen(kw_only=True)
class MemoryRow:
    count: int
    ok: int
    peak_rss_mib: float
    rss_before_mib: float
    wall: float
    cpu_us: float
    ratio: float


def run_memory(tls_dir: Path, *, quick: bool = False) -> list[MemoryRow]:
    sizes = (1_000, 10_000) if quick else (10_000, 100_000)
    results = [
        run_json(["-m", "benchmarks.batch_worker", "--count", str(n), "--tls-dir", str(tls_dir)])
        for n in sizes
    ]
    first = float(results[0]["peak_rss_kib"])  # type: ignore[arg-type]
    rows = []
    for r in results:
        peak = float(r["peak_rss_kib"])  # type: ignore[arg-type]
        count = int(r["count"])  # type: ignore[call-overload]
        rows.append(
            MemoryRow(
                count=count,
                ok=int(r["ok"]),  # type: ignore[call-overload]
                peak_rss_mib=peak / 1024,
                rss_before_mib=float(r["rss_before_kib"]) / 1024,  # type: ignore[arg-type]
                wall=float(r["wall"]),  # type: ignore[arg-type]
                cpu_us=float(r["cpu"]) / count * 1e6,  # type: ignore[arg-type]
                ratio=peak / first,
            )
        )
    return rows
