"""The signer protocol, and the one place a verified ``k=v&…`` string is read as fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from .canonical import refuse_ambiguous

__all__ = ["ReadingVerifier", "Signer"]


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


class ReadingVerifier:
    """``verify_reading`` for the signers of the ``k=v&…`` canonical string (keyed and prefixed).

    A matching signature proves only the signed *string*; the received fields are believed only
    when they are that string's one split reading (the re-split rule,
    :mod:`paykit_async.signing.canonical`), judged under the signer's own empty rule. Every reply
    and notification verifier goes through here; ``verify`` stays the bare signature check (what
    a provider applies to requests, e.g. the simulator).
    """

    __slots__ = ()

    is_empty: Any

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        raise NotImplementedError

    def verify_reading(self, fields: Mapping[str, Any], signature: str, *, what: str = "the message") -> bool:
        """False when ``signature`` does not match; :class:`SignatureError` (naming ``what`` and the
        field) when it matches a string that reads as another field set; True otherwise."""
        if not self.verify(fields, signature):
            return False
        refuse_ambiguous(fields, is_empty=self.is_empty, what=what)
        return True
