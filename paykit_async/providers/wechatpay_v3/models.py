"""Typed WeChat Pay API v3 request parts and results. Attributes carry the provider's field names.

Money is ``int`` fen. JSON ``amount.from`` is the attribute ``amount.from_`` (``from`` is a Python
keyword). Status values are kept verbatim as strings — a status WeChat adds later is passed
through, never guessed; compare with :class:`RefundStatus` members (they are strings). Every
result keeps ``raw``: the verified JSON document as received.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "CloseOrderResult",
    "FundsFrom",
    "NotificationAmount",
    "Promotion",
    "PromotionGoods",
    "RefundAmount",
    "RefundGoodsDetail",
    "RefundNotification",
    "RefundResult",
    "RefundStatus",
]


class RefundStatus(str, enum.Enum):
    """The documented refund states (``status`` of refunds, ``refund_status`` of notifications)."""

    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"
    PROCESSING = "PROCESSING"
    ABNORMAL = "ABNORMAL"


_KNOWN_STATUSES = frozenset(status.value for status in RefundStatus)


def parse_time(text: str | None) -> _dt.datetime | None:
    """An RFC 3339 time (``2020-12-01T16:18:12+08:00``) as an aware datetime; None if absent or bad."""
    if not text:
        return None
    try:
        value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


# --- request parts -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RefundGoodsDetail:
    """One ``goods_detail`` item of a refund request (a refund of specific goods)."""

    merchant_goods_id: str
    unit_price: int
    refund_amount: int
    refund_quantity: int
    wechatpay_goods_id: str | None = None
    goods_name: str | None = None


@attrs.frozen(kw_only=True)
class FundsFrom:
    """One ``amount.from`` item: how much of the refund comes out of which account."""

    account: str
    amount: int


# --- reply parts ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RefundAmount:
    """The ``amount`` object of a refund: what was paid, refunded and settled, in fen."""

    total: int | None = None
    refund: int | None = None
    from_: list[FundsFrom] = attrs.field(factory=list)
    payer_total: int | None = None
    payer_refund: int | None = None
    settlement_refund: int | None = None
    settlement_total: int | None = None
    discount_refund: int | None = None
    currency: str | None = None
    refund_fee: int | None = None


@attrs.frozen(kw_only=True)
class PromotionGoods:
    """One ``goods_detail`` item of a promotion in a refund reply."""

    merchant_goods_id: str | None = None
    wechatpay_goods_id: str | None = None
    goods_name: str | None = None
    unit_price: int | None = None
    refund_amount: int | None = None
    refund_quantity: int | None = None


@attrs.frozen(kw_only=True)
class Promotion:
    """One ``promotion_detail`` item: a coupon or discount and how much of it was refunded."""

    promotion_id: str | None = None
    scope: str | None = None
    type: str | None = None
    amount: int | None = None
    refund_amount: int | None = None
    goods_detail: list[PromotionGoods] = attrs.field(factory=list)


# --- results -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RefundResult:
    """A refund as WeChat describes it: the verified answer to a refund request or refund query.

    ``status`` PROCESSING means *accepted*; SUCCESS, CLOSED and ABNORMAL are final states (an
    unknown value is kept verbatim: see :attr:`status_known`). ``out_refund_no`` is always set —
    keep it to query or retry the refund. ``settled_by_query`` is True when a lost reply was
    settled by querying the refund, ``replayed`` when an idempotency store returned the recorded
    result without calling WeChat. ``request_id`` is WeChat's ``Request-ID`` of the reply (None
    for a replayed result).
    """

    out_refund_no: str
    refund_id: str | None = None
    transaction_id: str | None = None
    out_trade_no: str | None = None
    channel: str | None = None
    user_received_account: str | None = None
    success_time: str | None = None
    create_time: str | None = None
    status: str | None = None
    funds_account: str | None = None
    amount: RefundAmount | None = None
    promotion_detail: list[Promotion] = attrs.field(factory=list)
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False
    request_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def status_known(self) -> bool:
        """Whether ``status`` is one of :class:`RefundStatus` (else a state added later)."""
        return self.status in _KNOWN_STATUSES

    @property
    def success_at(self) -> _dt.datetime | None:
        """``success_time`` as an aware datetime."""
        return parse_time(self.success_time)

    @property
    def created_at(self) -> _dt.datetime | None:
        """``create_time`` as an aware datetime."""
        return parse_time(self.create_time)


@attrs.frozen(kw_only=True)
class CloseOrderResult:
    """The verified answer to a close-order request (HTTP 204: the order is closed).
    ``request_id`` is WeChat's ``Request-ID`` of the reply."""

    out_trade_no: str
    status_code: int = 204
    request_id: str | None = None


@attrs.frozen(kw_only=True)
class NotificationAmount:
    """The ``amount`` object of a refund notification, in fen."""

    total: int | None = None
    refund: int | None = None
    payer_total: int | None = None
    payer_refund: int | None = None


@attrs.frozen(kw_only=True)
class RefundNotification:
    """A refund result notification: signature verified, ``resource`` decrypted, merchant checked.

    The envelope's ``id``, ``create_time``, ``event_type`` (``REFUND.SUCCESS``,
    ``REFUND.ABNORMAL``, ``REFUND.CLOSED``) and ``summary`` come first, then the decrypted
    resource (``mchid`` in direct mode; ``sp_mchid`` and ``sub_mchid`` in partner mode). ``raw``
    is the decrypted resource, ``envelope`` the outer document. ``confirmed`` is set by
    :meth:`~WeChatPayV3Client.receive_refund_notification`: the refund as a verified query shows
    it. The same notification may arrive several times: handle it idempotently by ``id`` or
    ``out_refund_no``.
    """

    out_refund_no: str
    refund_status: str
    id: str | None = None
    create_time: str | None = None
    event_type: str | None = None
    summary: str | None = None
    resource_type: str | None = None
    mchid: str | None = None
    sp_mchid: str | None = None
    sub_mchid: str | None = None
    out_trade_no: str | None = None
    transaction_id: str | None = None
    refund_id: str | None = None
    success_time: str | None = None
    user_received_account: str | None = None
    amount: NotificationAmount | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    envelope: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    confirmed: RefundResult | None = None

    @property
    def refund_status_known(self) -> bool:
        """Whether ``refund_status`` is one of :class:`RefundStatus` (else a state added later)."""
        return self.refund_status in _KNOWN_STATUSES

    @property
    def success_at(self) -> _dt.datetime | None:
        """``success_time`` as an aware datetime."""
        return parse_time(self.success_time)
