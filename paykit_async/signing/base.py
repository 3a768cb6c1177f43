"""The signer protocol: every signer signs a field mapping and verifies in constant time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

__all__ = ["Signer"]


@runtime_checkable
class Signer(Protocol):
    """Signs the canonical string of a field mapping; ``verify`` compares in constant time.

    ``sign_type`` is the provider's name for the algorithm (``"MD5"``, ``"HMAC-SHA256"``,
    ``"SHA256"``).
    """

    @property
    def sign_type(self) -> str: ...

    def sign(self, fields: Mapping[str, Any]) -> str: ...

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool: ...
