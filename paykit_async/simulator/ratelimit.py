"""Per-merchant rate limits: the provider pushing back when a merchant sends too much.

With ``SimulatorConfig(rate_limit=N)`` each merchant may have at most ``N`` requests accepted in
any sliding window of one second (of the simulator clock), counted when a request arrives, before
its body is read. A request beyond that gets its provider's over-limit reply — WeChat Pay v2 the
signed ``FREQUENCY_LIMITED`` business error, v3 HTTP 429 ``FREQUENCY_LIMITED``, PAYJS and eftPay
HTTP 429 with ``Retry-After`` — and does not count towards the window. Every request to one
provider's endpoints counts: the simulator serves one merchant per provider.

A sliding window (a log of the last second's accepted arrivals) rather than fixed one-second
buckets: it is the stricter of the two, so a client that never trips it keeps any provider's
per-second limit, however the provider aligns its seconds.
"""

from __future__ import annotations

import collections
import threading

__all__ = ["RateLimits"]

_WINDOW = 1.0


class RateLimits:
    """Sliding one-second windows of accepted arrivals, one per merchant. Thread-safe."""

    def __init__(self, per_second: int | None) -> None:
        self.per_second = per_second
        self._arrivals: dict[str, collections.deque[float]] = {}
        self._refused: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def admit(self, merchant: str, now: float) -> bool:
        """Whether a request of ``merchant`` arriving at ``now`` is within the limit (it then
        counts); False when it must get the over-limit reply."""
        if self.per_second is None:
            return True
        with self._lock:
            window = self._arrivals.get(merchant)
            if window is None:
                window = self._arrivals[merchant] = collections.deque()
            while window and window[0] <= now - _WINDOW:
                window.popleft()
            if len(window) >= self.per_second:
                self._refused[merchant] += 1
                return False
            window.append(now)
            return True

    def refused(self, merchant: str | None = None) -> int:
        """How many requests (of ``merchant``, or of all) got the over-limit reply so far."""
        with self._lock:
            return self._refused[merchant] if merchant is not None else sum(self._refused.values())
