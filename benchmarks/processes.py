"""Starting and stopping the separate server processes a benchmark talks to."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["ROOT", "run_json", "started"]

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@contextlib.contextmanager
def started(args: Sequence[str], *, ready: str = "PORT ", timeout: float = 30.0) -> Iterator[str]:
    """Run ``python <args>`` until the block ends; yields the text after ``ready`` on its stdout."""
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
                yield line[len(ready) :].strip()
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


def run_json(args: Sequence[str], *, timeout: float = 600.0) -> dict[str, object]:
    """Run ``python <args>`` in a fresh process and parse the JSON object it prints last."""
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=timeout,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-3000:]}")
    value = json.loads(lines[-1])
    assert isinstance(value, dict)
    return value
