"""The simulator's wall clock: real time by default, a manual clock for tests.

Providers reason in wall time (order age, eftPay's ``time`` field in UTC+8), so this is epoch
seconds, not a monotonic clock.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol

__all__ = ["CHINA", "ManualClock", "SimulatorClock", "SystemClock", "china_time"]

#: Beijing / Hong Kong time, in which WeChat and eftPay write timestamps.
CHINA = timezone(timedelta(hours=8))


class SimulatorClock(Protocol):
    """Epoch seconds, as ``time.time``."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; thread-safe (servers run in their own thread)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        with self._lock:
            self._now += seconds

    def set(self, when: float) -> None:
        """Jump to epoch second ``when``."""
        with self._lock:
            self._now = when


def china_time(epoch: float, fmt: str = "%Y%m%d%H%M%S") -> str:
    """Format ``epoch`` in UTC+8 (eftPay ``yyyyMMddHHmmss``; WeChat uses ``%Y-%m-%d %H:%M:%S``)."""
    return datetime.fromtimestamp(epoch, CHINA).strftime(fmt)
