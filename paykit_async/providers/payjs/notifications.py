"""PAYJS payment notifications: verify the form body, type it, and the reply PAYJS expects.

PAYJS redelivers a notification (at 0, 15, 30, 180, 1800 and 3600 s) until it gets HTTP 200
with body ``success`` within 3 s, so handle each ``payjs_order_id`` idempotently.
"""

from __future__ import annotations

from ...codecs.inbound import Body, form_body
from ...errors import DecodeError, SignatureError
from ...notification_reply import NotificationReply
from ...signing import KeyedMd5Signer
from .models import PaymentNotification, structure

__all__ = [
    "NotificationReply",
    "failure_reply",
    "parse_payment_notification",
    "success_reply",
]

_REQUIRED = ("return_code", "total_fee", "out_trade_no", "payjs_order_id", "mchid")


def success_reply() -> NotificationReply:
    """HTTP 200 with body ``success``: tells PAYJS to stop redelivering."""
    return NotificationReply(body=b"success")


def failure_reply() -> NotificationReply:
    """HTTP 500 with body ``fail``: anything but 200 ``success`` makes PAYJS redeliver."""
    return NotificationReply(status_code=500, body=b"fail")


def parse_payment_notification(
    body: Body, *, signer: KeyedMd5Signer, mchid: str | None = None
) -> PaymentNotification:
    """Verify and type a form-encoded payment notification.

    ``body`` is the raw request body (``bytes``, preferred), the same as ``str``, or the mapping
    a framework parsed from it (``await request.form()``); anything else, or a mapping holding
    anything but text, raises ``DecodeError``. The signature is checked over every received field
    except ``sign`` (unknown fields included). A missing or wrong ``sign``, a signed string that
    reads as another field set (see :mod:`paykit_async.signing.canonical`), or a notification for
    another merchant than ``mchid`` raises ``SignatureError``; a notification lacking a required
    field raises ``DecodeError``.
    """
    fields = form_body(body, what="PAYJS notification")
    signature = fields.get("sign")
    if not signature:
        raise SignatureError("PAYJS notification carries no signature")
    if not signer.verify_reading(fields, signature, what="PAYJS notification"):
        raise SignatureError("PAYJS notification signature does not verify")
    missing = [name for name in _REQUIRED if not fields.get(name)]
    if missing:
        raise DecodeError(f"PAYJS notification lacks {', '.join(missing)}", after_send=False)
    if mchid is not None and fields["mchid"] != mchid:
        raise SignatureError("PAYJS notification is for another merchant")
    return structure(PaymentNotification, fields)
