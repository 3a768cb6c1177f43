"""Refund result notifications: decrypt ``req_info`` and check it is for this merchant.

Notifications carry no ``sign``. Authenticity rests on ``req_info`` decrypting under the merchant's
key — AES-256-ECB with key = lowercase hex MD5 of the API key, PKCS#7 padding — and on the
envelope's ``appid``/``mch_id`` (``sub_mch_id`` in partner mode) matching this merchant. ECB gives
no integrity of its own: a padding or XML failure after decryption is treated as tampering or a
wrong key (:class:`SignatureError`); input that cannot even be decrypted is a :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...codecs.xml import decode_xml, encode_xml
from ...errors import DecodeError, PaykitError, SignatureError
from ...notification_reply import NotificationReply
from .models import RefundNotification
from .parsing import parse_notification

__all__ = [
    "NOTIFICATION_SUCCESS_REPLY",
    "NotificationDecryptor",
    "notification_key",
    "notification_reply",
    "notification_reply_of",
]

#: The exact body that tells WeChat a notification was handled (anything else is redelivered).
NOTIFICATION_SUCCESS_REPLY = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
)


def notification_reply(success: bool = True, message: str = "OK") -> bytes:
    """The reply body for a notification: SUCCESS (handled) or FAIL (WeChat will redeliver)."""
    if success and message == "OK":
        return NOTIFICATION_SUCCESS_REPLY
    return encode_xml({"return_code": "SUCCESS" if success else "FAIL", "return_msg": message})


def notification_reply_of(success: bool = True, message: str = "OK") -> NotificationReply:
    """:func:`notification_reply` as a :class:`NotificationReply` (HTTP 200, XML body)."""
    return NotificationReply(headers=_XML_HEADERS, body=notification_reply(success, message))


_XML_HEADERS = {"content-type": "text/xml; charset=utf-8"}


def notification_key(api_key: str) -> bytes:
    """The AES-256 key of ``req_info``: the 32 ASCII bytes of lowercase hex ``md5(api_key)``."""
    return hashlib.md5(api_key.encode("utf-8")).hexdigest().encode("ascii")  # noqa: S324 - protocol


class NotificationDecryptor:
    """Decrypts and checks refund notifications for one merchant; the cipher is built once."""

    __slots__ = ("_appid", "_cipher", "_mch_id", "_sub_mch_id")

    def __init__(self, *, aes_key: bytes, appid: str, mch_id: str, sub_mch_id: str | None = None) -> None:
        self._cipher = Cipher(algorithms.AES(aes_key), modes.ECB())  # noqa: S305 - the protocol's mode
        self._appid = appid
        self._mch_id = mch_id
        self._sub_mch_id = sub_mch_id

    @classmethod
    def for_api_key(
        cls, api_key: str, *, appid: str, mch_id: str, sub_mch_id: str | None = None
    ) -> NotificationDecryptor:
        """The decryptor of a merchant, keyed by :func:`notification_key` of its API key."""
        return cls(aes_key=notification_key(api_key), appid=appid, mch_id=mch_id, sub_mch_id=sub_mch_id)

    def __repr__(self) -> str:
        return f"<NotificationDecryptor mch_id={self._mch_id}>"

    def decrypt(self, req_info: str) -> bytes:
        """The plaintext of ``req_info`` (base64 of AES-256-ECB, PKCS#7)."""
        try:
            data = base64.b64decode(req_info.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError("req_info is not valid base64", after_send=False) from None
        if not data or len(data) % 16:
            raise DecodeError("req_info is not a whole number of AES blocks", after_send=False)
        decryptor = self._cipher.decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise SignatureError(
                "req_info did not decrypt under this merchant's key (wrong API key or tampered)"
            ) from None

    def parse(self, body: bytes) -> RefundNotification:
        """Verify and parse a notification body; raises a :class:`PaykitError` when it is not
        an authentic refund notification for this merchant."""
        outer = decode_xml(body)
        if outer.get("return_code") != "SUCCESS":
            raise DecodeError("the notification's return_code is not SUCCESS", after_send=False)
        self._check_merchant(outer)
        req_info = outer.get("req_info")
        if not req_info:
            raise DecodeError("the notification carries no req_info", after_send=False)
        plaintext = self.decrypt(req_info)
        try:
            inner = decode_xml(plaintext)
        except PaykitError:
            raise SignatureError(
                "req_info decrypted to something that is not XML (wrong API key or tampered)"
            ) from None
        if not inner.get("out_refund_no") or not inner.get("refund_status"):
            raise SignatureError("req_info lacks out_refund_no or refund_status (wrong key or tampered)")
        return parse_notification(outer, inner)

    def _check_merchant(self, outer: dict[str, str]) -> None:
        if not _same(outer.get("appid"), self._appid) or not _same(outer.get("mch_id"), self._mch_id):
            raise SignatureError("the notification is addressed to another merchant (appid/mch_id)")
        if self._sub_mch_id is not None and not _same(outer.get("sub_mch_id"), self._sub_mch_id):
            raise SignatureError("the notification is addressed to another sub-merchant (sub_mch_id)")


def _same(received: str | None, expected: str) -> bool:
    return received is not None and hmac.compare_digest(received.encode(), expected.encode())
