"""Refund result notifications: decrypt ``req_info``, check the merchant, confirm by query.

**Not authenticated by the protocol.** Notifications carry no ``sign``: ``req_info`` is
AES-256-ECB (key = lowercase hex MD5 of the API key, PKCS#7 padding) *without a MAC*, and the
envelope around it is unsigned. Decrypting proves only that the blocks were once made with the
merchant's key: ECB encrypts each 16-byte block alone, so blocks of two genuine notifications of
one merchant can be spliced (``ct_A[:80] + ct_B[80:]``) into a third that decrypts cleanly and
mixes refund A's number with refund B's status. So :func:`NotificationDecryptor.parse` (what
``WeChatPayClient.parse_refund_notification`` returns) is *unconfirmed* data, and
:func:`confirm_refund_notification` — what ``WeChatPayClient.receive_refund_notification`` does
after a refund query — is what a merchant should act on.

A padding or XML failure after decryption is treated as tampering or a wrong key
(:class:`SignatureError`); input that cannot even be decrypted is a :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import attrs
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ...codecs.inbound import Body, xml_body
from ...codecs.xml import decode_xml, encode_xml
from ...errors import DecodeError, PaykitError, SignatureError
from ...notification_reply import NotificationReply
from .models import RefundNotification, RefundQueryResult
from .parsing import parse_notification

__all__ = [
    "NOTIFICATION_SUCCESS_REPLY",
    "NotificationDecryptor",
    "confirm_refund_notification",
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

    __slots__ = ("_appid", "_cipher", "_mch_id", "_sub_appid", "_sub_mch_id")

    def __init__(
        self,
        *,
        aes_key: bytes,
        appid: str,
        mch_id: str,
        sub_mch_id: str | None = None,
        sub_appid: str | None = None,
    ) -> None:
        self._cipher = Cipher(algorithms.AES(aes_key), modes.ECB())  # noqa: S305 - the protocol's mode
        self._appid = appid
        self._mch_id = mch_id
        self._sub_mch_id = sub_mch_id
        self._sub_appid = sub_appid

    @classmethod
    def for_api_key(
        cls,
        api_key: str,
        *,
        appid: str,
        mch_id: str,
        sub_mch_id: str | None = None,
        sub_appid: str | None = None,
    ) -> NotificationDecryptor:
        """The decryptor of a merchant, keyed by :func:`notification_key` of its API key."""
        return cls(
            aes_key=notification_key(api_key),
            appid=appid,
            mch_id=mch_id,
            sub_mch_id=sub_mch_id,
            sub_appid=sub_appid,
        )

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

    def parse(self, body: Body) -> RefundNotification:
        """Decrypt and parse a notification body (bytes, str, or the envelope's fields as a mapping).

        Raises a :class:`PaykitError` when it does not decrypt under this merchant's key or names
        another merchant. The result is NOT authenticated (see the module docstring): confirm it
        with :func:`confirm_refund_notification` before acting on it.
        """
        outer = xml_body(body, what="WeChat Pay refund notification")
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
        return parse_notification(self._checked_ids(outer), inner)

    def _check_merchant(self, outer: dict[str, str]) -> None:
        if not _same(outer.get("appid"), self._appid) or not _same(outer.get("mch_id"), self._mch_id):
            raise SignatureError("the notification is addressed to another merchant (appid/mch_id)")
        if self._sub_mch_id is not None and not _same(outer.get("sub_mch_id"), self._sub_mch_id):
            raise SignatureError("the notification is addressed to another sub-merchant (sub_mch_id)")
        # WeChat marks sub_appid optional in partner-mode notifications: absent is fine, another is not.
        sub_appid = outer.get("sub_appid")
        if self._sub_appid is not None and sub_appid and not _same(sub_appid, self._sub_appid):
            raise SignatureError("the notification is addressed to another sub-merchant app (sub_appid)")

    def _checked_ids(self, outer: dict[str, str]) -> dict[str, str]:
        """The envelope's merchant ids that :meth:`_check_merchant` compared with this merchant's.

        The envelope is not authenticated: an id this decryptor has nothing to compare with (a
        ``sub_mch_id`` sent to a merchant that is not a sub-merchant, a ``sub_appid`` when none is
        configured) could say anything, so it never reaches the notification.
        """
        ids = {"appid": self._appid, "mch_id": self._mch_id}
        if self._sub_mch_id is not None:
            ids["sub_mch_id"] = self._sub_mch_id
            if self._sub_appid is not None and outer.get("sub_appid"):
                ids["sub_appid"] = self._sub_appid
        return ids


def _same(received: str | None, expected: str) -> bool:
    return received is not None and hmac.compare_digest(received.encode(), expected.encode())


# Notification fields that must agree with the refund query, as (notification field, where the
# query holds it): "record" fields come from the refund's own record, "order" from the order.
_CONFIRMED_BY_RECORD = ("refund_id", "refund_fee", "settlement_refund_fee", "refund_status")
_CONFIRMED_BY_ORDER = ("out_trade_no", "transaction_id", "total_fee", "settlement_total_fee")
_REQUIRED_IN_QUERY = ("refund_status", "refund_fee", "out_trade_no")


def confirm_refund_notification(
    notification: RefundNotification, query: RefundQueryResult
) -> RefundNotification:
    """The notification confirmed by a verified refund query of its ``out_refund_no``.

    Every identity, amount and status field the notification carries (``refund_id``,
    ``refund_fee``, ``settlement_refund_fee``, ``refund_status``, ``out_trade_no``,
    ``transaction_id``, ``total_fee``, ``settlement_total_fee``) must equal the provider's; the
    query must report the refund's status, amount and order. Any disagreement raises
    :class:`SignatureError`. In the returned record (``confirmed=True``) every field comes from
    the query — those the query does not report are None — except the merchant ids, which were
    checked against the client; ``raw`` keeps the decrypted notification.
    """
    record = query.find(notification.out_refund_no)
    if record is None:
        raise SignatureError(
            f"the provider's refund query does not list refund {notification.out_refund_no!r} "
            "named by the notification: not trusting it"
        )
    confirmed: dict[str, Any] = {}
    for names, source in ((_CONFIRMED_BY_RECORD, record), (_CONFIRMED_BY_ORDER, query)):
        for name in names:
            claimed = getattr(notification, name)
            actual = getattr(source, name)
            if claimed is not None and actual is not None and claimed != actual:
                raise SignatureError(
                    f"the notification for refund {notification.out_refund_no!r} says {name}="
                    f"{claimed!r} but the provider says {actual!r}: not trusting it"
                )
            confirmed[name] = actual
    missing = [name for name in _REQUIRED_IN_QUERY if confirmed.get(name) is None]
    if missing:
        raise SignatureError(
            f"the refund query cannot confirm the notification's {', '.join(missing)}: not trusting it"
        )
    return attrs.evolve(
        notification,
        success_time=record.refund_success_time,
        refund_recv_accout=record.refund_recv_accout,
        refund_account=record.refund_account,
        refund_request_source=None,
        confirmed=True,
        **confirmed,
    )
