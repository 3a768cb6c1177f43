"""WeChat Pay v2 and PAYJS signatures: ``stringA + "&key=" + key``, then MD5 or HMAC-SHA256.

Both give upper-case hex. PAYJS uses MD5 with the PHP ``array_filter`` empty rule; WeChat uses
``None``/``""`` as empty and either algorithm. The canonical string is encoded on its own before
the key is appended (see :func:`~paykit_async.signing.canonical.canonical_bytes`), so no error
can ever carry the keyed string.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import ValidationError
from .base import ReadingVerifier
from .canonical import EmptyRule, canonical_bytes, is_blank

__all__ = ["KeyedHmacSha256Signer", "KeyedMd5Signer", "constant_time_equal", "secret_bytes"]


def constant_time_equal(expected: str, received: str) -> bool:
    """Compare two signatures in constant time, ignoring hex case; non-ASCII never matches."""
    # ASCII first: str.upper() maps some non-ASCII letters to ASCII ones ("\ufb00" -> "FF").
    if not received.isascii():
        return False
    return hmac.compare_digest(expected.upper().encode("ascii"), received.upper().encode("ascii"))


def secret_bytes(secret: object, field: str) -> bytes:
    """A key or secret as UTF-8; refuses (without showing it) anything that is not such text."""
    if isinstance(secret, str):
        try:
            return secret.encode("utf-8")
        except UnicodeEncodeError:
            pass
    # Raised outside the except block, so no exception in the chain holds the secret.
    raise ValidationError("must be a str that can be encoded as UTF-8", field=field)


def _keyed_suffix(signer: Any) -> bytes:
    return b"&key=" + secret_bytes(signer.key, "key")


def _key_bytes(signer: Any) -> bytes:
    return secret_bytes(signer.key, "key")


@attrs.frozen(kw_only=True)
class KeyedMd5Signer(ReadingVerifier):
    """``upper(md5(stringA + "&key=" + key))`` — WeChat Pay v2 ``MD5`` and PAYJS."""

    key: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)
    _suffix: bytes = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_keyed_suffix, takes_self=True)
    )

    @property
    def sign_type(self) -> str:
        return "MD5"

    def sign(self, fields: Mapping[str, Any]) -> str:
        """The signature of ``fields``; a value that cannot be encoded is a ``ValidationError``."""
        data = canonical_bytes(fields, is_empty=self.is_empty) + self._suffix
        return hashlib.md5(data).hexdigest().upper()  # noqa: S324 - the protocol's choice

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        """Constant-time check; fields that cannot even be encoded never verify."""
        try:
            expected = self.sign(fields)
        except ValidationError:
            return False
        return constant_time_equal(expected, signature)


@attrs.frozen(kw_only=True)
class KeyedHmacSha256Signer(ReadingVerifier):
    """``upper(hmac_sha256(key, stringA + "&key=" + key))`` — WeChat Pay v2 ``HMAC-SHA256``."""

    key: str = attrs.field(repr=False)
    is_empty: EmptyRule = attrs.field(default=is_blank, repr=False)
    _key: bytes = attrs.field(
        init=False, repr=False, eq=False, default=attrs.Factory(_key_bytes, takes_self=True)
    )

    @property
    def sign_type(self) -> str:
        return "HMAC-SHA256"

    def sign(self, fields: Mapping[str, Any]) -> str:
        """The signature of ``fields``; a value that cannot be encoded is a ``ValidationError``."""
        data = canonical_bytes(fields, is_empty=self.is_empty) + b"&key=" + self._key
        return hmac.new(self._key, data, hashlib.sha256).hexdigest().upper()

    def verify(self, fields: Mapping[str, Any], signature: str) -> bool:
        """Constant-time check; fields that cannot even be encoded never verify."""
        try:
            expected = self.sign(fields)
        except ValidationError:
            return False
        return constant_time_equal(expected, signature)
