"""Typed WeChat Pay v2 requests parts and results. Attributes carry the provider's field names.

Money is ``int`` fen. Indexed reply fields ``name_$n`` become attribute ``name`` of the n-th list
element (``result.coupons[0].coupon_refund_fee``); JSON-in-a-string fields are parsed into typed
lists. Every result keeps ``raw``: every received field as a string.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping

import attrs

__all__ = [
    "CloseOrderResult",
    "Coupon",
    "Promotion",
    "PromotionGoods",
    "RefundDetail",
    "RefundGoods",
    "RefundNotification",
    "RefundQueryResult",
    "RefundRecord",
    "RefundResult",
    "RefundStatus",
]

_CHINA = _dt.timezone(_dt.timedelta(hours=8), "Asia/Shanghai")


class RefundStatus(str, enum.Enum):
    """The documented refund states. Results keep ``refund_status`` as the received string, so a
    state WeChat adds later is passed through verbatim; compare with these members (they are
    strings) and use ``refund_status_known`` to tell documented states from new ones."""

    SUCCESS = "SUCCESS"
    REFUNDCLOSE = "REFUNDCLOSE"
    PROCESSING = "PROCESSING"
    CHANGE = "CHANGE"


_KNOWN_STATUSES = frozenset(status.value for status in RefundStatus)


def _is_known(status: str | None) -> bool:
    return status in _KNOWN_STATUSES


# --- request parts -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RefundGoods:
    """One ``goods_detail`` item of a single-product refund (``refundv2`` ``detail``).

    The seed documents ``quantity``/``price``; another public example uses
    ``refund_quantity``/``refund_amount`` (*uncertain* which WeChat expects): both are accepted
    and sent as given.
    """

    goods_id: str
    wxpay_goods_id: str | None = None
    goods_name: str | None = None
    quantity: int | None = None
    price: int | None = None
    refund_quantity: int | None = None
    refund_amount: int | None = None


@attrs.frozen(kw_only=True)
class RefundDetail:
    """The ``detail`` of a single-product refund; sent as a JSON string to ``/secapi/pay/refundv2``."""

    goods_detail: list[RefundGoods]
    cost_price: int | None = None
    receipt_id: str | None = None


# --- reply parts ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Coupon:
    """One refunded coupon: ``coupon_type_$n``, ``coupon_refund_fee_$n``, ``coupon_refund_id_$n``."""

    coupon_type: str | None = None
    coupon_refund_fee: int | None = None
    coupon_refund_id: str | None = None


@attrs.frozen(kw_only=True)
class PromotionGoods:
    """One ``goods_detail`` item of a promotion (``refund_amout``, sic, is read as ``refund_amount``)."""

    goods_id: str | None = None
    wxpay_goods_id: str | None = None
    goods_name: str | None = None
    goods_remark: str | None = None
    quantity: int | None = None
    price: int | None = None
    refund_quantity: int | None = None
    refund_amount: int | None = None


@attrs.frozen(kw_only=True)
class Promotion:
    """One item of the ``promotion_detail`` JSON string of a refundv2 reply."""

    promotion_id: str | None = None
    name: str | None = None
    scope: str | None = None
    type: str | None = None
    amount: int | None = None
    refund_amount: int | None = None
    activity_id: str | None = None
    wxpay_contribute: int | None = None
    merchant_contribute: int | None = None
    other_contribute: int | None = None
    goods_detail: list[PromotionGoods] = attrs.field(factory=list)


# --- results -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RefundResult:
    """The verified answer to a refund request.

    ``result_code=SUCCESS`` means WeChat *accepted* the refund; the final state comes from
    :meth:`~WeChatPayClient.query_refund` or the refund notification. ``out_refund_no`` is always
    set (generated when the caller gave none) — keep it to query or retry the refund.

    When a lost reply was settled by a refund query (``settled_by_query``), the fields come from
    the query's matching refund record: ``out_refund_no``, ``refund_id``, ``refund_fee``,
    ``settlement_refund_fee``, ``transaction_id``, ``out_trade_no``, ``total_fee``, ``cash_fee``,
    ``coupon_refund_fee``, ``coupon_refund_count``, ``coupons`` and ``refund_status`` (which a
    direct refund reply does not carry).
    """

    out_refund_no: str
    refund_id: str | None = None
    transaction_id: str | None = None
    out_trade_no: str | None = None
    refund_fee: int | None = None
    settlement_refund_fee: int | None = None
    total_fee: int | None = None
    settlement_total_fee: int | None = None
    fee_type: str | None = None
    cash_fee: int | None = None
    cash_fee_type: str | None = None
    cash_refund_fee: int | None = None
    coupon_refund_fee: int | None = None
    coupon_refund_count: int | None = None
    coupons: list[Coupon] = attrs.field(factory=list)
    promotion_detail: list[Promotion] = attrs.field(factory=list)
    refund_status: str | None = None
    appid: str | None = None
    mch_id: str | None = None
    sub_appid: str | None = None
    sub_mch_id: str | None = None
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False
    raw: Mapping[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class RefundRecord:
    """One refund of a refund query (the ``*_$n`` fields; ``coupons`` from ``*_$n_$m``)."""

    out_refund_no: str | None = None
    refund_id: str | None = None
    refund_channel: str | None = None
    refund_fee: int | None = None
    settlement_refund_fee: int | None = None
    cash_refund_fee: int | None = None
    refund_status: str | None = None
    refund_account: str | None = None
    refund_recv_accout: str | None = None
    refund_success_time: str | None = None
    coupon_refund_fee: int | None = None
    coupon_refund_count: int | None = None
    coupons: list[Coupon] = attrs.field(factory=list)

    @property
    def refund_status_known(self) -> bool:
        """Whether ``refund_status`` is one of :class:`RefundStatus` (else a state added later)."""
        return _is_known(self.refund_status)


@attrs.frozen(kw_only=True)
class RefundQueryResult:
    """The verified answer to a refund query: the order and its refunds (``refunds[n]``)."""

    transaction_id: str | None = None
    out_trade_no: str | None = None
    total_fee: int | None = None
    settlement_total_fee: int | None = None
    fee_type: str | None = None
    cash_fee: int | None = None
    cash_fee_type: str | None = None
    refund_count: int | None = None
    total_refund_count: int | None = None
    refunds: list[RefundRecord] = attrs.field(factory=list)
    appid: str | None = None
    mch_id: str | None = None
    sub_appid: str | None = None
    sub_mch_id: str | None = None
    raw: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    def find(self, out_refund_no: str) -> RefundRecord | None:
        """The refund with merchant number ``out_refund_no``, if this answer lists it."""
        for record in self.refunds:
            if record.out_refund_no == out_refund_no:
                return record
        return None


@attrs.frozen(kw_only=True)
class CloseOrderResult:
    """The verified answer to a close-order request (the order is closed)."""

    appid: str | None = None
    mch_id: str | None = None
    sub_appid: str | None = None
    sub_mch_id: str | None = None
    result_msg: str | None = None
    raw: Mapping[str, str] = attrs.field(factory=dict, repr=False)


@attrs.frozen(kw_only=True)
class RefundNotification:
    """A refund result notification, decrypted from ``req_info`` and checked against the merchant.

    ``confirmed`` is False for what ``parse_refund_notification`` returns: WeChat's refund
    notifications are not authenticated by the protocol (AES-ECB without a MAC, unsigned
    envelope), so those fields are unconfirmed. ``receive_refund_notification`` returns the record
    confirmed by a verified refund query (``confirmed`` True; every field but the merchant ids
    then comes from the query). ``success_time`` is kept as sent (``yyyy-MM-dd HH:mm:ss``, China
    time); ``success_at`` parses it. ``raw`` holds the decrypted fields.
    """

    appid: str
    mch_id: str
    sub_appid: str | None = None
    sub_mch_id: str | None = None
    transaction_id: str | None = None
    out_trade_no: str | None = None
    refund_id: str | None = None
    out_refund_no: str
    total_fee: int | None = None
    settlement_total_fee: int | None = None
    refund_fee: int | None = None
    settlement_refund_fee: int | None = None
    refund_status: str
    success_time: str | None = None
    refund_recv_accout: str | None = None
    refund_account: str | None = None
    refund_request_source: str | None = None
    confirmed: bool = False
    raw: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @property
    def refund_status_known(self) -> bool:
        """Whether ``refund_status`` is one of :class:`RefundStatus` (else a state added later)."""
        return _is_known(self.refund_status)

    @property
    def success_at(self) -> _dt.datetime | None:
        """``success_time`` as an aware datetime (UTC+8), or None when absent or unparseable."""
        if not self.success_time:
            return None
        try:
            naive = _dt.datetime.strptime(self.success_time, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
        return naive.replace(tzinfo=_CHINA)
