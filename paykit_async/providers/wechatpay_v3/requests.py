"""Argument checks and request bodies of WeChat Pay API v3 calls, done before any I/O.

A request body is kept in an :class:`~paykit_async.pipeline.core.Operation` as flat string
fields (so the idempotency layer can fingerprint it and swap in a recorded refund number); the
nested members ``amount`` and ``goods_detail`` are held as compact JSON text and embedded as is.
:func:`encode_body` writes the fields, in order, as the exact JSON bytes that are signed and
sent — the same bytes on every attempt.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs

from ...errors import ValidationError
from ..wechatpay.requests import check_merchant_id, put_refund_numbers
from .models import FundsFrom, RefundGoodsDetail

__all__ = [
    "FUNDS_ACCOUNTS",
    "JSON_FIELDS",
    "check_ids",
    "close_order_fields",
    "encode_body",
    "path_segment",
    "refund_fields",
]

#: Body members whose field value is JSON text, embedded without quoting.
JSON_FIELDS = frozenset({"amount", "goods_detail"})
#: The values a refund *request* may name (wechatpay-go ``ReqFundsAccount``): ``AVAILABLE`` only.
#: UNSETTLED, BASIC... are values of the reply's ``funds_account``, which WeChat refuses here.
FUNDS_ACCOUNTS = frozenset({"AVAILABLE"})

_CURRENCY = re.compile(r"[A-Z]{3}\Z")
_GOODS_INTS = ("unit_price", "refund_amount", "refund_quantity")
_MAX_GOODS = 100


def path_segment(value: str) -> str:
    """``value`` percent-encoded for a URL path (``|``, ``*`` and ``@`` included), so the request
    target that is signed is byte for byte the one that is sent."""
    return quote(value, safe="")


def encode_body(fields: Mapping[str, str]) -> bytes:
    """The JSON object of ``fields`` in their order; :data:`JSON_FIELDS` embedded as JSON."""
    parts = []
    for name, value in fields.items():
        text = value if name in JSON_FIELDS else json.dumps(value, ensure_ascii=False)
        parts.append(f'"{name}":{text}')
    return ("{" + ",".join(parts) + "}").encode("utf-8")


def _check_fen(value: object, field: str, *, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"must be an int amount in fen, got {type(value).__name__}", field=field)
    if value < minimum:
        raise ValidationError(f"must be >= {minimum} (fen)", field=field)
    return value


def _check_text(value: object, field: str, *, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a str, got {type(value).__name__}", field=field)
    size = len(value.encode("utf-8", "surrogatepass"))
    if not value or size > max_bytes:
        raise ValidationError(f"must be 1 to {max_bytes} bytes (UTF-8)", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("must be valid text (no lone surrogates)", field=field) from None
    return value


def _check_notify_url(value: object) -> str:
    url = _check_text(value, "notify_url", max_bytes=256)
    if not url.startswith(("https://", "http://")):
        raise ValidationError("must be an http(s) URL", field="notify_url")
    if "?" in url or any(c.isspace() for c in url):
        raise ValidationError(
            "must not carry query parameters or spaces (WeChat refuses them)", field="notify_url"
        )
    return url


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _goods_items(goods_detail: object) -> list[dict[str, Any]]:
    if isinstance(goods_detail, str | bytes) or not isinstance(goods_detail, Sequence):
        raise ValidationError("must be a list of RefundGoodsDetail or mappings", field="goods_detail")
    if not goods_detail or len(goods_detail) > _MAX_GOODS:
        raise ValidationError(f"must hold 1 to {_MAX_GOODS} items", field="goods_detail")
    items = []
    for entry in goods_detail:
        if isinstance(entry, RefundGoodsDetail):
            data: Mapping[str, Any] = attrs.asdict(entry, filter=lambda _a, value: value is not None)
        elif isinstance(entry, Mapping):
            data = entry
        else:
            raise ValidationError("every item must be a RefundGoodsDetail or a mapping", field="goods_detail")
        unknown = set(data) - {"merchant_goods_id", "wechatpay_goods_id", "goods_name", *_GOODS_INTS}
        if unknown:
            raise ValidationError(
                f"unknown item field(s) {', '.join(sorted(map(str, unknown)))}", field="goods_detail"
            )
        item: dict[str, Any] = {
            "merchant_goods_id": _check_text(data.get("merchant_goods_id"), "goods_detail", max_bytes=32)
        }
        for name in ("wechatpay_goods_id", "goods_name"):
            if data.get(name) is not None:
                item[name] = _check_text(data[name], "goods_detail", max_bytes=256)
        for name in _GOODS_INTS:
            item[name] = _check_fen(data.get(name), f"goods_detail {name}", minimum=0)
        items.append(item)
    return items


def _funds_from(amount_from: object) -> list[dict[str, Any]]:
    if isinstance(amount_from, str | bytes) or not isinstance(amount_from, Sequence) or not amount_from:
        raise ValidationError("must be a non-empty list of FundsFrom or mappings", field="amount_from")
    items = []
    for entry in amount_from:
        account: object
        amount: object
        if isinstance(entry, FundsFrom):
            account, amount = entry.account, entry.amount
        elif isinstance(entry, Mapping) and set(entry) <= {"account", "amount"}:
            account, amount = entry.get("account"), entry.get("amount")
        else:
            raise ValidationError(
                "items must be FundsFrom(account=, amount=) or such mappings", field="amount_from"
            )
        items.append(
            {
                "account": _check_text(account, "amount_from", max_bytes=32),
                "amount": _check_fen(amount, "amount_from amount"),
            }
        )
    return items


def refund_fields(
    *,
    sub_mchid: str | None,
    refund: object,
    total: object,
    out_trade_no: object,
    transaction_id: object,
    out_refund_no: object,
    reason: object,
    notify_url: object,
    funds_account: object,
    currency: object,
    goods_detail: object,
    amount_from: object,
) -> dict[str, str]:
    """The body fields of ``POST /v3/refund/domestic/refunds``, validated, in WeChat's order."""
    fields: dict[str, str] = {}
    if sub_mchid is not None:
        fields["sub_mchid"] = sub_mchid
    put_refund_numbers(
        fields, out_trade_no=out_trade_no, transaction_id=transaction_id, out_refund_no=out_refund_no
    )
    if reason is not None:
        fields["reason"] = _check_text(reason, "reason", max_bytes=80)
    if notify_url is not None:
        fields["notify_url"] = _check_notify_url(notify_url)
    if funds_account is not None:
        if funds_account not in FUNDS_ACCOUNTS:
            raise ValidationError(
                f"must be one of {', '.join(sorted(FUNDS_ACCOUNTS))}", field="funds_account"
            )
        fields["funds_account"] = str(funds_account)
    refund_fen = _check_fen(refund, "refund")
    total_fen = _check_fen(total, "total")
    if refund_fen > total_fen:
        raise ValidationError(f"must not exceed total ({refund_fen} > {total_fen})", field="refund")
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise ValidationError("must be a 3-letter currency code such as CNY", field="currency")
    amount: dict[str, Any] = {"refund": refund_fen}
    if amount_from is not None:
        sources = _funds_from(amount_from)
        if sum(item["amount"] for item in sources) > refund_fen:
            raise ValidationError("the amounts must not add up to more than refund", field="amount_from")
        amount["from"] = sources
    amount["total"] = total_fen
    amount["currency"] = currency
    fields["amount"] = _json(amount)
    if goods_detail is not None:
        fields["goods_detail"] = _json(_goods_items(goods_detail))
    return fields


def close_order_fields(*, mchid: str, sub_mchid: str | None) -> dict[str, str]:
    """The body of a close-order request: ``{"mchid"}``, or ``{"sp_mchid", "sub_mchid"}`` for partners."""
    if sub_mchid is None:
        return {"mchid": mchid}
    return {"sp_mchid": mchid, "sub_mchid": sub_mchid}


def check_ids(mchid: object, sub_mchid: object) -> None:
    """``mchid`` and ``sub_mchid``: 1..32 characters of ``[0-9A-Za-z_-]``."""
    check_merchant_id(mchid, "mchid")
    if sub_mchid is not None:
        check_merchant_id(sub_mchid, "sub_mchid")
