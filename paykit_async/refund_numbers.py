"""Merchant refund numbers, minted once before the first attempt and reused by every retry."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["RefundNumberRule", "new_refund_no"]


def new_refund_no(*, prefix: str = "R", length: int = 32) -> str:
    """A unique refund number of exactly ``length`` characters from ``[0-9A-Z]``.

    It starts with ``prefix`` and a UTC timestamp (so numbers sort by creation and are easy to
    find in a provider's dashboard) followed by random characters from :mod:`secrets`.
    """
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    head = f"{prefix}{stamp}"
    if length < len(head) + 8:
        head = prefix
    if length < len(head) + 8:
        raise ValueError(f"length {length} leaves fewer than 8 random characters")
    missing = length - len(head)
    # Base32 of random bytes: uniform over [A-Z2-7] and one call into the OS CSPRNG.
    tail = base64.b32encode(secrets.token_bytes(missing * 5 // 8 + 5)).decode("ascii")
    return head + tail[:missing]


@attrs.frozen(kw_only=True)
class RefundNumberRule:
    """Where a provider's refund number lives in ``refund()``'s arguments and how to mint one.

    ``field`` is the keyword holding it; ``max_length`` the provider's limit. When ``generated``
    is False the provider has no merchant refund number and ``field`` is the order identifier
    that makes the refund unique (PAYJS refunds an order in full, by ``payjs_order_id``).
    Each provider client declares its rule as the class attribute ``refund_number_rule``.
    """

    field: str
    max_length: int = 32
    generated: bool = True

    def fix(self, request: Mapping[str, Any]) -> tuple[Mapping[str, Any], str | None]:
        """The request with its refund number filled in (minted if absent), and that number."""
        current = request.get(self.field)
        if current not in (None, ""):
            return request, str(current)
        if not self.generated:
            return request, None
        number = new_refund_no(length=min(32, self.max_length))
        return {**request, self.field: number}, number
