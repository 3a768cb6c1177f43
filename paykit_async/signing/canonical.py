"""The canonical ``k1=v1&k2=v2`` string all three providers sign, and their rules for "empty".

Fields are sorted by name in plain code-point order (case-sensitive), values are joined raw (no
URL encoding), the ``sign`` field itself is left out and empty values are dropped — what counts
as empty differs per provider, so it is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

__all__ = ["EmptyRule", "canonical_string", "is_blank", "is_php_empty", "php_value"]

EmptyRule = Callable[[Any], bool]


def is_blank(value: object) -> bool:
    """WeChat Pay and eftPay: only ``None`` and ``""`` are empty; ``"0"`` and ``0`` are signed."""
    return value is None or value == ""


def is_php_empty(value: object) -> bool:
    """PAYJS: PHP ``array_filter`` drops ``""``, ``None``, ``0``, ``"0"``, ``False`` and ``[]``."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return value in ("", "0")
    if isinstance(value, int | float | Decimal):
        return value == 0
    if isinstance(value, Mapping | list | tuple):
        return len(value) == 0
    return False


def php_value(value: object) -> str:
    """Render a scalar the way PHP's string conversion does (``True`` → ``"1"``)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    return str(value)


def canonical_string(
    fields: Mapping[str, Any], *, is_empty: EmptyRule = is_blank, exclude: str = "sign"
) -> str:
    """Build the string to sign.

    Nested mappings and lists (only PAYJS replies carry them) are expanded in PHP bracket form
    after the top-level sort, as ``http_build_query`` + ``urldecode`` would: ``jsapi[appId]=…``.
    """
    parts: list[str] = []
    # Nearly every value is a str and WeChat/eftPay's rule only drops "" among strs: decide those
    # inline instead of calling the rule once per field (signing runs twice per request).
    blank_rule = is_empty is is_blank
    for name in sorted(fields):
        if name == exclude:
            continue
        value = fields[name]
        if blank_rule and value.__class__ is str:
            if value:
                parts.append(f"{name}={value}")
            continue
        if is_empty(value):
            continue
        if isinstance(value, str):
            parts.append(f"{name}={value}")
        elif isinstance(value, Mapping | list | tuple):
            _brackets(name, value, parts)
        else:
            parts.append(f"{name}={php_value(value)}")
    return "&".join(parts)


def _brackets(prefix: str, value: object, parts: list[str]) -> None:
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        # http_build_query skips nulls inside arrays.
        if value is not None:
            parts.append(f"{prefix}={php_value(value)}")
        return
    for key, item in items:
        _brackets(f"{prefix}[{key}]", item, parts)
