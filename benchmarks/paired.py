"""Paired rounds at concurrency 64 over mutual TLS: raw aiohttp, the transport alone, paykit.

``python -m benchmarks.paired [--rounds N]`` measures the three kinds in turn, N times, against one
local endpoint (each kind in a fresh process, as in the throughput part), and prints each round and
the medians — among them the library's share in the I/O loop (paykit − transport-only CPU per
refund, paired within each round) and paykit ÷ raw aiohttp. Run it from two checkouts in turn to
compare two versions of the library on the same machine at the same time (issue 18).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .fixtures import make_tls_material
from .processes import started
from .throughput import measure_kind

KINDS = ("raw-aiohttp", "transport-aiohttp", "paykit-aiohttp")


def paired_rounds(
    kinds: Sequence[str], *, rounds: int, count: int, concurrency: int = 64
) -> dict[str, list[dict[str, Any]]]:
    """``kinds`` measured in turn, ``rounds`` times, against one local endpoint (each in a fresh
    worker process); prints each round. Results by kind, one per round."""
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="paykit-paired-") as directory:
        tls = Path(directory)
        make_tls_material(tls)
        with started(["-m", "benchmarks.endpoint", "--tls-dir", str(tls), "--echo"]) as (port, _pid):
            url = f"https://127.0.0.1:{port}"
            for round_number in range(rounds):
                for kind in kinds:
                    results[kind].append(measure_kind(kind, url, tls, count, concurrency, 1))
                shown = ", ".join(f"{kind} {results[kind][-1]['cpu_us']:.1f} µs" for kind in kinds)
                sys.stdout.write(f"round {round_number + 1}: {shown}\n")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    results = paired_rounds(KINDS, rounds=args.rounds, count=args.count, concurrency=args.concurrency)
    for kind in KINDS:
        cpu = statistics.median(m["cpu_us"] for m in results[kind])
        rate = statistics.median(m["per_second"] for m in results[kind])
        sys.stdout.write(f"{kind}: CPU {cpu:.1f} µs per request, {rate:,.0f} requests/s (medians)\n")
    paykit, transport, raw = results["paykit-aiohttp"], results["transport-aiohttp"], results["raw-aiohttp"]
    library = [p["cpu_us"] - t["cpu_us"] for p, t in zip(paykit, transport, strict=True)]
    ratio = [p["per_second"] / r["per_second"] for p, r in zip(paykit, raw, strict=True)]
    sys.stdout.write(
        f"library share in the I/O loop: {statistics.median(library):.1f} µs "
        f"(paired, median of {len(library)} rounds)\n"
        f"paykit ÷ raw aiohttp: {statistics.median(ratio):.3f}\n"
    )


if __name__ == "__main__":
    main()
