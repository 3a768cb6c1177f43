"""eftPay money: exact ``Decimal`` amounts sent as plain strings with at most two decimals."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from ...errors import ValidationError

__all__ = ["MAX_AMOUNT_CHARS", "format_amount"]

#: ``transaction_amount`` and ``total_fee`` are ``String(8)`` on the wire.
MAX_AMOUNT_CHARS = 8

_CENT = Decimal("0.01")
_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]+)?\Z")


def format_amount(value: object, *, field: str) -> str:
    """Check an amount and return it as sent: ``"0.01"``, ``"10"``, ``"12345.67"``.

    Accepts ``Decimal``, ``int`` and plain digit strings (``"10.5"``); refuses ``float`` (inexact)
    and ``bool``. The amount must be positive, have at most two decimal places and fit in eight
    characters without an exponent. Trailing zeros beyond two places (``Decimal("1.000")``) are
    trimmed to two, since the value is the same.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise ValidationError(
            f"must be a Decimal, int or digit string, not {type(value).__name__}", field=field
        )
    if isinstance(value, str):
        if not _DIGITS.match(value):
            raise ValidationError(f"must be a positive decimal like '10.00', got {value!r}", field=field)
        try:
            amount = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise ValidationError(f"not a decimal amount: {value!r}", field=field) from None
    else:
        amount = Decimal(value)
    if not amount.is_finite():
        raise ValidationError(f"must be a finite amount, got {value!r}", field=field)
    if amount <= 0:
        raise ValidationError(f"must be positive, got {value!r}", field=field)
    if amount.adjusted() >= MAX_AMOUNT_CHARS:
        raise ValidationError(f"at most {MAX_AMOUNT_CHARS} characters as sent, got {value!r}", field=field)
    if amount != amount.quantize(_CENT, rounding=ROUND_DOWN):
        raise ValidationError(f"at most 2 decimal places, got {value!r}", field=field)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2:
        amount = amount.quantize(_CENT)
    text = format(amount, "f")
    if len(text) > MAX_AMOUNT_CHARS:
        raise ValidationError(f"at most {MAX_AMOUNT_CHARS} characters as sent, got {text!r}", field=field)
    return text
