"""eftPay signatures: ``lower(sha256(secret + stringA))`` — the secret is prepended, no ``&key=``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import ValidationError
from .base import ReadingVerifier
from .canonical import EmptyRule, canonical_bytes, is_blank
from .keyed import constant_time_equal, secret_bytes

__all__ = ["PrefixedSha256Signer"]


def _secret_bytes(signer: Any) -> bytes:
    return secret_bytes(signer.secret, "secret")


@attrs.frozen(kw_only=True)
class PrefixedSha256Signer(ReadingVerifier):
    """``lower(hex(sha256(secret + "k1=v1&k2=v2…")))`` over the non-empty fields.

    The canonical string is encoded on its own before the secret is prepended, so no error can
    ever carry the secret.
    """

    secret: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)
    _secret: bytes = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_secret_bytes, takes_self=True)
    )

    @property
    def sign_type(self) -> str:
        return "SHA256"

    def sign(self, fields: Mapping[str, Any]) -> str:
        """The signature of ``fields``; a value that cannot be encoded is a ``ValidationError``."""
        return hashlib.sha256(self._secret + canonical_bytes(fields, is_empty=self.is_empty)).hexdigest()

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        """Constant-time check; fields that cannot even be encoded never verify."""
        try:
            expected = self.sign(fields)
        except ValidationError:
            return False
        return constant_time_equal(expected, signature)
