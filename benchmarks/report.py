"""Markdown for the results: machine facts and one table per measurement."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .cost import CostRow
from .memory import MemoryRow
from .retries import RetryRow
from .throughput import ThroughputRow

__all__ = ["END", "START", "goals", "machine", "render", "write_into"]

START = "<!-- results:start (written by `python -m benchmarks`; do not edit by hand) -->"
END = "<!-- results:end -->"
PACKAGES = (
    "paykit_async",
    "httpx",
    "httpcore",
    "aiohttp",
    "attrs",
    "cattrs",
    "xmltodict",
    "wechatpy",
    "payjs",
    "uvicorn",
    "trustme",
    "uvloop",
)


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown"


def machine(load: tuple[float, float, float] | None = None, started_at: _dt.datetime | None = None) -> str:
    """A short list: date, CPU, Python, package versions, load average when the run started."""
    when = started_at if started_at is not None else _dt.datetime.now(_dt.timezone.utc)
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    lines = [
        f"- Date: {when:%Y-%m-%d %H:%M} UTC (start of the run)",
        f"- CPU: {os.cpu_count()} × {_cpu_model()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}) on {platform.system()} "
        f"{platform.release()}",
        f"- Packages: {', '.join(versions)}",
    ]
    if load is not None:
        lines.append(f"- Load average when the run started: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def cost_table(rows: Sequence[CostRow]) -> str:
    out = [
        "| Operation | paykit µs | Peer | Peer µs | paykit / peer |",
        "|---|---:|---|---:|---:|",
    ]
    for r in rows:
        peer = r.peer or r.note or "—"
        out.append(
            f"| {r.operation} | {_num(r.paykit_us)} | {peer} | {_num(r.peer_us)} | {_ratio(r.ratio)} |"
        )
    return "\n".join(out)


def throughput_table(rows: Sequence[ThroughputRow]) -> str:
    out = [
        "| Target | Client | Concurrency | Refunds | Refunds/s | Client CPU µs/refund | vs raw client "
        "| Server CPU µs/request | Errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.target} | {r.kind} | {r.concurrency} | {r.count:,} × {r.runs} | {_num(r.per_second, 0)} "
            f"| {_num(r.cpu_us, 0)} | {_ratio(r.ratio)} | {_num(r.server_cpu_us, 0)} | {r.errors} |"
        )
    return "\n".join(out)


def memory_table(rows: Sequence[MemoryRow]) -> str:
    out = [
        "| Refunds | Succeeded | RSS before batch MiB | Peak RSS MiB | vs smallest | Wall s "
        "| CPU µs/refund |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.count:,} | {r.ok:,} | {r.rss_before_mib:.1f} | {r.peak_rss_mib:.1f} | {_ratio(r.ratio)} "
            f"| {r.wall:.2f} | {r.cpu_us:.0f} |"
        )
    return "\n".join(out)


def retry_table(rows: Sequence[RetryRow]) -> str:
    out = [
        "| Injected faults | Refunds | Succeeded | Requests sent | Extra requests | Wall s | Refunds/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        out.append(
            f"| {r.fault_rate:.0%} | {r.count:,} | {r.ok:,} | {r.requests:,} | {r.extra_requests:,} "
            f"| {r.wall:.2f} | {r.per_second:,.0f} |"
        )
    return "\n".join(out)


def goals(results: Mapping[str, Any]) -> str:
    """The issue's goals, each with the measured figure and whether it is met (what was run)."""
    lines = ["| Goal | Measured | Met |", "|---|---|:---:|"]

    def add(goal: str, measured: str, met: bool | None) -> None:
        lines.append(f"| {goal} | {measured} | {'—' if met is None else ('yes' if met else 'no')} |")

    throughput = {(r.kind, r.concurrency): r for r in results.get("throughput", [])}
    for kind, goal, floor in (
        (
            "paykit-aiohttp",
            "paykit on AiohttpTransport ≥ 0.7× raw aiohttp at concurrency 64 (stretch 0.8×)",
            0.7,
        ),
        ("paykit-httpx", "paykit on the default HttpxTransport ≥ 0.9× raw httpx at concurrency 64", 0.9),
    ):
        row = throughput.get((kind, 64))
        if row is not None and row.ratio is not None:
            add(goal, f"{row.ratio:.3f}× ({row.per_second:,.0f} refunds/s)", row.ratio >= floor)
    uvloop = throughput.get(("paykit-aiohttp+uvloop", 64))
    if uvloop is not None and uvloop.ratio is not None:
        add(
            "The same on uvloop (shown, no goal): paykit vs raw aiohttp, both on uvloop",
            f"{uvloop.ratio:.3f}× ({uvloop.per_second:,.0f} refunds/s)",
            None,
        )
    # CPU one client spends per refund beyond another, at concurrency 64.
    for more, less, goal, limit in (
        (
            "paykit-aiohttp",
            "transport-aiohttp",
            "Library CPU per WeChat refund in the I/O loop (paykit client CPU − transport-only CPU, "
            "concurrency 64) ≤ 45 µs",
            45,
        ),
        (
            "paykit-aiohttp-batch",
            "paykit-aiohttp",
            "`refund_many` bookkeeping per refund (batch − hand-written workers, client CPU, "
            "concurrency 64) ≤ 10 µs",
            10,
        ),
    ):
        first, second = throughput.get((more, 64)), throughput.get((less, 64))
        if first is not None and second is not None:
            extra = first.cpu_us - second.cpu_us
            add(goal, f"{extra:.0f} µs", extra <= limit)
    cost = {r.operation: r for r in results.get("cost", [])}
    client = next((r for op, r in cost.items() if op.startswith("WeChat refund: client.refund() end")), None)
    if client is not None and client.paykit_us is not None:
        add(
            "Library CPU per WeChat refund with an in-memory transport (shown, no goal)",
            f"{client.paykit_us:.1f} µs",
            None,
        )
        if client.ratio is not None:
            add("Faster than wechatpy for the same sign/encode/decode/verify work",
                f"{client.ratio:.2f}× wechatpy's time", client.ratio < 1)  # fmt: skip
    memory = results.get("memory", [])
    if len(memory) >= 2:
        add(
            f"Memory flat from {memory[0].count:,} to {memory[-1].count:,} refunds (≤ 1.2×)",
            f"{memory[-1].ratio:.2f}× peak RSS",
            memory[-1].ratio <= 1.2,
        )
    for row in results.get("workers", []):
        add(
            f"{row.workers} worker process(es): ≥ 95% of a {row.limit}/s merchant limit, no over-limit reply",
            f"{row.rate:.1f}/s ({row.share:.1%}), {row.over_limit} over-limit",
            row.share >= 0.95 and row.over_limit == 0,
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def render(sections: Sequence[tuple[str, str]], machine_text: str, *, quick: bool, elapsed: float) -> str:
    mode = "`--quick` (small counts: development only)" if quick else "full"
    parts = [START, "", "## Results", "", machine_text, f"- Mode: {mode}; the run took {elapsed:.0f} s", ""]
    for title, table in sections:
        parts += [f"### {title}", "", table, ""]
    parts.append(END)
    return "\n".join(parts)


def write_into(path: Path, results: str) -> None:
    """Replace the results block of ``path`` (appending one if there is none)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + results + tail
    else:
        text = text.rstrip() + "\n\n" + results + "\n"
    path.write_text(text, encoding="utf-8")
