"""eftPay request vocabulary: endpoints, service names, wallet types and field length limits.

Limits come from the refund page's ``String(n)`` column and are counted in characters (as a Java
``String`` would); eftPay does not say whether it counts bytes, so CJK-heavy ``refund_desc``
values close to the limit may still be refused by the provider.
"""

from __future__ import annotations

import re
from typing import Literal

from ...errors import ValidationError

__all__ = [
    "PAYMENT_TYPES",
    "QUERY_PATH",
    "REFUND_SERVICES",
    "SERVICE_APPLY_REFUND",
    "SERVICE_PATH",
    "SERVICE_REFUND_STATUS",
    "PayType",
    "PaymentType",
    "check_identifier",
    "check_notify_url",
    "check_pay_type",
    "check_text",
]

SERVICE_PATH = "/Servlet/JSAPIService.do"
QUERY_PATH = "/Servlet/QRcodeTradeQuery.do"

PayType = Literal["WeChat", "Alipay"]
PaymentType = Literal["WECHATCN", "WECHATHK", "ALIPAYCN", "ALIPAYHK"]

#: The synchronous refund service for each ``paytype``.
REFUND_SERVICES: dict[str, str] = {
    "WeChat": "service.wechat.jsapi.Refund",
    "Alipay": "service.alipay.jsapi.Refund",
}
SERVICE_APPLY_REFUND = "service.wechat.jsapi.ApplyRefund"
SERVICE_REFUND_STATUS = "service.unified.RefundStatusQuery"

#: The wallets (``payment_type``) that belong to each ``paytype``.
PAYMENT_TYPES: dict[str, frozenset[str]] = {
    "WeChat": frozenset({"WECHATCN", "WECHATHK"}),
    "Alipay": frozenset({"ALIPAYCN", "ALIPAYHK"}),
}

# Printable ASCII without spaces, "&" or "=" (which would make the signed k=v&k=v string
# ambiguous). Merchant numbers in eftPay's examples look like "rrn_1686280006045".
_IDENTIFIER = re.compile(r"[!-%'-<>-~]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_pay_type(paytype: object, payment_type: object) -> None:
    """``paytype`` is ``WeChat`` or ``Alipay`` and ``payment_type`` is one of its wallets."""
    if not isinstance(paytype, str) or paytype not in PAYMENT_TYPES:
        raise ValidationError(f"must be 'WeChat' or 'Alipay', got {paytype!r}", field="paytype")
    wallets = PAYMENT_TYPES[paytype]
    if not isinstance(payment_type, str) or payment_type not in wallets:
        raise ValidationError(
            f"must be one of {sorted(wallets)} for paytype {paytype!r}, got {payment_type!r}",
            field="payment_type",
        )


def check_identifier(value: object, *, field: str, max_chars: int) -> str:
    """A merchant number or key: 1..max_chars printable ASCII characters, no space, ``&`` or ``=``."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, not {type(value).__name__}", field=field)
    if not value or len(value) > max_chars:
        raise ValidationError(f"must be 1 to {max_chars} characters, got {len(value)}", field=field)
    if not _IDENTIFIER.match(value):
        raise ValidationError("only printable ASCII without spaces, '&' or '='", field=field)
    return value


def check_text(value: object, *, field: str, max_chars: int) -> str:
    """Free text (``refund_desc``): 1..max_chars characters, no control characters."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, not {type(value).__name__}", field=field)
    if not value or len(value) > max_chars:
        raise ValidationError(f"must be 1 to {max_chars} characters, got {len(value)}", field=field)
    if _CONTROL.search(value):
        raise ValidationError("must not contain control characters", field=field)
    return value


def check_notify_url(value: object) -> str:
    """An absolute http(s) URL of at most 240 characters (production honours ports 80/443 only)."""
    url = check_text(value, field="notify_url", max_chars=240)
    if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
        raise ValidationError("must be an absolute http:// or https:// URL", field="notify_url")
    return url
