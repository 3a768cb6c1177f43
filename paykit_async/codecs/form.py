"""``application/x-www-form-urlencoded`` bodies (PAYJS requests and notifications)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from ..errors import DecodeError

__all__ = ["CONTENT_TYPE", "decode_form", "encode_form"]

CONTENT_TYPE = "application/x-www-form-urlencoded"


def encode_form(fields: Mapping[str, str]) -> bytes:
    """Encode string fields as UTF-8 form data (a space becomes ``+``, as browsers send it)."""
    return urlencode(fields, encoding="utf-8").encode("ascii")


def decode_form(body: bytes) -> dict[str, str]:
    """Decode form data, keeping empty values as ``""``; a repeated name keeps its last value."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecodeError(f"not form-encoded UTF-8: {exc}") from None
    return dict(pairs)
