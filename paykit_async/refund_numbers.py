"""Merchant refund numbers, minted once before the first attempt and reused by every retry."""

from __future__ import annotations

import base64
import secrets
import time

__all__ = ["new_refund_no"]


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
