"""A middleware that logs each attempt on stdlib ``logging`` without ever showing secrets.

Only the operation's identity (provider, name, attempt, refund number), the duration and the
outcome or error class and code are logged — never field values, keys, secrets or passwords.
Formatting is skipped entirely when the logger is disabled for the level.
"""

from __future__ import annotations

import logging
import time

from ..errors import PaykitError, ProviderError
from .core import Handler, Operation, Outcome

__all__ = ["LoggingMiddleware"]


class LoggingMiddleware:
    """Logs one line per attempt at ``level`` (failures at WARNING) to ``logger``."""

    #: It awaits nothing but ``call_next``: an attempt through it stays bounded by the transport.
    passes_attempt_bound = True

    def __init__(self, logger: logging.Logger | None = None, *, level: int = logging.INFO) -> None:
        self.logger = logger if logger is not None else logging.getLogger("paykit_async")
        self.level = level

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        log = self.logger
        if not log.isEnabledFor(min(self.level, logging.WARNING)):
            return await call_next(operation)
        started = time.perf_counter()
        try:
            outcome = await call_next(operation)
        except PaykitError as error:
            code = error.code if isinstance(error, ProviderError) else ""
            log.warning(
                "%s.%s attempt %d refund_no=%s failed after %.1f ms: %s %s",
                operation.provider,
                operation.name,
                operation.attempt,
                operation.refund_no or "-",
                (time.perf_counter() - started) * 1000,
                type(error).__name__,
                code,
            )
            raise
        log.log(
            self.level,
            "%s.%s attempt %d refund_no=%s ok in %.1f ms",
            operation.provider,
            operation.name,
            operation.attempt,
            operation.refund_no or "-",
            (time.perf_counter() - started) * 1000,
        )
        return outcome
