"""Time for the retry layer: the real clock, and a no-sleep clock for tests."""

from __future__ import annotations

import time
from typing import Protocol

import anyio

__all__ = ["Clock", "FakeClock", "MonotonicClock"]


class Clock(Protocol):
    """A monotonic clock that can sleep."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """``time.monotonic`` and ``anyio.sleep``: works on asyncio and trio."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class FakeClock:
    """A clock whose ``sleep`` returns at once and moves time forward; records every sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now += seconds
        await anyio.lowlevel.checkpoint()
