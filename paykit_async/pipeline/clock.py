"""Time for the retry layer: the real clock, and a no-sleep clock for tests.

Besides ``now`` and ``sleep`` each clock offers ``deadline_scope(deadline)``: a cancel scope
that cancels its body once the clock reaches ``deadline`` (a time on that clock). On the real
clock it is an ordinary anyio deadline; on :class:`FakeClock` it fires when a fake ``sleep`` or
``advance`` passes the deadline, so tests can show that a stalled call is abandoned on time
without waiting for it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["Clock", "FakeClock", "MonotonicClock", "deadline_scope"]


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

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """A cancel scope that expires when this clock reaches ``deadline`` (enter it)."""
        return anyio.CancelScope(deadline=anyio.current_time() + (deadline - self.now()))


class FakeClock:
    """A clock whose ``sleep`` returns at once and moves time forward; records every sleep.

    A ``sleep`` or ``advance`` that reaches the deadline of a :meth:`deadline_scope` cancels that
    scope. A task sleeping inside its own scope wakes at the deadline, as a real timeout would.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self.sleeps: list[float] = []
        self._scopes: list[tuple[float, anyio.CancelScope, int]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now = self._expire(self._now + seconds, task=None)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._now = self._expire(self._now + seconds, task=anyio.get_current_task().id)
        await anyio.lowlevel.checkpoint()

    @contextlib.contextmanager
    def deadline_scope(self, deadline: float) -> Iterator[anyio.CancelScope]:
        """A cancel scope cancelled when fake time reaches ``deadline``."""
        with anyio.CancelScope() as scope:
            entry = (deadline, scope, anyio.get_current_task().id)
            self._scopes.append(entry)
            try:
                if deadline <= self._now:
                    scope.cancel()
                yield scope
            finally:
                self._scopes.remove(entry)

    def _expire(self, target: float, *, task: int | None) -> float:
        """Moves time towards ``target`` and cancels the scopes it reaches; the new time.

        A sleeping task inside one of its own scopes stops at that scope's deadline.
        """
        own = [at for at, _, owner in self._scopes if owner == task and at <= target]
        if own:
            target = max(self._now, min(own))
        for at, scope, _ in self._scopes:
            if at <= target:
                scope.cancel()
        return target


def deadline_scope(clock: Clock, deadline: float) -> AbstractContextManager[anyio.CancelScope]:
    """``clock.deadline_scope(deadline)``, or a real-time scope for a clock without one."""
    method = getattr(clock, "deadline_scope", None)
    if method is not None:
        scope: AbstractContextManager[anyio.CancelScope] = method(deadline)
        return scope
    return anyio.CancelScope(deadline=anyio.current_time() + (deadline - clock.now()))
