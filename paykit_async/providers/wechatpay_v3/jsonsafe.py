"""JSON for WeChat Pay API v3 replies and notifications, guarded against hostile input.

The shared codec (:mod:`paykit_async.codecs.json`) is written for the other providers' flat
replies; v3 documents are nested, so this module adds what nesting needs, in linear time: a size
cap, a nesting-depth cap (a deeply nested document is a :class:`DecodeError`, never a
``RecursionError``), no lone surrogates in strings (they could not be written back as UTF-8), and
fractions as :class:`~decimal.Decimal` (money never becomes a float).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ...errors import DecodeError

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_BYTES", "loads_object"]

#: The deepest nesting a v3 document may have (refund replies go 4 levels deep).
MAX_DEPTH = 32
#: Replies and notifications are a few kilobytes.
MAX_DOCUMENT_BYTES = 1 << 20


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number")


def loads_object(data: bytes, *, what: str, after_send: bool = True) -> dict[str, Any]:
    """Decode ``data`` as one JSON object; anything else is a :class:`DecodeError` naming ``what``."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DecodeError(f"the {what} is larger than {MAX_DOCUMENT_BYTES} bytes", after_send=after_send)
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except RecursionError:
        raise DecodeError(f"the {what} is nested too deeply", after_send=after_send) from None
    except (UnicodeDecodeError, ValueError):
        raise DecodeError(f"the {what} is not JSON", after_send=after_send) from None
    if not isinstance(value, dict):
        raise DecodeError(f"the {what} is not a JSON object", after_send=after_send)
    _check(value, what, after_send)
    return value


def _check(document: dict[str, Any], what: str, after_send: bool) -> None:
    """Walk the document once, without recursion: bounded depth, only encodable strings."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DecodeError(
                f"the {what} is nested more than {MAX_DEPTH} levels deep", after_send=after_send
            )
        if isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, what, after_send)
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1))
                elif isinstance(item, str):
                    _check_text(item, what, after_send)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1))
                elif isinstance(item, str):
                    _check_text(item, what, after_send)


def _check_text(text: str, what: str, after_send: bool) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError(f"the {what} holds an invalid unicode escape", after_send=after_send) from None
