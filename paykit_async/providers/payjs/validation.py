"""Checks on caller input, run before any I/O."""

from __future__ import annotations

import re

from ...errors import ValidationError

__all__ = ["check_credentials", "check_order_id"]

# PAYJS order numbers are up to 32 characters; the same conservative charset WeChat allows for
# order numbers keeps separators (``&``, ``=``) and whitespace out of the signed string.
_ORDER_ID = re.compile(r"[0-9A-Za-z_\-|*@]{1,32}\Z")
_MCHID = re.compile(r"[0-9A-Za-z_\-]{1,32}\Z")


def check_order_id(value: object, *, field: str = "payjs_order_id") -> str:
    """Return ``value`` if it is a plausible PAYJS order number, else raise ``ValidationError``."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, got {type(value).__name__}", field=field)
    if not value:
        raise ValidationError("is required", field=field)
    if len(value) > 32:
        raise ValidationError(f"must be at most 32 characters, got {len(value)}", field=field)
    if not _ORDER_ID.match(value):
        raise ValidationError("may hold only letters, digits and _-|*@", field=field)
    if value == "0":
        # PHP's array_filter drops "0" from the signed string: it cannot name an order.
        raise ValidationError('"0" is not an order number', field=field)
    return value


def check_credentials(mchid: object, key: object) -> tuple[str, str]:
    """Validate the merchant number and the key; the key never appears in a message."""
    if not isinstance(mchid, str) or not _MCHID.match(mchid) or mchid == "0":
        raise ValidationError("must be a non-empty merchant number (letters, digits, _-)", field="mchid")
    if not isinstance(key, str) or not key or key != key.strip():
        raise ValidationError("must be a non-empty str without surrounding whitespace", field="key")
    return mchid, key
