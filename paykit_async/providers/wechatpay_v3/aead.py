"""AEAD_AES_256_GCM: how WeChat Pay API v3 encrypts notification resources and platform certificates.

The key is the merchant's APIv3 key (32 bytes), the nonce and associated data are the strings
sent beside the ``ciphertext``, which is base64 of ciphertext ‖ 16-byte tag. Any change to the
key, nonce, associated data or ciphertext fails the tag: that is a :class:`SignatureError` (the
message is not authentic for this merchant), never a raw ``InvalidTag``.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ...errors import DecodeError, SignatureError, ValidationError

__all__ = ["ALGORITHM", "AeadAes256Gcm", "apiv3_key_bytes"]

ALGORITHM = "AEAD_AES_256_GCM"
_TAG_BYTES = 16
#: A notification or certificate list is a few kilobytes; anything far larger is refused unread.
_MAX_CIPHERTEXT_CHARS = 1 << 20
_MIN_NONCE_BYTES = 8
_MAX_NONCE_BYTES = 64


def apiv3_key_bytes(apiv3_key: object) -> bytes:
    """The AES-256 key of an APIv3 key: its 32 UTF-8 bytes (a :class:`ValidationError` otherwise)."""
    if not isinstance(apiv3_key, str):
        raise ValidationError(
            f"must be a str of 32 characters, got {type(apiv3_key).__name__}", field="apiv3_key"
        )
    key = apiv3_key.encode("utf-8")
    if len(key) != 32:
        raise ValidationError(f"must be exactly 32 bytes (UTF-8), got {len(key)}", field="apiv3_key")
    return key


def _as_bytes(value: str | bytes, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"the {what} is not valid text", after_send=False) from None
    raise DecodeError(f"the {what} must be a string", after_send=False)


class AeadAes256Gcm:
    """Decrypts with one AES-GCM key.

    WeChat's algorithm is AES-256 (a 32-byte key, which the client insists on); the primitive
    also takes 16- and 24-byte keys so that it can be checked against published AES-GCM vectors.
    """

    __slots__ = ("_cipher",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) not in (16, 24, 32):
            raise ValidationError("must be 16, 24 or 32 bytes", field="key")
        self._cipher = AESGCM(key)

    @classmethod
    def for_apiv3_key(cls, apiv3_key: str) -> AeadAes256Gcm:
        """The cipher of a merchant's APIv3 key (exactly 32 bytes)."""
        return cls(apiv3_key_bytes(apiv3_key))

    def __repr__(self) -> str:
        return "<AeadAes256Gcm>"

    def decrypt(self, *, nonce: str | bytes, associated_data: str | bytes, ciphertext: str) -> bytes:
        """The plaintext of base64 ``ciphertext`` (ciphertext ‖ tag).

        Raises :class:`DecodeError` when the input cannot even be decrypted (bad base64, shorter
        than a tag, a nonce of fewer than 8 or more than 64 bytes) and :class:`SignatureError`
        when the tag does not match.
        """
        if not isinstance(ciphertext, str):
            raise DecodeError("the ciphertext must be a base64 string", after_send=False)
        if len(ciphertext) > _MAX_CIPHERTEXT_CHARS:
            raise DecodeError("the ciphertext is too large", after_send=False)
        nonce_bytes = _as_bytes(nonce, "nonce")
        aad = _as_bytes(associated_data, "associated_data")
        # AES-GCM implementations take nonces of 8 bytes or more (WeChat's are 12): a shorter
        # one is a ValueError inside the primitive, which must never escape as such.
        if not _MIN_NONCE_BYTES <= len(nonce_bytes) <= _MAX_NONCE_BYTES:
            raise DecodeError(
                f"the nonce must be {_MIN_NONCE_BYTES} to {_MAX_NONCE_BYTES} bytes", after_send=False
            )
        try:
            data = base64.b64decode(ciphertext.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise DecodeError("the ciphertext is not valid base64", after_send=False) from None
        if len(data) < _TAG_BYTES:
            raise DecodeError("the ciphertext is shorter than its authentication tag", after_send=False)
        try:
            return self._cipher.decrypt(nonce_bytes, data, aad)
        except ValueError:
            raise DecodeError(
                "the nonce or ciphertext cannot be decrypted with AES-GCM", after_send=False
            ) from None
        except InvalidTag:
            raise SignatureError(
                "AEAD_AES_256_GCM authentication failed: wrong APIv3 key, or the nonce, "
                "associated data or ciphertext was altered"
            ) from None
