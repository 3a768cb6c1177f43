"""One deadline per call, shared by every layer of it and by the queries made on its behalf.

The outermost layer that knows the policy's deadline (the idempotency layer, else the retry
layer) starts the clock; inner layers — and the settle query the retry layer sends through the
client's own pipeline — find it in a context variable and work within it instead of starting a
fresh budget. The variable lives only while it is needed, in the caller's task: the idempotency
layer publishes it for the whole call, the retry layer only around its settle query.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

from .clock import Clock

__all__ = ["call_deadline", "deadline_of_call", "remaining", "sharing_deadline"]

# (clock, absolute deadline on that clock or None for "no deadline"), while a call is running.
_current: ContextVar[tuple[Clock, float | None] | None] = ContextVar("paykit_call_deadline", default=None)


class sharing_deadline:
    """Within the block, calls made in this task find ``deadline`` (on ``clock``) as their
    enclosing call's, unless an enclosing call on the same clock already published one; entering
    gives the deadline in effect.

    A small class rather than a generator-based context manager: it is entered on every call.
    """

    __slots__ = ("_clock", "_deadline", "_token")

    def __init__(self, clock: Clock, deadline: float | None) -> None:
        self._clock = clock
        self._deadline = deadline
        self._token: Token[tuple[Clock, float | None] | None] | None = None

    def __enter__(self) -> float | None:
        active = _current.get()
        if active is not None and active[0] is self._clock:
            return active[1]
        deadline = self._own_deadline()
        self._token = _current.set((self._clock, deadline))
        return deadline

    def _own_deadline(self) -> float | None:
        return self._deadline

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token = self._token
        if token is not None:
            self._token = None
            _current.reset(token)


# Named like the function it replaced: ``with call_deadline(clock, seconds) as deadline``.
class call_deadline(sharing_deadline):
    """The deadline (a time on ``clock``) of the call being made: the enclosing call's when there
    is one on the same clock, else ``seconds`` from now (None: unbounded)."""

    __slots__ = ("_seconds",)

    def __init__(self, clock: Clock, seconds: float | None) -> None:
        super().__init__(clock, None)
        self._seconds = seconds

    def _own_deadline(self) -> float | None:
        seconds = self._seconds
        return None if seconds is None else self._clock.now() + seconds


def deadline_of_call(clock: Clock, seconds: float | None) -> float | None:
    """What :class:`call_deadline` would give, without publishing it: the enclosing call's
    deadline on the same clock, else ``seconds`` from now. For a layer that publishes it only
    around the nested calls it makes itself (:class:`sharing_deadline`)."""
    active = _current.get()
    if active is not None and active[0] is clock:
        return active[1]
    return None if seconds is None else clock.now() + seconds


def remaining(clock: Clock, deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` on ``clock`` (None when there is no deadline)."""
    return None if deadline is None else deadline - clock.now()
