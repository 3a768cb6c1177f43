"""Argument checks and business fields of WeChat Pay v2 requests, done before any I/O.

Each function validates its arguments against the v2 documentation (lengths, charsets, enums,
int fen) and returns the fields to send as strings; bad input is a :class:`ValidationError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import ValidationError
from .models import RefundDetail

__all__ = [
    "REFUND_ACCOUNTS",
    "check_merchant_id",
    "close_order_fields",
    "detail_json",
    "put_refund_numbers",
    "refund_fields",
    "refund_query_fields",
]

REFUND_ACCOUNTS = frozenset({"REFUND_SOURCE_UNSETTLED_FUNDS", "REFUND_SOURCE_RECHARGE_FUNDS"})

_MERCHANT_NUMBER = re.compile(r"[0-9A-Za-z_\-|*@]+\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_ID = re.compile(r"[0-9A-Za-z_\-]+\Z")
_DETAIL_INTS = ("quantity", "price", "refund_quantity", "refund_amount")
_MAX_DETAIL = 6000


def check_merchant_number(value: object, field: str, max_length: int) -> str:
    """``out_trade_no`` / ``out_refund_no``: 1..max_length characters of ``[0-9A-Za-z_-|*@]``."""
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, got {type(value).__name__}", field=field)
    if not 0 < len(value) <= max_length or not _MERCHANT_NUMBER.match(value):
        raise ValidationError(f"must be 1 to {max_length} characters of [0-9A-Za-z_-|*@]", field=field)
    return value


def check_merchant_id(value: object, field: str) -> str:
    """``appid``, ``mch_id``, ``sub_appid``, ``sub_mch_id``: 1..32 of ``[0-9A-Za-z_-]``."""
    if not isinstance(value, str) or not 0 < len(value) <= 32 or not _ID.match(value):
        raise ValidationError("must be 1 to 32 characters of [0-9A-Za-z_-]", field=field)
    return value


def _check_fee(value: object, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"must be an int amount in fen, got {type(value).__name__}", field=field)
    if value <= 0:
        raise ValidationError("must be > 0 (fen)", field=field)
    return value


def _check_text(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, got {type(value).__name__}", field=field)
    if not value or len(value) > max_length:
        raise ValidationError(f"must be 1 to {max_length} characters", field=field)
    return value


def put_refund_numbers(
    fields: dict[str, str], *, out_trade_no: object, transaction_id: object, out_refund_no: object
) -> None:
    """Check and add the order identifier (exactly one of ``out_trade_no`` and
    ``transaction_id``) and ``out_refund_no``: the same rules in WeChat Pay v2 and v3."""
    if (out_trade_no is None) == (transaction_id is None):
        raise ValidationError("give exactly one of out_trade_no and transaction_id", field="out_trade_no")
    if transaction_id is not None:
        fields["transaction_id"] = check_merchant_number(transaction_id, "transaction_id", 32)
    else:
        fields["out_trade_no"] = check_merchant_number(out_trade_no, "out_trade_no", 32)
    fields["out_refund_no"] = check_merchant_number(out_refund_no, "out_refund_no", 64)


def refund_fields(
    base: Mapping[str, str],
    *,
    total_fee: object,
    refund_fee: object,
    out_trade_no: object,
    transaction_id: object,
    out_refund_no: str,
    refund_fee_type: object,
    refund_desc: object,
    refund_account: object,
    notify_url: object,
    detail: object,
) -> dict[str, str]:
    """The business fields of a refund (``base`` holds the merchant ids)."""
    fields = dict(base)
    put_refund_numbers(
        fields, out_trade_no=out_trade_no, transaction_id=transaction_id, out_refund_no=out_refund_no
    )
    total = _check_fee(total_fee, "total_fee")
    refund = _check_fee(refund_fee, "refund_fee")
    if refund > total:
        raise ValidationError(f"must not exceed total_fee ({refund} > {total})", field="refund_fee")
    fields["total_fee"] = str(total)
    fields["refund_fee"] = str(refund)
    if refund_fee_type is not None:
        if not isinstance(refund_fee_type, str) or not _CURRENCY.match(refund_fee_type):
            raise ValidationError("must be a 3-letter currency code such as CNY", field="refund_fee_type")
        fields["refund_fee_type"] = refund_fee_type
    if refund_desc is not None:
        fields["refund_desc"] = _check_text(refund_desc, "refund_desc", 80)
    if refund_account is not None:
        if refund_account not in REFUND_ACCOUNTS:
            raise ValidationError(f"must be one of {sorted(REFUND_ACCOUNTS)}", field="refund_account")
        fields["refund_account"] = str(refund_account)
    if notify_url is not None:
        url = _check_text(notify_url, "notify_url", 256)
        if not url.startswith(("https://", "http://")):
            raise ValidationError("must be an http(s) URL", field="notify_url")
        fields["notify_url"] = url
    if detail is not None:
        fields["detail"] = detail_json(detail)
    return fields


def detail_json(detail: object) -> str:
    """``detail`` (a :class:`RefundDetail` or a mapping shaped like the provider's JSON) as the
    compact JSON string refundv2 expects; at most 6000 characters, amounts as ints."""
    if isinstance(detail, RefundDetail):
        data: Any = attrs.asdict(detail, filter=lambda _attribute, value: value is not None)
    elif isinstance(detail, Mapping):
        data = detail
    else:
        raise ValidationError("must be a RefundDetail or a mapping", field="detail")
    goods = data.get("goods_detail")
    if not isinstance(goods, list | tuple) or not goods:
        raise ValidationError("must hold a non-empty goods_detail list", field="detail")
    for item in goods:
        if not isinstance(item, Mapping):
            raise ValidationError("every goods_detail item must be a mapping", field="detail")
        goods_id = item.get("goods_id")
        if not isinstance(goods_id, str) or not goods_id:
            raise ValidationError("every goods_detail item needs a goods_id string", field="detail")
        for name in _DETAIL_INTS:
            value = item.get(name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise ValidationError(f"goods_detail {name} must be an int >= 0", field="detail")
    cost_price = data.get("cost_price")
    if cost_price is not None and (not isinstance(cost_price, int) or isinstance(cost_price, bool)):
        raise ValidationError("cost_price must be an int (fen)", field="detail")
    try:
        text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_refuse)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"cannot be sent as JSON: {exc}", field="detail") from None
    if _has_float(data):
        raise ValidationError("floats are never sent: amounts are int fen", field="detail")
    if len(text) > _MAX_DETAIL:
        raise ValidationError(f"is {len(text)} characters as JSON; at most {_MAX_DETAIL}", field="detail")
    return text


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _has_float(value: object) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, Mapping):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_float(item) for item in value)
    return False


def refund_query_fields(
    base: Mapping[str, str],
    *,
    out_refund_no: object,
    refund_id: object,
    transaction_id: object,
    out_trade_no: object,
    offset: object,
) -> dict[str, str]:
    """The business fields of a refund query: exactly one identifier, optional ``offset``."""
    given = [
        (name, value)
        for name, value in (
            ("refund_id", refund_id),
            ("out_refund_no", out_refund_no),
            ("transaction_id", transaction_id),
            ("out_trade_no", out_trade_no),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ValidationError(
            "give exactly one of refund_id, out_refund_no, transaction_id and out_trade_no",
            field="out_refund_no",
        )
    name, value = given[0]
    fields = dict(base)
    fields[name] = check_merchant_number(value, name, 64 if name in ("out_refund_no", "refund_id") else 32)
    if offset is not None:
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValidationError("must be an int >= 0", field="offset")
        fields["offset"] = str(offset)
    return fields


def close_order_fields(base: Mapping[str, str], *, out_trade_no: object) -> dict[str, str]:
    """The business fields of a close-order request."""
    fields = dict(base)
    fields["out_trade_no"] = check_merchant_number(out_trade_no, "out_trade_no", 32)
    return fields
