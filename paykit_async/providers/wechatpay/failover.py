"""Failover to WeChat's backup domain when the primary one cannot be reached at all.

Only a connection failure (``TransportError`` with ``sent=False``: refused, DNS, TLS handshake)
moves an attempt to the backup domain — the request certainly never reached the primary, so
sending the same operation (same ``out_refund_no``, same amounts) elsewhere cannot double a
refund. Timeouts and resets after sending are left to the retry layer. A failure that is not
retryable — a TLS misconfiguration such as a private CA without ``ca_file=`` or a rejected client
certificate — fails the same way on every domain, so it is raised as it is. When the backup fails
too, the error raised names both and keeps the primary's error as its ``__cause__``.
"""

from __future__ import annotations

import attrs

from ...errors import TransportError
from ...pipeline.core import Handler, Operation, Outcome

__all__ = ["BACKUP_BASE_URL", "FailoverMiddleware"]

BACKUP_BASE_URL = "https://api2.mch.weixin.qq.com"


class FailoverMiddleware:
    """Re-sends an attempt to ``backup_base_url`` when ``primary_base_url`` refused the connection."""

    __slots__ = ("backup_base_url", "primary_base_url")

    def __init__(self, *, primary_base_url: str, backup_base_url: str) -> None:
        self.primary_base_url = primary_base_url.rstrip("/")
        self.backup_base_url = backup_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"<FailoverMiddleware {self.primary_base_url} -> {self.backup_base_url}>"

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        try:
            return await call_next(operation)
        except TransportError as error:
            primary = self.primary_base_url
            if error.sent is not False or not error.retryable or not operation.url.startswith(primary + "/"):
                raise
            primary_error = error
        backup_url = self.backup_base_url + operation.url[len(self.primary_base_url) :]
        try:
            return await call_next(attrs.evolve(operation, url=backup_url))
        except TransportError as backup_error:
            raise TransportError(
                f"{backup_error.message} (on the backup domain {self.backup_base_url}, tried because "
                f"{self.primary_base_url} failed: {primary_error.message})",
                sent=backup_error.sent,
                retryable=backup_error.retryable,
            ) from primary_error
