"""The strict cattrs converter every reply model is structured with.

Money never passes through ``float``: ints come only from ints or digit strings, ``Decimal`` only
from strings or ints; ``bool`` is accepted only from its documented spellings.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import cattrs

__all__ = ["converter", "make_converter", "strict_bool", "strict_decimal", "strict_int"]

_INT = re.compile(r"-?[0-9]+\Z")
_TRUE = frozenset({"1", "true", "TRUE", "True", "Y", "y"})
_FALSE = frozenset({"0", "false", "FALSE", "False", "N", "n"})


def strict_int(value: Any, _type: object = int) -> int:
    """An int from an int or a decimal digit string; floats, bools and ``"1.0"`` are refused."""
    if isinstance(value, bool):
        raise TypeError("a bool is not an integer amount")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def strict_decimal(value: Any, _type: object = Decimal) -> Decimal:
    """A finite Decimal from a string, an int or a Decimal; floats are refused."""
    if isinstance(value, bool | float):
        raise TypeError(f"{type(value).__name__} is not an exact amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal amount: {value!r}") from None
    else:
        raise TypeError(f"not a decimal amount: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def strict_bool(value: Any, _type: object = bool) -> bool:
    """A bool from ``True``/``False``, ``1``/``0`` or their documented string spellings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
    raise ValueError(f"not a documented boolean spelling: {value!r}")


def _strict_str(value: Any, _type: object = str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def make_converter() -> cattrs.Converter:
    """A new converter with the strict hooks (models may register more on their own copy)."""
    conv = cattrs.Converter(forbid_extra_keys=False)
    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(Decimal, strict_decimal)
    conv.register_structure_hook(bool, strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_unstructure_hook(Decimal, str)
    return conv


#: The shared converter. Hooks are registered at import time only, never mutated later.
converter = make_converter()
