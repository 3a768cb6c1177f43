"""Typed PAYJS results. Attributes carry PAYJS's own field names; ``raw`` keeps every field.

Every result is built from a reply whose signature has been verified. Amounts (``total_fee``)
are ``int`` fen; ``return_code``, ``status`` and ``refund`` are ``int`` whether PAYJS sent a
JSON number or a digit string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from ...converter import converter
from ...errors import DecodeError

__all__ = [
    "CheckResult",
    "CloseResult",
    "PaymentNotification",
    "RefundResult",
    "ReverseResult",
    "structure",
]

_Model = TypeVar("_Model", bound=attrs.AttrsInstance)


@attrs.frozen(kw_only=True)
class RefundResult:
    """A verified full refund of ``payjs_order_id``.

    ``refund`` is 1 when newer PAYJS replies say the order had already been refunded (still a
    success: the refund exists). ``settled_by_query`` is True when no verified refund reply
    arrived and a verified ``check`` proved the refund instead; ``raw`` then holds the check reply.
    ``attempts`` counts the requests sent (0 when ``replayed`` from an idempotency store).
    """

    return_code: int
    payjs_order_id: str
    return_msg: str | None = None
    out_trade_no: str | None = None
    transaction_id: str | None = None
    refund: int | None = None
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class CloseResult:
    """A verified close of an unpaid order (orders less than 30 days old)."""

    return_code: int
    payjs_order_id: str
    return_msg: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class ReverseResult:
    """A verified reverse of a micropay/facepay order: refunded if it was paid, else closed.

    ``settled_by_query`` as for :class:`RefundResult` (a reverse may move money, so it is settled
    the same way when its outcome is unknown).
    """

    return_code: int
    payjs_order_id: str
    return_msg: str | None = None
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class CheckResult:
    """A verified order query. ``status`` is 0 (unpaid) or 1 (paid).

    PAYJS does not document how a refunded order shows here; see ``PayJSClient.check``.
    """

    return_code: int
    payjs_order_id: str
    status: int
    mchid: str | None = None
    out_trade_no: str | None = None
    transaction_id: str | None = None
    openid: str | None = None
    total_fee: int | None = None
    paid_time: str | None = None
    attach: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def paid(self) -> bool:
        """True when PAYJS reports the order paid (``status == 1``)."""
        return self.status == 1


@attrs.frozen(kw_only=True)
class PaymentNotification:
    """A verified payment notification. Check ``total_fee`` against your own order.

    ``attach`` and ``type`` (``"alipay"`` for Alipay orders) may be absent; unknown fields are
    kept in ``raw`` (they are covered by the verified signature too).
    """

    return_code: int
    total_fee: int
    out_trade_no: str
    payjs_order_id: str
    mchid: str
    transaction_id: str | None = None
    time_end: str | None = None
    openid: str | None = None
    attach: str | None = None
    type: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def paid(self) -> bool:
        """True when the notification reports a payment (``return_code == 1``)."""
        return self.return_code == 1


def structure(model: type[_Model], fields: Mapping[str, Any], **extra: Any) -> _Model:
    """Build ``model`` from verified reply ``fields`` (absent or null optional fields become None).

    A field of the wrong type (``total_fee`` of ``"1.5"``) raises ``DecodeError``.
    """
    names = {attribute.name for attribute in attrs.fields(model)}
    known = {name: value for name, value in fields.items() if name in names and value is not None}
    known.pop("raw", None)
    known.update(extra)
    known["raw"] = dict(fields)
    try:
        return converter.structure(known, model)
    except Exception as exc:
        # cattrs raises ClassValidationError (an exception group) naming the bad fields.
        raise DecodeError(f"PAYJS reply does not fit {model.__name__}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)
    if inner:
        return "; ".join(_describe(item) for item in inner)
    notes = getattr(exc, "__notes__", None)
    where = f" ({notes[0]})" if notes else ""
    return f"{type(exc).__name__}: {exc}{where}"
