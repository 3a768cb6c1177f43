"""One deadline per call, shared by every layer of it and by the queries made on its behalf.

The outermost layer that knows the policy's deadline (the idempotency layer, else the retry
layer) starts the clock; inner layers — and the settle query the retry layer sends through the
client's own pipeline — find it in a context variable and work within it instead of starting a
fresh budget. The variable lives only for the duration of the call, in the caller's task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from .clock import Clock

__all__ = ["call_deadline", "remaining"]

# (clock, absolute deadline on that clock or None for "no deadline"), while a call is running.
_current: ContextVar[tuple[Clock, float | None] | None] = ContextVar("paykit_call_deadline", default=None)


@contextlib.contextmanager
def call_deadline(clock: Clock, seconds: float | None) -> Iterator[float | None]:
    """The deadline (a time on ``clock``) of the call being made: the enclosing call's when there
    is one on the same clock, else ``seconds`` from now (None: unbounded)."""
    active = _current.get()
    if active is not None and active[0] is clock:
        yield active[1]
        return
    deadline = None if seconds is None else clock.now() + seconds
    token = _current.set((clock, deadline))
    try:
        yield deadline
    finally:
        _current.reset(token)


def remaining(clock: Clock, deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` on ``clock`` (None when there is no deadline)."""
    return None if deadline is None else deadline - clock.now()
