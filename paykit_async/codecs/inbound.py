"""Notification bodies as a web framework hands them over: raw bytes, text, or a parsed mapping.

Every notification parser accepts the raw body (``bytes``, the safest: it is exactly what was
signed), the same body as ``str``, or a mapping a framework already parsed (Starlette's
``await request.form()``, ``await request.json()``, Django's ``request.POST`` …). A mapping is
checked before anything reads it: names must be ``str`` and values of the kinds the wire format
can carry, every string valid Unicode text. Anything else raises
:class:`~paykit_async.errors.DecodeError` — never an ``AttributeError`` or ``TypeError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..errors import DecodeError
from .form import decode_form
from .json import MAX_JSON_DEPTH, decode_json
from .xml import decode_xml

__all__ = ["Body", "form_body", "json_body", "xml_body"]

Body = bytes | str | Mapping[str, Any]
"""What a notification parser accepts: the raw body, its text, or a framework's parsed mapping."""

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def form_body(body: object, *, what: str) -> dict[str, str]:
    """Fields of a form-encoded body; a mapping must hold ``str`` names and ``str`` values."""
    if isinstance(body, Mapping):
        fields: dict[str, str] = {}
        for name, value in _items(body, what):
            if not isinstance(value, str):
                raise DecodeError(f"{what}: field {_shown(name)} is a {type(value).__name__}, not text")
            fields[name] = _text(value, name, what)
        return fields
    return decode_form(_bytes_of(body, what))


def json_body(body: object, *, what: str) -> dict[str, Any]:
    """Fields of a JSON object body; a mapping may hold what JSON carries, numbers exact.

    A ``float`` is refused: it cannot be verified exactly (``0.1`` has no exact binary value),
    so pass the raw body instead of a framework's ``json()``.
    """
    if isinstance(body, Mapping):
        return {name: _json_value(value, name, what, 0) for name, value in _items(body, what)}
    return decode_json(_bytes_of(body, what))


def xml_body(body: object, *, what: str) -> dict[str, str]:
    """Fields of a flat XML body; a mapping must hold ``str`` names and ``str`` values."""
    if isinstance(body, Mapping):
        return form_body(body, what=what)
    return decode_xml(_bytes_of(body, what))


def _bytes_of(body: object, what: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError:
            pass
        raise DecodeError(f"{what}: the body is not valid Unicode text (lone surrogate)")
    raise DecodeError(f"{what}: expected the body as bytes, str or a mapping, got {type(body).__name__}")


def _items(body: Mapping[Any, Any], what: str) -> list[tuple[str, Any]]:
    items = []
    for name, value in body.items():
        if not isinstance(name, str):
            raise DecodeError(f"{what}: field names must be str, got {type(name).__name__}")
        items.append((_text(name, name, what), value))
    return items


def _text(value: str, name: str, what: str) -> str:
    if _LONE_SURROGATE.search(value) is not None:
        raise DecodeError(f"{what}: field {_shown(name)} is not valid Unicode text (lone surrogate)")
    return value


def _json_value(value: Any, name: str, what: str, depth: int) -> Any:
    if isinstance(value, str):
        return _text(value, name, what)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise DecodeError(f"{what}: field {_shown(name)} is not a finite number")
        return value
    if isinstance(value, float):
        raise DecodeError(
            f"{what}: field {_shown(name)} is a float, which cannot be verified exactly; "
            "pass the raw body (bytes) instead"
        )
    if depth >= MAX_JSON_DEPTH:
        raise DecodeError(f"{what}: nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, Mapping):
        return {key: _json_value(item, name, what, depth + 1) for key, item in _items(value, what)}
    if isinstance(value, list | tuple):
        return [_json_value(item, name, what, depth + 1) for item in value]
    raise DecodeError(f"{what}: field {_shown(name)} is a {type(value).__name__}, not a JSON value")


def _shown(name: str) -> str:
    return repr(name.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:64])
