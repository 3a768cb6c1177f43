"""JSON bodies (eftPay requests and replies, PAYJS replies) with exact money.

Numbers with a fraction are decoded as :class:`~decimal.Decimal`, never ``float``; ``Decimal``
values are encoded as JSON strings, which is how eftPay sends amounts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ..errors import DecodeError

__all__ = ["CONTENT_TYPE", "decode_json", "encode_json"]

CONTENT_TYPE = "application/json; charset=utf-8"


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(fields: Mapping[str, Any]) -> bytes:
    """Encode as compact UTF-8 JSON (non-ASCII kept as is). Floats are refused."""
    _refuse_floats(fields)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=_default).encode()


def decode_json(body: bytes) -> dict[str, Any]:
    """Decode a JSON object; fractions become ``Decimal``. Anything but an object is an error."""
    try:
        value = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"not JSON: {exc}", retryable=True) from None
    if not isinstance(value, dict):
        raise DecodeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def _refuse_floats(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("floats are never sent: use Decimal or str for money")
    if isinstance(value, Mapping):
        items: Iterable[object] = value.values()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return
    for item in items:
        # Nearly every value is a plain str: skip the call (this halves encode_json's cost).
        if item.__class__ is not str:
            _refuse_floats(item)
