"""WeChat Pay v2 and PAYJS signatures: ``stringA + "&key=" + key``, then MD5 or HMAC-SHA256.

Both give upper-case hex. PAYJS uses MD5 with the PHP ``array_filter`` empty rule; WeChat uses
``None``/``""`` as empty and either algorithm.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import attrs

from .canonical import EmptyRule, canonical_string, is_blank

__all__ = ["KeyedHmacSha256Signer", "KeyedMd5Signer", "constant_time_equal"]


def constant_time_equal(expected: str, received: str) -> bool:
    """Compare two signatures in constant time, ignoring hex case; non-ASCII never matches."""
    try:
        received_bytes = received.upper().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.upper().encode("ascii"), received_bytes)


@attrs.frozen(kw_only=True)
class KeyedMd5Signer:
    """``upper(md5(stringA + "&key=" + key))`` — WeChat Pay v2 ``MD5`` and PAYJS."""

    key: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)

    @property
    def sign_type(self) -> str:
        return "MD5"

    def sign(self, fields: Mapping[str, Any]) -> str:
        text = f"{canonical_string(fields, is_empty=self.is_empty)}&key={self.key}"
        return hashlib.md5(text.encode("utf-8")).hexdigest().upper()  # noqa: S324 - the protocol's choice

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        return constant_time_equal(self.sign(fields), signature)


@attrs.frozen(kw_only=True)
class KeyedHmacSha256Signer:
    """``upper(hmac_sha256(key, stringA + "&key=" + key))`` — WeChat Pay v2 ``HMAC-SHA256``."""

    key: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)

    @property
    def sign_type(self) -> str:
        return "HMAC-SHA256"

    def sign(self, fields: Mapping[str, Any]) -> str:
        text = f"{canonical_string(fields, is_empty=self.is_empty)}&key={self.key}"
        return hmac.new(self.key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest().upper()

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        return constant_time_equal(self.sign(fields), signature)
