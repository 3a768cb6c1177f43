"""Fault injection: what can go wrong on a request, how often, decided by a seeded RNG.

A :class:`FaultPlan` holds rules; the first rule matching a request's provider and endpoint
applies. For each request one uniform draw picks at most one fault, the rates being
cumulative in the order of :class:`FaultKind`; latency is drawn independently. Same seed, same
sequence of requests → same faults.
"""

from __future__ import annotations

import enum
import random
import threading

import attrs

from ..errors import ValidationError

__all__ = ["Fault", "FaultInjector", "FaultKind", "FaultPlan", "FaultRule"]


class FaultKind(enum.Enum):
    """The faults, grouped by whether the simulator did the work before misbehaving."""

    DROP_BEFORE = "drop_before"
    """Connection closed mid-reply before anything was done."""
    BAD_GATEWAY = "bad_gateway"
    """A proxy's HTTP 502 HTML page; nothing was done."""
    SERVER_ERROR = "server_error"
    """HTTP 500/503; nothing was done."""
    RATE_LIMITED = "rate_limited"
    """WeChat ``FREQUENCY_LIMITED``; PAYJS and eftPay HTTP 429 with ``Retry-After``."""
    RETRYABLE_CODE = "retryable_code"
    """WeChat ``SYSTEMERROR``/``BIZERR_NEED_RETRY``; eftPay a non-``00`` status; PAYJS 503."""
    DROP_AFTER = "drop_after"
    """The work is done, then the connection is closed mid-reply."""
    ERROR_AFTER = "error_after"
    """The work is done, then HTTP 500."""
    TRUNCATED = "truncated"
    """The work is done; the reply body is cut in half (well framed, so it fails to decode)."""
    BAD_SIGNATURE = "bad_signature"
    """The work is done; the reply's signature is wrong."""

    @property
    def after_work(self) -> bool:
        """Whether the request was executed before the fault."""
        return self in (
            FaultKind.DROP_AFTER,
            FaultKind.ERROR_AFTER,
            FaultKind.TRUNCATED,
            FaultKind.BAD_SIGNATURE,
        )


def _rate(_inst: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValidationError("must be between 0 and 1", field=attribute.name)


@attrs.frozen(kw_only=True)
class FaultRule:
    """Fault rates (0..1) for requests to ``provider``/``endpoint`` (``"*"`` matches any).

    Endpoints are the path's last segment without ``.do`` (``refund``, ``refundv2``,
    ``refundquery``, ``closeorder``, ``close``, ``reverse``, ``check``, ``JSAPIService``,
    ``QRcodeTradeQuery``). ``latency`` seconds are added with probability ``latency_rate``.
    """

    provider: str = "*"
    endpoint: str = "*"
    latency: float = 0.0
    latency_rate: float = attrs.field(default=0.0, validator=_rate)
    drop_before: float = attrs.field(default=0.0, validator=_rate)
    bad_gateway: float = attrs.field(default=0.0, validator=_rate)
    server_error: float = attrs.field(default=0.0, validator=_rate)
    rate_limited: float = attrs.field(default=0.0, validator=_rate)
    retryable_code: float = attrs.field(default=0.0, validator=_rate)
    drop_after: float = attrs.field(default=0.0, validator=_rate)
    error_after: float = attrs.field(default=0.0, validator=_rate)
    truncated: float = attrs.field(default=0.0, validator=_rate)
    bad_signature: float = attrs.field(default=0.0, validator=_rate)
    retry_after: int = 1
    """The ``Retry-After`` seconds sent with HTTP 429."""

    def __attrs_post_init__(self) -> None:
        if sum(getattr(self, kind.value) for kind in FaultKind) > 1.0 + 1e-9:
            raise ValidationError("fault rates of one rule add up to more than 1", field="faults")

    def matches(self, provider: str, endpoint: str) -> bool:
        """Whether this rule governs ``provider``/``endpoint``."""
        return self.provider in ("*", provider) and self.endpoint in ("*", endpoint)


@attrs.frozen(kw_only=True)
class FaultPlan:
    """The seed and the rules; with no rules nothing ever goes wrong."""

    seed: int = 0
    rules: tuple[FaultRule, ...] = ()


@attrs.frozen(kw_only=True)
class Fault:
    """What happens to one request: an optional fault and an optional delay."""

    kind: FaultKind | None = None
    latency: float = 0.0
    retry_after: int = 1
    draw: float = 0.0
    """The uniform draw that chose the fault; providers use it to vary the retryable code."""


class FaultInjector:
    """Draws faults from the plan. Thread-safe: one lock around the RNG."""

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()

    def decide(self, provider: str, endpoint: str) -> Fault:
        """Pick the fault for one request (none when no rule matches)."""
        rule = next((r for r in self._plan.rules if r.matches(provider, endpoint)), None)
        if rule is None:
            return Fault()
        with self._lock:
            draw = self._random.random()
            latency_draw = self._random.random()
        latency = rule.latency if latency_draw < rule.latency_rate else 0.0
        total = 0.0
        for kind in FaultKind:
            total += getattr(rule, kind.value)
            if draw < total:
                return Fault(kind=kind, latency=latency, retry_after=rule.retry_after, draw=draw)
        return Fault(latency=latency, retry_after=rule.retry_after, draw=draw)
