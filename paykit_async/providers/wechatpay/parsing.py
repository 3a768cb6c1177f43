"""Verified reply fields → typed results: indexed fields become lists, JSON strings typed lists.

Empty values are treated as absent (``None``) in the typed view; ``raw`` keeps them. A field that
does not have its documented type (a non-integer amount) is a :class:`DecodeError`.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

import attrs
import cattrs

from ...codecs.json import decode_json_value
from ...converter import make_converter, strict_bool, strict_int
from ...errors import DecodeError
from .models import (
    CloseOrderResult,
    Coupon,
    Promotion,
    PromotionGoods,
    RefundNotification,
    RefundQueryResult,
    RefundRecord,
    RefundResult,
)

__all__ = [
    "indexed_name",
    "parse_close_order",
    "parse_notification",
    "parse_promotion_detail",
    "parse_refund",
    "parse_refund_query",
    "query_record_as_refund_fields",
]

T = TypeVar("T")

# ``name_$n`` / ``name_$n_$m``. An index is a plain decimal of at most four digits without a
# leading zero (WeChat's are below 50); any other digit run leaves the name a plain field, so a
# name like ``refund_fee_0001`` or one with thousands of digits is never turned into a number.
_INDEX = "(0|[1-9][0-9]{0,3})"
_INDEXED = re.compile(f"([a-z_]+?)_{_INDEX}(?:_{_INDEX})?\\Z")


def indexed_name(name: str) -> tuple[str, int, int | None] | None:
    """``(base, n, m)`` of an indexed field name (``m`` None for ``name_$n``), else None."""
    match = _INDEXED.match(name)
    if match is None:
        return None
    base, n, m = match.groups()
    return base, int(n), None if m is None else int(m)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _fen(value: Any) -> int:
    # Fast path for the common case, an ASCII digit string; everything else goes to strict_int.
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    return strict_int(value)


def _list_of(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def structure(value: Any) -> list[Any]:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [hook(item) for item in value]

    return structure


def _passthrough(value: Any) -> Any:
    return value


def _value_hook(annotation: Any, hooks: Mapping[type, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _value_hook(args[0], hooks)  # None is passed through by the model hook
    if origin is list:
        return _list_of(_value_hook(args[0], hooks))
    if origin is Mapping:
        # ``raw`` is the verified field dict itself; copying it would only cost time.
        return _passthrough
    if annotation in hooks:
        return hooks[annotation]
    return partial(_converter.structure, cl=annotation)


def _flat_model_hook(cls: type[T], hooks: dict[type, Callable[[Any], Any]]) -> Callable[[Any], T]:
    """A structure function for one flat attrs model: one strict hook per field, resolved once.

    Equivalent to the converter's generated function for these models, but about three times
    faster (no per-value dispatch for ``int | None``), which matters on every refund.
    """
    attrs.resolve_types(cls)  # type: ignore[type-var]
    steps = {field.name: _value_hook(field.type, hooks) for field in attrs.fields(cls)}  # type: ignore[arg-type]

    def structure(value: Any) -> T:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        kwargs: dict[str, Any] = {}
        name = ""
        try:
            for name, item in value.items():
                hook = steps.get(name)
                if hook is not None:
                    kwargs[name] = None if item is None else hook(item)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{cls.__name__}.{name}: {exc}") from None
        return cls(**kwargs)

    hooks[cls] = structure
    return structure


def _drop_type(structure: Callable[[Any], T], value: Any, _type: object) -> T:
    return structure(value)


_converter = make_converter()
_HOOKS: dict[type, Callable[[Any], Any]] = {int: _fen, str: _text, bool: strict_bool}
# Leaves first: a model's hook looks up the hooks of the models it contains.
for _model in (
    Coupon,
    PromotionGoods,
    Promotion,
    RefundRecord,
    RefundResult,
    RefundQueryResult,
    CloseOrderResult,
    RefundNotification,
):
    _converter.register_structure_hook(_model, partial(_drop_type, _flat_model_hook(_model, _HOOKS)))

# For parse_refund's one-pass reading: what a refund reply's own fields are (text, an amount in
# fen, or a field the result does not carry), and the names left to the general path: a
# promotion_detail to parse, reply fields named like the attributes parse_refund fills itself,
# and any attribute of another type.
_REFUND_SPECIAL = frozenset(
    {"coupons", "promotion_detail", "attempts", "settled_by_query", "replayed", "raw"}
)
_TEXT, _FEN, _IGNORED, _OTHER = "text", "fen", "ignored", "other"
_REFUND_KINDS: dict[str, str] = dict.fromkeys(
    (
        "return_code",
        "return_msg",
        "result_code",
        "err_code",
        "err_code_des",
        "nonce_str",
        "sign",
        "sign_type",
    ),
    _IGNORED,
)
_REFUND_KINDS.update(
    (
        field.name,
        _TEXT
        if field.type == (str | None) or field.type is str
        else _FEN
        if field.type == (int | None)
        else _OTHER,
    )
    for field in attrs.fields(RefundResult)
    if field.name not in _REFUND_SPECIAL
)
_COUPONS = _value_hook(list[Coupon], _HOOKS)


def _structure(data: Mapping[str, Any], cls: type[T]) -> T:
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise DecodeError(f"a verified reply field has an unexpected type: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes[:3])
    return str(exc)


def _split(
    fields: Mapping[str, str],
) -> tuple[dict[str, Any], dict[int, dict[str, Any]], dict[int, dict[int, dict[str, str]]]]:
    """Plain non-empty fields, ``name_$n`` groups and ``name_$n_$m`` groups."""
    plain: dict[str, Any] = {}
    single: dict[int, dict[str, Any]] = {}
    double: dict[int, dict[int, dict[str, str]]] = {}
    for name, value in fields.items():
        if value == "":
            continue
        if not name[-1].isdigit():
            plain[name] = value
            continue
        indexed = indexed_name(name)
        if indexed is None:
            plain[name] = value
            continue
        base, n, m = indexed
        if m is None:
            single.setdefault(n, {})[base] = value
        else:
            double.setdefault(n, {}).setdefault(m, {})[base] = value
    return plain, single, double


def _ordered(groups: Mapping[int, T]) -> list[T]:
    return [groups[index] for index in sorted(groups)]


def parse_promotion_detail(text: str) -> list[Promotion]:
    """Parse the ``promotion_detail`` JSON string (an object with a ``promotion_detail`` list, or
    the list itself); the misspelling ``refund_amout`` is read as ``refund_amount``."""
    try:
        return _converter.structure(_promotion_items(text), list[Promotion])
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        raise DecodeError(f"promotion_detail has an unexpected type: {_describe(exc)}") from None


def _promotion_items(text: str) -> list[dict[str, Any]]:
    try:
        value = decode_json_value(text)
    except DecodeError as exc:
        raise DecodeError(f"promotion_detail is not valid JSON: {exc.message}") from None
    if isinstance(value, Mapping):
        value = value.get("promotion_detail", [])
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise DecodeError("promotion_detail is not a list of objects")
    items = []
    for item in value:
        promotion = _fix_spelling(item)
        goods = promotion.get("goods_detail")
        if isinstance(goods, list):
            promotion["goods_detail"] = [_fix_spelling(g) if isinstance(g, Mapping) else g for g in goods]
        items.append(promotion)
    return items


def _fix_spelling(item: Mapping[str, Any]) -> dict[str, Any]:
    fixed = dict(item)
    if "refund_amout" in fixed and "refund_amount" not in fixed:
        fixed["refund_amount"] = fixed.pop("refund_amout")
    return fixed


def parse_refund(
    fields: Mapping[str, str],
    *,
    out_refund_no: str,
    attempts: int = 1,
    settled_by_query: bool = False,
    replayed: bool = False,
) -> RefundResult:
    """A refund (or refundv2) reply → :class:`RefundResult`; ``out_refund_no`` fills a reply that
    does not echo the number."""
    fast = _refund_in_one_pass(fields, out_refund_no, attempts, settled_by_query, replayed)
    if fast is not None:
        return fast
    return _refund_generally(fields, out_refund_no, attempts, settled_by_query, replayed)


def _refund_generally(
    fields: Mapping[str, str],
    out_refund_no: str,
    attempts: int,
    settled_by_query: bool,
    replayed: bool,
) -> RefundResult:
    """:func:`parse_refund` for any reply: split into plain and indexed fields, then structured."""
    plain, single, _double = _split(fields)
    data: dict[str, Any] = plain
    data.setdefault("out_refund_no", out_refund_no)
    if single:
        data["coupons"] = _ordered(single)
    promotion = plain.get("promotion_detail")
    data["promotion_detail"] = _promotion_items(promotion) if promotion else []
    data["attempts"] = attempts
    data["settled_by_query"] = settled_by_query
    data["replayed"] = replayed
    data["raw"] = fields
    return _structure(data, RefundResult)


def _refund_in_one_pass(
    fields: Mapping[str, str],
    out_refund_no: str,
    attempts: int,
    settled_by_query: bool,
    replayed: bool,
) -> RefundResult | None:
    """:func:`parse_refund` for the usual reply, reading each field once: text as it is, amounts
    of ASCII digits as ints, ``name_$n`` into its coupon. None when the reply needs the general
    path (a special field, any other value for an amount — that path then decides, and reports
    its error)."""
    kwargs: dict[str, Any] = {}
    coupons: dict[int, dict[str, Any]] | None = None
    kinds = _REFUND_KINDS
    for name, value in fields.items():
        if value == "":
            continue
        kind = kinds.get(name)
        if kind is _TEXT:
            if value.__class__ is not str:
                return None
            kwargs[name] = value
        elif kind is _FEN:
            if value.__class__ is not str or not (value.isascii() and value.isdigit()):
                return None
            kwargs[name] = int(value)
        elif kind is _IGNORED:
            continue
        elif kind is not None or name in _REFUND_SPECIAL:
            return None
        elif name[-1:].isdigit():
            indexed = indexed_name(name)
            if indexed is not None and indexed[2] is None:
                if coupons is None:
                    coupons = {}
                coupons.setdefault(indexed[1], {})[indexed[0]] = value
    if coupons is not None:
        try:
            kwargs["coupons"] = _COUPONS(_ordered(coupons))
        except (TypeError, ValueError):
            return None
    if "out_refund_no" not in kwargs:
        kwargs["out_refund_no"] = out_refund_no
    return RefundResult(
        **kwargs,
        attempts=attempts,
        settled_by_query=settled_by_query,
        replayed=replayed,
        raw=fields,
    )


def parse_refund_query(fields: Mapping[str, str]) -> RefundQueryResult:
    """A refund query reply → :class:`RefundQueryResult` with ``refunds[n].coupons[m]``."""
    plain, single, double = _split(fields)
    for n, coupons in double.items():
        single.setdefault(n, {})["coupons"] = _ordered(coupons)
    data: dict[str, Any] = plain
    data["refunds"] = _ordered(single)
    data["raw"] = fields
    return _structure(data, RefundQueryResult)


def query_record_as_refund_fields(fields: Mapping[str, str], index: int) -> dict[str, str]:
    """The refund-reply-shaped fields of refund ``index`` of a verified query reply.

    Used when a lost refund reply is settled by a query: order fields are copied, ``*_$index``
    fields lose their index and ``coupon_*_$index_$m`` become ``coupon_*_$m``.
    """
    result: dict[str, str] = {}
    for name in (
        "appid",
        "mch_id",
        "sub_appid",
        "sub_mch_id",
        "transaction_id",
        "out_trade_no",
        "total_fee",
        "settlement_total_fee",
        "fee_type",
        "cash_fee",
        "cash_fee_type",
    ):
        if name in fields:
            result[name] = fields[name]
    for name, value in fields.items():
        indexed = indexed_name(name)
        if indexed is None or indexed[1] != index:
            continue
        base, _n, m = indexed
        result[base if m is None else f"{base}_{m}"] = value
    return result


def parse_close_order(fields: Mapping[str, str]) -> CloseOrderResult:
    """A close-order reply → :class:`CloseOrderResult`."""
    plain, _single, _double = _split(fields)
    plain["raw"] = fields
    return _structure(plain, CloseOrderResult)


def parse_notification(outer: Mapping[str, str], inner: Mapping[str, str]) -> RefundNotification:
    """The decrypted ``req_info`` fields plus the merchant ids of the envelope → typed notification."""
    plain, _single, _double = _split(inner)
    for name in ("appid", "mch_id", "sub_appid", "sub_mch_id"):
        if outer.get(name):
            plain[name] = outer[name]
    plain["raw"] = inner
    try:
        return _structure(plain, RefundNotification)
    except DecodeError as exc:
        raise DecodeError(f"the decrypted notification is incomplete: {exc.message}") from None
