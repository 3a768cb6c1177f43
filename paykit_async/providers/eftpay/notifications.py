"""eftPay notifications: verify the JSON POST to ``notify_url`` and build the signed reply."""

from __future__ import annotations

from datetime import datetime

from ...codecs.inbound import Body, json_body
from ...codecs.json import encode_json
from ...errors import SignatureError
from .dialect import ReplyVerifier, as_text, eftpay_time
from .models import RefundNotification, structure_reply

__all__ = ["build_notification_reply", "parse_notification"]


def parse_notification(
    verifier: ReplyVerifier, body: Body, *, user_confirm_key: str | None = None
) -> RefundNotification:
    """Decode and verify a notification.

    ``body`` is the raw request body (``bytes``, preferred), the same as ``str``, or the JSON
    object a framework parsed (a mapping; floats are refused as inexact — pass the bytes).
    Raises :class:`SignatureError` when ``sign`` is missing or wrong or the signed string reads as
    another field set, or when it names another merchant than ``user_confirm_key``;
    :class:`DecodeError` when the body is not a JSON object (or not one of the accepted kinds).
    """
    received = json_body(body, what="eftPay notification")
    fields = {name: as_text(value) for name, value in received.items()}
    rule = verifier.verify(fields, what="notification")
    named = fields.get("user_confirm_key")
    if user_confirm_key is not None and named and named != user_confirm_key:
        raise SignatureError("eftPay notification is for another merchant")
    return structure_reply(RefundNotification, fields, signature_rule=rule)


def build_notification_reply(verifier: ReplyVerifier, now: datetime) -> bytes:
    """The JSON body eftPay expects back: ``{"return_code": "success", "time": ..., "sign": ...}``."""
    fields = {"return_code": "success", "time": eftpay_time(now)}
    fields["sign"] = verifier.sign(fields)
    return encode_json(fields)
