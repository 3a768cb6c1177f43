"""Batch throughput: WeChat refunds over mutual TLS against a local endpoint in another process.

For each concurrency, four clients run in turn, each in a fresh process (see
:mod:`benchmarks.throughput_worker`): raw aiohttp and raw httpx posting a pre-built body (the
baselines), then paykit on ``AiohttpTransport`` and on the default ``HttpxTransport``. The
endpoint (:mod:`benchmarks.endpoint`) requires a client certificate and answers with a correctly
signed reply for the request's ``out_refund_no``; certificates are issued by trustme at run time.
"""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from .processes import cpu_seconds, run_json, started

__all__ = [
    "BASELINE",
    "KINDS",
    "UVLOOP_KINDS",
    "ThroughputRow",
    "interleaved_medians",
    "measure_kind",
    "measure_kinds",
    "median_of",
    "plan",
    "rows_for",
    "run_throughput",
]

#: The raw client each paykit transport is compared with.
BASELINE = {
    "transport-aiohttp": "raw-aiohttp",
    "paykit-aiohttp": "raw-aiohttp",
    "paykit-aiohttp-batch": "raw-aiohttp",
    "paykit-httpx": "raw-httpx",
    "paykit-aiohttp+uvloop": "raw-aiohttp+uvloop",
}
KINDS = (
    "raw-aiohttp",
    "transport-aiohttp",
    "paykit-aiohttp",
    "paykit-aiohttp-batch",
    "raw-httpx",
    "paykit-httpx",
)
#: The same clients on uvloop's event loop (``+uvloop``: the worker runs on ``uvloop.run``),
#: measured at concurrency 64 when uvloop is installed (the ``bench`` extra).
UVLOOP_KINDS = ("raw-aiohttp+uvloop", "paykit-aiohttp+uvloop")
UVLOOP_CONCURRENCY = 64


def uvloop_available() -> bool:
    return importlib.util.find_spec("uvloop") is not None


@attrs.frozen(kw_only=True)
class ThroughputRow:
    """The median of ``runs`` measurements of one client at one concurrency."""

    target: str
    kind: str
    concurrency: int
    count: int
    runs: int
    per_second: float
    cpu_us: float
    errors: int
    ratio: float | None = None
    first_error: str = ""
    server_cpu_us: float | None = None


def plan(quick: bool) -> list[tuple[int, dict[str, int]]]:
    """(concurrency, {kind: refunds}) pairs.

    5,000 refunds per run, fewer at concurrency 1 and for httpx at high concurrency, where
    httpcore's pool costs milliseconds of CPU per request (see the README) and 5,000 would take
    minutes without changing the figure. ``paykit-aiohttp-batch`` is the same client
    driven by ``refund_many(concurrency=...)`` instead of a hand-written pool of workers.
    """
    if quick:
        return [(1, dict.fromkeys(KINDS, 100)), (64, dict.fromkeys(KINDS, 300))]  # fmt: skip
    full = []
    for concurrency in (1, 16, 64, 256):
        counts = dict.fromkeys(KINDS, 5000)
        if concurrency == 1:
            counts = dict.fromkeys(KINDS, 1000)
        if concurrency >= 16:
            counts["raw-httpx"] = counts["paykit-httpx"] = 1000
        full.append((concurrency, counts))
    return full


def measure_kind(
    kind: str,
    url: str,
    tls_dir: Path,
    count: int,
    concurrency: int,
    runs: int,
    extra: Sequence[str] = (),
    *,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Median over ``runs`` fresh worker processes; with ``server_pid``, also the server's CPU per
    request during the timed phase (so without the warm-up and its TLS handshakes)."""
    samples = []
    server_cpus = []
    for _ in range(runs):
        marks: dict[str, float] = {}

        def on_mark(name: str, marks: dict[str, float] = marks) -> None:
            if server_pid is not None:
                marks[name] = cpu_seconds(server_pid)

        sample = run_json(
            [
                "-m",
                "benchmarks.throughput_worker",
                "--kind",
                kind,
                "--url",
                url,
                "--tls-dir",
                str(tls_dir),
                "--count",
                str(count),
                "--concurrency",
                str(concurrency),
                *extra,
            ],
            on_mark=on_mark,
        )
        samples.append(sample)
        if "start" in marks and "end" in marks:
            server_cpus.append((marks["end"] - marks["start"]) / int(sample["count"]) * 1e6)  # type: ignore[call-overload]
    rates = [float(s["count"]) / float(s["wall"]) for s in samples]  # type: ignore[arg-type]
    cpus = [float(s["cpu"]) / float(s["count"]) * 1e6 for s in samples]  # type: ignore[arg-type]
    errors = sum(int(s["errors"]) for s in samples)  # type: ignore[call-overload]
    first = [e for s in samples for e in s.get("first_errors", [])]  # type: ignore[attr-defined]
    return {
        "per_second": statistics.median(rates),
        "cpu_us": statistics.median(cpus),
        "errors": errors,
        "first_error": first[0] if first else "",
        "server_cpu_us": statistics.median(server_cpus) if server_cpus else None,
    }


def rows_for(
    target: str,
    measured: dict[str, dict[str, Any]],
    counts: dict[str, int],
    concurrency: int,
    runs: int,
    *,
    compare: bool = True,
    baseline: Mapping[str, str] = BASELINE,
) -> list[ThroughputRow]:
    """Table rows; with ``compare`` each paykit kind gets its ratio to the raw client on the same
    HTTP library (its entry in ``baseline``)."""
    rows = []
    for kind, m in measured.items():
        base = baseline.get(kind) if compare else None
        rows.append(
            ThroughputRow(
                target=target,
                kind=kind,
                concurrency=concurrency,
                count=counts[kind],
                runs=runs,
                per_second=m["per_second"],
                cpu_us=m["cpu_us"],
                errors=int(m["errors"]),
                ratio=None if base is None else m["per_second"] / measured[base]["per_second"],
                first_error=m["first_error"],
                server_cpu_us=m.get("server_cpu_us"),
            )
        )
    return rows


def run_throughput(tls_dir: Path, *, quick: bool = False, runs: int | None = None) -> list[ThroughputRow]:
    """Measure every kind at every concurrency against one endpoint process.

    Runs are interleaved (kind A, B, C, then A, B, C again) so that a slow spell on the machine
    does not land on one kind only; each row is the median of its runs.
    """
    runs = runs if runs is not None else (1 if quick else 3)
    rows: list[ThroughputRow] = []
    with started(["-m", "benchmarks.endpoint", "--tls-dir", str(tls_dir), "--echo"]) as (port, pid):
        url = f"https://127.0.0.1:{port}"
        for concurrency, counts in plan(quick):
            kinds = list(KINDS)
            if concurrency == UVLOOP_CONCURRENCY and uvloop_available():
                kinds += UVLOOP_KINDS
                for kind in UVLOOP_KINDS:
                    counts[kind] = counts[kind.removesuffix("+uvloop")]
            measured = measure_kinds(kinds, url, tls_dir, counts, concurrency, runs, server_pid=pid)
            rows += rows_for("local TLS endpoint", measured, counts, concurrency, runs)
    return rows


def measure_kinds(
    kinds: Sequence[str],
    url: str,
    tls_dir: Path,
    counts: Mapping[str, int],
    concurrency: int,
    runs: int,
    *,
    server_pid: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Every kind against one server at ``url``: :func:`measure_kind` interleaved ``runs`` times."""
    return interleaved_medians(
        kinds,
        runs,
        lambda kind: measure_kind(kind, url, tls_dir, counts[kind], concurrency, 1, server_pid=server_pid),
    )


def interleaved_medians(
    kinds: Sequence[str], runs: int, measure: Callable[[str], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``measure(kind)`` ``runs`` times for every kind, interleaved (A, B, C, then A, B, C again, so
    that a slow spell on the machine does not land on one kind only); per kind :func:`median_of`."""
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(runs):
        for kind in kinds:
            samples[kind].append(measure(kind))
    return {kind: median_of(runs_of_kind) for kind, runs_of_kind in samples.items()}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One measurement from several results of :func:`measure_kind` (medians, errors summed)."""
    servers = [r["server_cpu_us"] for r in runs if r["server_cpu_us"] is not None]
    return {
        "per_second": statistics.median(r["per_second"] for r in runs),
        "cpu_us": statistics.median(r["cpu_us"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "first_error": next((r["first_error"] for r in runs if r["first_error"]), ""),
        "server_cpu_us": statistics.median(servers) if servers else None,
    }
