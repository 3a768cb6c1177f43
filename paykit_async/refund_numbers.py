"""Merchant refund numbers, minted once before the first attempt and reused by every retry."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["RefundNumberRule", "derive_refund_no", "new_refund_no"]


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


def derive_refund_no(*, provider: str, merchant: str, key: str, length: int = 32) -> str:
    """The refund number of an idempotency key: the same (provider, merchant, key) always gives
    the same number, so a refund repeated after its journal was lost reaches the provider under
    the number it already knows, and the provider's own dedupe prevents a second payout.

    The number is ``"K"`` followed by the first ``length - 1`` characters of the base32 text
    (``[A-Z2-7]``, no padding) of ``SHA-256(provider + "\x00" + merchant + "\x00" + key)``
    (UTF-8). It fits every provider's alphabet; ``length`` is the provider's limit (WeChat 32 of
    its 64, eftPay 28), and 27 base32 characters already carry 135 bits. ``merchant`` names the
    merchant account (WeChat ``mch_id``, with ``"/" + sub_mch_id`` in service-provider mode;
    eftPay ``user_confirm_key``), so two merchants never share a number.
    """
    if not 16 <= length <= 52:
        raise ValueError(f"length must be between 16 and 52, got {length}")
    material = "\x00".join((provider, merchant, key)).encode("utf-8", "surrogatepass")
    digest = base64.b32encode(hashlib.sha256(material).digest()).decode("ascii")
    return "K" + digest[: length - 1]


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
