"""Verified reply fields → typed results: indexed fields become lists, JSON strings typed lists.

Empty values are treated as absent (``None``) in the typed view; ``raw`` keeps them. A field that
does not have its documented type (a non-integer amount) is a :class:`DecodeError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

import cattrs

from ...converter import make_converter
from ...errors import DecodeError
from .models import (
    CloseOrderResult,
    Promotion,
    RefundNotification,
    RefundQueryResult,
    RefundResult,
)

__all__ = [
    "parse_close_order",
    "parse_notification",
    "parse_promotion_detail",
    "parse_refund",
    "parse_refund_query",
    "query_record_as_refund_fields",
]

T = TypeVar("T")

_INDEXED = re.compile(r"([a-z_]+?)_([0-9]+)(?:_([0-9]+))?\Z")

_converter = make_converter()
# ``raw`` is the verified field dict itself; copying it field by field would only cost time.
_converter.register_structure_hook_func(lambda t: t == Mapping[str, str], lambda value, _t: value)


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
        match = _INDEXED.match(name)
        if match is None:
            plain[name] = value
            continue
        base, n, m = match.groups()
        if m is None:
            single.setdefault(int(n), {})[base] = value
        else:
            double.setdefault(int(n), {}).setdefault(int(m), {})[base] = value
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
        value = json.loads(text, parse_float=Decimal)
    except ValueError:
        raise DecodeError("promotion_detail is not valid JSON") from None
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
    wanted = str(index)
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
        match = _INDEXED.match(name)
        if match is None or match.group(2) != wanted:
            continue
        base, _n, m = match.groups()
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
