"""v3 JSON documents: bytes → objects with the shared hostile-input-safe codec
(:func:`~paykit_async.codecs.json.decode_json`: linear depth limit, no lone surrogates, fractions
as ``Decimal``), then verified documents → typed results with the strict converter (ints only
from ints or digit strings, never from floats). A field without its documented type is a
:class:`DecodeError`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ...codecs.json import decode_json
from ...converter import make_converter
from ...errors import DecodeError
from .models import (
    FundsFrom,
    NotificationAmount,
    Promotion,
    PromotionGoods,
    RefundAmount,
    RefundNotification,
    RefundResult,
)

__all__ = ["json_object", "parse_notification", "parse_refund"]

T = TypeVar("T")

_converter = make_converter()
_converter.register_structure_hook(
    RefundAmount, make_dict_structure_fn(RefundAmount, _converter, from_=override(rename="from"))
)
# Generate the hooks once, leaves first.
for _model in (FundsFrom, PromotionGoods, Promotion, NotificationAmount):
    _converter.register_structure_hook(_model, make_dict_structure_fn(_model, _converter))
_converter.register_structure_hook(RefundResult, make_dict_structure_fn(RefundResult, _converter))
_converter.register_structure_hook(RefundNotification, make_dict_structure_fn(RefundNotification, _converter))


def json_object(data: bytes, *, what: str, after_send: bool = True) -> dict[str, Any]:
    """``data`` (a reply, certificate list or notification) as one JSON object, decoded by the
    shared codec; any failure is a non-retryable :class:`DecodeError` naming ``what``."""
    try:
        return decode_json(data)
    except DecodeError as error:
        raise DecodeError(f"the {what}: {error.message}", after_send=after_send) from None


def _structure(data: Mapping[str, Any], cls: type[T], what: str) -> T:
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise DecodeError(f"{what} has a field of an unexpected type: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc)[:3])
    return str(exc)[:200]


def _without_nulls(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document without ``null`` members, at every level (an absent field is None anyway).

    Recursion is safe: decoded documents are at most
    :data:`~paykit_async.codecs.json.MAX_JSON_DEPTH` deep.
    """
    return {key: _strip(value) for key, value in document.items() if value is not None}


def _strip(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _without_nulls(value)
    if isinstance(value, list):
        return [_strip(item) for item in value if item is not None]
    return value


def parse_refund(
    document: Mapping[str, Any],
    *,
    out_refund_no: str,
    attempts: int = 1,
    settled_by_query: bool = False,
    replayed: bool = False,
    request_id: str | None = None,
) -> RefundResult:
    """A refund reply or refund query document → :class:`RefundResult`."""
    data = _without_nulls(document)
    data.setdefault("out_refund_no", out_refund_no)
    data["attempts"] = attempts
    data["settled_by_query"] = settled_by_query
    data["replayed"] = replayed
    data["request_id"] = request_id
    data["raw"] = document
    return _structure(data, RefundResult, "the refund")


def parse_notification(envelope: Mapping[str, Any], resource: Mapping[str, Any]) -> RefundNotification:
    """The decrypted ``resource`` plus the envelope's id, times and event type → notification."""
    data = _without_nulls(resource)
    for name in ("id", "create_time", "event_type", "summary", "resource_type"):
        value = envelope.get(name)
        if value is not None:
            data[name] = value
    data["raw"] = resource
    data["envelope"] = envelope
    return _structure(data, RefundNotification, "the decrypted notification")
