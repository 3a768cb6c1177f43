"""The middleware pipeline: operations, outcomes, retry, idempotency and logging."""

from .clock import Clock, FakeClock, MonotonicClock
from .core import Dialect, Exchange, Handler, Middleware, Operation, Outcome, Pipeline, Settler
from .logging import LoggingMiddleware
from .ratelimit import RateLimit, RateLimitMiddleware, is_over_limit
from .retry import RetryBudget, RetryMiddleware, RetryPolicy, parse_retry_after

__all__ = [
    "Clock",
    "Dialect",
    "Exchange",
    "FakeClock",
    "Handler",
    "LoggingMiddleware",
    "Middleware",
    "MonotonicClock",
    "Operation",
    "Outcome",
    "Pipeline",
    "RateLimit",
    "RateLimitMiddleware",
    "RetryBudget",
    "RetryMiddleware",
    "RetryPolicy",
    "Settler",
    "is_over_limit",
    "parse_retry_after",
]
