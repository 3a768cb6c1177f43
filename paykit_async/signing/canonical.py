"""The canonical ``k1=v1&k2=v2`` string all three providers sign, and their rules for "empty".

Fields are sorted by name in plain code-point order (case-sensitive), values are joined raw (no
URL encoding), the ``sign`` field itself is left out and empty values are dropped — what counts
as empty differs per provider, so it is a parameter.

**The re-split rule.** Joining raw values with ``&`` and ``=`` is ambiguous: the string
``attach=x&total_fee=9`` is signed alike for ``{attach: "x&total_fee=9"}`` and for
``{attach: "x", total_fee: "9"}``, so a value a customer controls could smuggle fields into (or
hide fields from) a genuinely signed message. :func:`ambiguous_field` states the rule and every
keyed signer applies it in ``verify_reading`` (:class:`~paykit_async.signing.base.ReadingVerifier`),
after the signature matched, under the signer's own empty rule — the one entry point every reply and
notification verifier calls. A signed string is believed only as its *split
reading* — cut at every ``&`` that is followed by ``name=`` (a name of ASCII letters, digits and
``_``, with ``[key]`` suffixes for nested values) — and the received fields must be exactly that
reading. So every received field name must be such a name, and no signed value may contain
``&name=``; a value holding ``&`` otherwise (``"a&b"``, ``"Tom & Jerry"``) is fine. Under this
rule a signed string is accepted as at most one field set, and a value that would change the
fields of the message when re-split is refused with :class:`~paykit_async.errors.SignatureError`.
What the rule cannot do is tell a provider's field from the tail of a free-text value that ends
in ``&name=value`` for a name the message does not carry at all: such a message is read as
carrying that extra field (it can never replace or repeat a field the provider signed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ..errors import SignatureError, ValidationError

__all__ = [
    "EmptyRule",
    "ambiguous_field",
    "canonical_bytes",
    "canonical_string",
    "is_blank",
    "is_php_empty",
    "php_float",
    "php_value",
    "refuse_ambiguous",
]

EmptyRule = Callable[[Any], bool]

_PHP_INT_MAX = 2**63 - 1
_PHP_INT_MIN = -(2**63)
# PHP's ``precision`` ini setting (default 14): the significant digits of a float turned into a
# string by ``(string)``, ``echo`` and ``http_build_query``.
_PHP_PRECISION = 14

# A field name a split reading can produce, and where a value could be cut into another field.
_NAME = "[A-Za-z0-9_]+"
_FIELD_NAME = re.compile(f"{_NAME}\\Z")
_KEY_NAME = re.compile("[A-Za-z0-9_]*\\Z")
_SPLIT_POINT = re.compile(f"&{_NAME}(?:\\[[A-Za-z0-9_]*\\])*=")
# Every name of a mapping, joined with newlines (which no plain name contains), is plain.
_PLAIN_NAMES = re.compile(f"{_NAME}(?:\n{_NAME})*\\Z")


def is_blank(value: object) -> bool:
    """WeChat Pay and eftPay: only ``None`` and ``""`` are empty; ``"0"`` and ``0`` are signed."""
    return value is None or value == ""


def is_php_empty(value: object) -> bool:
    """PAYJS: PHP ``array_filter`` drops ``""``, ``None``, ``0``, ``"0"``, ``False`` and ``[]``."""
    if value is None or value is False:
        return True
    if isinstance(value, str):
        return value in ("", "0")
    if isinstance(value, Decimal):
        return value.is_zero()  # no comparison: a signalling NaN would raise
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, Mapping | list | tuple):
        return len(value) == 0
    return False


def php_float(value: float | Decimal | int) -> str:
    """A number as PHP's string conversion of a float renders it (``precision=14``, ``%.14G``).

    This is what PAYJS's PHP code signs for a JSON number with a fraction or an exponent:
    ``json_decode`` makes it a float and ``http_build_query`` writes it with PHP's ``precision``
    setting (not ``serialize_precision``): 14 significant digits, trailing zeros dropped, and
    exponent notation (``1.0E+25``, ``1.0E-5``) when the decimal exponent is below -4 or at
    least 15. So ``1.0`` → ``1``, ``1.50`` → ``1.5``, ``1e2`` → ``100``, ``0.1`` → ``0.1``,
    ``-0.0`` → ``-0``, ``1e15`` → ``1.0E+15``. The value is first rounded to the nearest double,
    as PHP's parser does.
    """
    if isinstance(value, Decimal) and value.is_nan():
        return "NAN"  # float() refuses a signalling NaN
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf
    if math.isnan(number):
        return "NAN"
    if math.isinf(number):
        return "INF" if number > 0 else "-INF"
    sign = "-" if math.copysign(1.0, number) < 0 else ""
    mantissa, exponent = f"{abs(number):.{_PHP_PRECISION - 1}e}".split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    # PHP's php_gcvt: the decimal point sits after ``point`` digits (value = 0.digits * 10**point).
    point = int(exponent) + 1 if digits != "0" else 1
    if point < -3 or point > _PHP_PRECISION:
        power = point - 1
        fraction = digits[1:] or "0"
        return f"{sign}{digits[0]}.{fraction}E{'-' if power < 0 else '+'}{abs(power)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if len(digits) <= point:
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def php_value(value: object) -> str:
    """Render a scalar as PHP's ``http_build_query`` does (PAYJS).

    ``True`` → ``"1"``, ``False`` → ``"0"`` (a top-level ``False`` never gets here: it is empty),
    integers as written while they fit PHP's 64-bit int (beyond that ``json_decode`` makes them
    floats), ``Decimal`` and ``float`` through :func:`php_float`.
    """
    if isinstance(value, str):
        return value
    if value is True:
        return "1"
    if value is False:
        return "0"
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value) if _PHP_INT_MIN <= value <= _PHP_INT_MAX else php_float(value)
    if isinstance(value, Decimal | float):
        return php_float(value)
    return str(value)


def _plain_value(value: object) -> str:
    """WeChat Pay and eftPay: numbers as written, ``True`` → ``"1"``, ``False``/None → ``""``."""
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
    Under the PHP empty rule (PAYJS) scalars are rendered as PHP renders them (:func:`php_value`).
    """
    parts: list[str] = []
    # Nearly every value is a str and WeChat/eftPay's rule only drops "" among strs: decide those
    # inline instead of calling the rule once per field (signing runs twice per request).
    blank_rule = is_empty is is_blank
    render = php_value if is_empty is is_php_empty else _plain_value
    try:
        names = sorted(fields)
    except TypeError:
        raise ValidationError("field names must all be str") from None
    for name in names:
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
            _brackets(name, value, parts, render)
        else:
            parts.append(f"{name}={render(value)}")
    return "&".join(parts)


def canonical_bytes(
    fields: Mapping[str, Any], *, is_empty: EmptyRule = is_blank, exclude: str = "sign"
) -> bytes:
    """:func:`canonical_string` as UTF-8, encoded on its own — before any key is added.

    A value that cannot be encoded (a lone surrogate) raises :class:`ValidationError` naming
    only the field, so no exception ever holds the keyed string.
    """
    text = canonical_string(fields, is_empty=is_empty, exclude=exclude)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    # Raised outside the except block: the UnicodeEncodeError does not become its __context__.
    raise ValidationError("cannot be encoded as UTF-8 (lone surrogate)", field=_unencodable(fields))


def _unencodable(fields: Mapping[str, Any]) -> str:
    for name, value in fields.items():
        try:
            f"{name}={value}".encode()
        except UnicodeEncodeError:
            return name.encode("ascii", "backslashreplace").decode("ascii")
    return "a nested value"


def ambiguous_field(
    fields: Mapping[str, Any], *, is_empty: EmptyRule = is_blank, exclude: str = "sign"
) -> str | None:
    """The first signed field that breaks the re-split rule (see the module docstring), or None.

    A field breaks it when its name is not a plain name, or when its rendered value contains
    ``&name=`` — the signed string could then be read as a different field set.
    """
    # The usual reply: flat text values without a single "&" and only plain names. Two C-level
    # passes decide it (a per-field loop cost as much as verifying the signature); anything
    # else, a non-str name or value included, takes the field-by-field check below. Whatever
    # the rule for empty values, this returns None only where that check would.
    try:
        names = "\n".join(fields)
        # The newlines must be the separators alone: a name may hold one ("b\ny" from a form's
        # "b%0Ay" or JSON's "b\\ny"), and two names read as plain are not one name that is not.
        flat = (
            "&" not in "".join(fields.values())
            and names.count("\n") == len(fields) - 1
            and _PLAIN_NAMES.match(names) is not None
        )
    except TypeError:
        flat = False
    if flat:
        return None
    render = php_value if is_empty is is_php_empty else _plain_value
    for name, value in fields.items():
        if name == exclude or is_empty(value):
            continue
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            return _shown(name)
        if isinstance(value, Mapping | list | tuple):
            if _ambiguous_nested(value, render, depth=0):
                return name
        elif _splits(value if isinstance(value, str) else render(value)):
            return name
    return None


def refuse_ambiguous(
    fields: Mapping[str, Any], *, is_empty: EmptyRule = is_blank, what: str = "the message"
) -> None:
    """Raise :class:`SignatureError` naming the field when ``fields`` break the re-split rule."""
    name = ambiguous_field(fields, is_empty=is_empty)
    if name is not None:
        raise SignatureError(
            f"{what}: the signed string is ambiguous — field {name} could be re-split into other "
            "fields (a value holds '&name='); refusing to trust it"
        )


def _ambiguous_nested(
    value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], render: Any, depth: int
) -> bool:
    if depth > 32:
        return True
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        if not isinstance(key, str | int) or isinstance(key, bool) or not _KEY_NAME.match(str(key)):
            return True
        if isinstance(item, Mapping | list | tuple):
            if _ambiguous_nested(item, render, depth + 1):
                return True
        elif item is not None and _splits(render(item)):
            return True
    return False


def _splits(text: str) -> bool:
    return "&" in text and _SPLIT_POINT.search(text) is not None


def _shown(name: object) -> str:
    return repr(name).encode("ascii", "backslashreplace").decode("ascii")[:64]


def _brackets(prefix: str, value: object, parts: list[str], render: Callable[[object], str]) -> None:
    if isinstance(value, Mapping):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        # http_build_query skips nulls inside arrays.
        if value is not None:
            parts.append(f"{prefix}={render(value)}")
        return
    for key, item in items:
        _brackets(f"{prefix}[{key}]", item, parts, render)
