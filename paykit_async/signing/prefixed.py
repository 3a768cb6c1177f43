"""eftPay signatures: ``lower(sha256(secret + stringA))`` — the secret is prepended, no ``&key=``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import attrs

from .canonical import EmptyRule, canonical_string, is_blank
from .keyed import constant_time_equal

__all__ = ["PrefixedSha256Signer"]


@attrs.frozen(kw_only=True)
class PrefixedSha256Signer:
    """``lower(hex(sha256(secret + "k1=v1&k2=v2…")))`` over the non-empty fields."""

    secret: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)

    @property
    def sign_type(self) -> str:
        return "SHA256"

    def sign(self, fields: Mapping[str, Any]) -> str:
        text = self.secret + canonical_string(fields, is_empty=self.is_empty)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        return constant_time_equal(self.sign(fields), signature)
