"""``python -m benchmarks [--quick] [--only cost,throughput,memory,retries,simulator] [--profile]``.

The full run rewrites the results block of ``benchmarks/README.md``; ``--quick`` (small counts,
under a minute) only prints, unless ``--output`` is given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .fixtures import make_tls_material

PARTS = ("cost", "throughput", "simulator", "memory", "retries")
README = Path(__file__).resolve().parent / "README.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, for development (< 1 minute)")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="the Markdown file whose results block to rewrite"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="throughput runs per row (median); default 3, quick 1"
    )
    parser.add_argument("--profile", action="store_true", help="profile the WeChat refund hot path and exit")
    args = parser.parse_args(argv)
    if args.profile:
        from .profile import main as profile_main

        profile_main()
        return 0
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    output = args.output if args.output is not None else (None if args.quick else README)

    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    load = os.getloadavg()
    sections: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="paykit-bench-") as directory:
        tls_dir = Path(directory)
        make_tls_material(tls_dir)
        if "cost" in parts:
            from .cost import run_cost

            _say("cost per operation")
            sections.append(
                ("Cost per operation (no network)", report.cost_table(run_cost(quick=args.quick)))
            )
        if "throughput" in parts:
            from .throughput import run_throughput

            _say("throughput")
            rows = run_throughput(tls_dir, quick=args.quick, runs=args.runs)
            sections.append(
                ("Batch throughput: WeChat refunds over mutual TLS", report.throughput_table(rows))
            )
        if "simulator" in parts:
            from .simulator import run_simulator

            _say("simulator")
            rows = run_simulator(tls_dir, quick=args.quick)
            if rows:
                sections.append(
                    ("Against the simulator (uvicorn, separate process)", report.throughput_table(rows))
                )
        if "memory" in parts:
            from .memory import run_memory

            _say("memory")
            sections.append(
                ("Memory: refund_many peak RSS", report.memory_table(run_memory(tls_dir, quick=args.quick)))
            )
        if "retries" in parts:
            from .retries import run_retries

            _say("retries")
            sections.append(
                (
                    "Retries: 10% injected SYSTEMERROR",
                    report.retry_table(run_retries(tls_dir, quick=args.quick)),
                )
            )
    elapsed = time.perf_counter() - started
    text = report.render(sections, report.machine(load, started_at), quick=args.quick, elapsed=elapsed)
    sys.stdout.write(text + "\n")
    if output is not None:
        report.write_into(output, text)
        _say(f"wrote {output}")
    return 0


def _say(message: str) -> None:
    sys.stderr.write(f"[benchmarks] {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    raise SystemExit(main())
