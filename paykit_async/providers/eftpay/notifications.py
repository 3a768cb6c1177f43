"""eftPay notifications: verify the JSON POST to ``notify_url`` and build the signed reply."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ...codecs.json import decode_json, encode_json
from .dialect import ReplyVerifier, as_text, eftpay_time
from .models import RefundNotification, structure_reply

__all__ = ["build_notification_reply", "parse_notification"]


def parse_notification(verifier: ReplyVerifier, body: bytes | str | Mapping[str, Any]) -> RefundNotification:
    """Decode and verify a notification; raise :class:`SignatureError` when ``sign`` is missing or
    wrong, :class:`DecodeError` when the body is not a JSON object."""
    if isinstance(body, Mapping):
        received: Mapping[str, Any] = body
    else:
        received = decode_json(body.encode("utf-8") if isinstance(body, str) else body)
    fields = {name: as_text(value) for name, value in received.items()}
    rule = verifier.verify(fields, what="notification")
    return structure_reply(RefundNotification, fields, signature_rule=rule)


def build_notification_reply(verifier: ReplyVerifier, now: datetime) -> bytes:
    """The JSON body eftPay expects back: ``{"return_code": "success", "time": ..., "sign": ...}``."""
    fields = {"return_code": "success", "time": eftpay_time(now)}
    fields["sign"] = verifier.sign(fields)
    return encode_json(fields)
