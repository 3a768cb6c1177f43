"""JSON bodies (eftPay requests and replies, PAYJS replies) with exact money.

Numbers with a fraction are decoded as :class:`~decimal.Decimal`, never ``float``; ``Decimal``
values are encoded as JSON strings, which is how eftPay sends amounts.

Decoding is hostile-input safe: the body must be UTF-8, nesting deeper than
:data:`MAX_JSON_DEPTH` is refused by a linear pre-scan before the parser recurses, and a string
holding a lone surrogate (``"\\ud800"``, which no UTF-8 text can carry) is refused — every
failure is a :class:`~paykit_async.errors.DecodeError`, never a ``RecursionError`` or a
``UnicodeEncodeError`` surfacing later from a signer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import accumulate
from typing import Any

from ..errors import DecodeError

__all__ = ["CONTENT_TYPE", "MAX_JSON_DEPTH", "decode_json", "decode_json_value", "encode_json"]

CONTENT_TYPE = "application/json; charset=utf-8"

#: Deepest nesting of arrays and objects accepted (provider replies nest two or three levels).
MAX_JSON_DEPTH = 32

# The depth pre-scan: drop escape pairs, then string literals (an unterminated one runs to the
# end), then everything that is not a bracket. Each pattern is a single token or a run of one
# character class, so every step is one linear pass that never rescans.
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*(?:"|\Z)')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# A \uD800-\uDFFF escape: only then can the parsed value hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_json(fields: Mapping[str, Any]) -> bytes:
    """Encode as compact UTF-8 JSON (non-ASCII kept as is). Floats are refused."""
    _refuse_floats(fields)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"), default=_default).encode()


def decode_json(body: bytes | str) -> dict[str, Any]:
    """Decode a JSON object; fractions become ``Decimal``. Anything but an object is an error."""
    value = decode_json_value(body)
    if not isinstance(value, dict):
        raise DecodeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def decode_json_value(body: bytes | str) -> Any:
    """Decode any JSON value (UTF-8 bytes or text) under the same rules as :func:`decode_json`.

    A body that is not JSON is a retryable :class:`DecodeError` (a reply cut off in transit looks
    like that); a refused document (too deep, lone surrogates) is not retryable.
    """
    if isinstance(body, str):
        text = body
    elif isinstance(body, bytes | bytearray | memoryview):
        raw = bytes(body)
        if raw[:3] == b"\xef\xbb\xbf":
            raw = raw[3:]  # what "utf-8-sig" strips; that codec itself is Python code, 6x slower
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Most likely cut off inside a multi-byte character: worth sending again.
            raise DecodeError(
                f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})", retryable=True
            ) from None
    else:
        raise DecodeError(f"expected a JSON body as bytes or str, got {type(body).__name__}")
    _check_depth(text)
    try:
        value = json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:
        raise DecodeError(f"not JSON: {exc}", retryable=True) from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        raise DecodeError("JSON string holds a lone surrogate (not valid Unicode text)")
    return value


def _check_depth(text: str) -> None:
    # Nearly every body has fewer brackets than the limit: then it cannot nest deeper.
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    if max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH:
        raise DecodeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels refused")


def _holds_lone_surrogate(value: object) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_lone_surrogate(k) or _holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_lone_surrogate(item) for item in value)
    return False


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
