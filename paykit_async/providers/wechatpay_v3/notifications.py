"""Refund notifications: verify the signature, decrypt the resource, check the merchant.

WeChat POSTs ``{"id", "create_time", "event_type", "resource_type", "summary", "resource":
{"algorithm": "AEAD_AES_256_GCM", "ciphertext", "associated_data", "original_type", "nonce"}}``
signed with the Wechatpay-* headers. A notification is believed only when the signature over
``timestamp\\nnonce\\nbody\\n`` verifies (timestamp within ±300 s, no probe signature), the
resource decrypts under the APIv3 key, and the decrypted merchant ids are this client's
(``mchid``; ``sp_mchid`` and ``sub_mchid`` in partner mode).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ...errors import DecodeError, SignatureError
from ...notification_reply import NotificationReply
from .aead import ALGORITHM, AeadAes256Gcm
from .models import RefundNotification
from .parsing import json_object, parse_notification
from .verification import KeyRing, lower_headers, verify_signed

__all__ = ["NotificationParser", "failure_reply", "success_reply"]

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

#: Notifications are a few kilobytes; a larger body is refused before it is verified.
MAX_BODY_BYTES = 1 << 20


def success_reply() -> NotificationReply:
    """HTTP 204, no body: WeChat stops redelivering."""
    return NotificationReply(status_code=204, headers={}, body=b"")


def failure_reply(message: str = "FAIL") -> NotificationReply:
    """HTTP 500 with ``{"code": "FAIL", "message": …}``: WeChat redelivers later."""
    body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()
    return NotificationReply(status_code=500, headers={"content-type": "application/json"}, body=body)


class NotificationParser:
    """Verifies, decrypts and checks the refund notifications of one merchant (sync, no I/O)."""

    __slots__ = ("_cipher", "_clock", "_keys", "_mchid", "_sub_mchid")

    def __init__(
        self,
        *,
        keys: KeyRing,
        cipher: AeadAes256Gcm,
        mchid: str,
        sub_mchid: str | None,
        wall_clock: Callable[[], float],
    ) -> None:
        self._keys = keys
        self._cipher = cipher
        self._mchid = mchid
        self._sub_mchid = sub_mchid
        self._clock = wall_clock

    def __repr__(self) -> str:
        return f"<NotificationParser mchid={self._mchid} sub_mchid={self._sub_mchid}>"

    def parse(self, headers: Headers, body: bytes) -> RefundNotification:
        """A verified, decrypted refund notification, or a :class:`PaykitError` saying why not
        (:class:`~.verification.UnknownSerial` for a certificate not downloaded yet)."""
        if not isinstance(body, bytes | bytearray | memoryview):
            raise DecodeError("the notification body must be bytes", after_send=False)
        body = bytes(body)
        if len(body) > MAX_BODY_BYTES:
            raise DecodeError("the notification body is too large", after_send=False)
        verify_signed(lower_headers(headers), body, self._keys, now=self._clock(), what="notification")
        envelope = json_object(body, what="notification", after_send=False)
        resource = envelope.get("resource")
        if not isinstance(resource, Mapping):
            raise DecodeError("the notification carries no resource object", after_send=False)
        if resource.get("algorithm") != ALGORITHM:
            raise DecodeError(
                f"the notification resource is not encrypted with {ALGORITHM}", after_send=False
            )
        original = resource.get("original_type")
        if original is not None and original != "refund":
            raise DecodeError(
                f"not a refund notification (original_type {str(original)[:32]!r})", after_send=False
            )
        nonce, aad, ciphertext = (resource.get(k) for k in ("nonce", "associated_data", "ciphertext"))
        if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(aad, str | None):
            raise DecodeError("the notification resource lacks nonce or ciphertext", after_send=False)
        plaintext = self._cipher.decrypt(nonce=nonce, associated_data=aad or "", ciphertext=ciphertext)
        inner = json_object(plaintext, what="decrypted notification", after_send=False)
        self._check_merchant(inner)
        for name in ("out_refund_no", "refund_status"):
            if not isinstance(inner.get(name), str) or not inner[name]:
                raise DecodeError(f"the decrypted notification lacks {name}", after_send=False)
        return parse_notification(envelope, inner)

    def _check_merchant(self, inner: Mapping[str, Any]) -> None:
        if self._sub_mchid is None:
            if "sp_mchid" in inner or not _same(inner.get("mchid"), self._mchid):
                raise SignatureError("the notification is addressed to another merchant (mchid)")
            return
        if not _same(inner.get("sp_mchid"), self._mchid):
            raise SignatureError("the notification is addressed to another service provider (sp_mchid)")
        if not _same(inner.get("sub_mchid"), self._sub_mchid):
            raise SignatureError("the notification is addressed to another sub-merchant (sub_mchid)")


def _same(received: object, expected: str) -> bool:
    return isinstance(received, str) and hmac.compare_digest(received.encode(), expected.encode())
