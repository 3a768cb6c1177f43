"""Starting and stopping the separate server processes a benchmark talks to."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

__all__ = ["ROOT", "cpu_seconds", "run_json", "started"]

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has run so far, all threads (Linux ``/proc``; 0.0 elsewhere).

    ``schedstat`` counts in nanoseconds; ``stat`` (the fallback) only in clock ticks.
    """
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime: fields 14 and 15 of stat, counted after the ")" that ends the name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def started(args: Sequence[str], *, ready: str = "PORT ", timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """Run ``python <args>`` until the block ends; yields the text after ``ready`` on its stdout
    and the process id."""
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + timeout
        assert process.stdout is not None
        while True:
            line = process.stdout.readline()
            if line.startswith(ready):
                yield line[len(ready) :].strip(), process.pid
                break
            if not line or time.monotonic() > deadline:
                err = process.stderr.read() if process.stderr else ""
                raise RuntimeError(f"server {' '.join(args)} did not start: {line!r} {err[-2000:]}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_json(
    args: Sequence[str], *, timeout: float = 600.0, on_mark: Callable[[str], None] | None = None
) -> dict[str, object]:
    """Run ``python <args>`` in a fresh process and parse the JSON object it prints last.

    Lines ``MARK <name>`` the process prints are passed to ``on_mark`` as they arrive (used to
    read the server's CPU time exactly when the timed phase starts and ends).
    """
    process = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=_env(),
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith("MARK ") and on_mark is not None:
            on_mark(line[5:].strip())
        elif line.startswith("{"):
            lines.append(line)
        if time.monotonic() > deadline:
            process.kill()
            break
    _, stderr = process.communicate()
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}): {stderr[-3000:]}")
    value = json.loads(lines[-1])
    assert isinstance(value, dict)
    return value
