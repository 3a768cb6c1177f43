"""``python -m benchmarks [--quick] [--only cost,throughput,...,v3,workers] [--profile]``.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import report
from .fixtures import make_tls_material

PARTS = ("cost", "throughput", "simulator", "memory", "retries", "v3", "workers")
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
    results: dict[str, Any] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="paykit-bench-") as directory:
        tls_dir = Path(directory)
        make_tls_material(tls_dir)
        for part in parts:
            title, measure = _PARTS[part]
            _say(title)
            try:
                rows = measure(tls_dir, args)
                table = _TABLES[part](rows)
                results[part] = rows
            except Exception as exc:
                # One broken part must not cost the others' figures; the table says what failed.
                failed = True
                _say(f"{part} failed: {type(exc).__name__}: {exc}")
                table = f"Not measured: `{type(exc).__name__}: {str(exc)[:300]}`"
            sections.append((title, table))
    elapsed = time.perf_counter() - started
    goals = report.goals(results)
    if goals:
        sections.insert(0, ("Goals", goals))
    text = report.render(sections, report.machine(load, started_at), quick=args.quick, elapsed=elapsed)
    sys.stdout.write(text + "\n")
    if output is not None:
        report.write_into(output, text)
        _say(f"wrote {output}")
    return 1 if failed else 0


def _cost(_tls_dir: Path, args: argparse.Namespace) -> Any:
    from .cost import run_cost

    return run_cost(quick=args.quick)


def _throughput(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .throughput import run_throughput

    return run_throughput(tls_dir, quick=args.quick, runs=args.runs)


def _simulator(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .simulator import run_simulator

    return run_simulator(tls_dir, quick=args.quick)


def _memory(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .memory import run_memory

    return run_memory(tls_dir, quick=args.quick)


def _retries(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .retries import run_retries

    return run_retries(tls_dir, quick=args.quick)


def _v3(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .v3 import run_v3

    return run_v3(tls_dir, quick=args.quick, runs=args.runs)


def _workers(tls_dir: Path, args: argparse.Namespace) -> Any:
    from .workers import run_workers

    return run_workers(tls_dir, quick=args.quick)


def _workers_table(rows: Any) -> str:
    from .workers import workers_table

    return workers_table(rows)


_PARTS: dict[str, tuple[str, Callable[[Path, argparse.Namespace], Any]]] = {
    "cost": ("Cost per operation (no network)", _cost),
    "throughput": ("Batch throughput: WeChat refunds over mutual TLS", _throughput),
    "simulator": ("Against the simulator (uvicorn, separate process)", _simulator),
    "memory": ("Memory: refund_many peak RSS", _memory),
    "retries": ("Retries: 10% injected SYSTEMERROR", _retries),
    "v3": ("WeChat Pay API v3 beside v2: refunds over TLS", _v3),
    "workers": ("Many workers: arq worker processes under one 150/s merchant limit", _workers),
}
_TABLES: dict[str, Callable[[Any], str]] = {
    "cost": report.cost_table,
    "throughput": report.throughput_table,
    "simulator": report.throughput_table,
    "memory": report.memory_table,
    "retries": report.retry_table,
    "v3": report.throughput_table,
    "workers": _workers_table,
}


def _say(message: str) -> None:
    sys.stderr.write(f"[benchmarks] {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":
    raise SystemExit(main())
