"""Typed eftPay results. Attributes carry eftPay's own field names; money is ``Decimal``.

Optional fields eftPay left out or sent empty are ``None``; a missing ``trade_status`` or
``refund_status`` is the empty status, which like any undocumented value has ``is_known`` False.

Every result keeps ``raw`` (every received field as a string, including ones added after this
library was written) and ``signature_rule`` (which canonical string the reply's ``sign`` matched;
``None`` when the result was replayed from an idempotency store rather than received).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar

import attrs

from ...converter import make_converter
from ...errors import DecodeError
from .dialect import SignatureRule
from .status import RefundStatus, TradeStatus

__all__ = [
    "QueryResult",
    "RefundNotification",
    "RefundResult",
    "RefundStatusResult",
    "structure_reply",
]

_converter = make_converter()
_converter.register_structure_hook(TradeStatus, TradeStatus.structure)
_converter.register_structure_hook(RefundStatus, RefundStatus.structure)
_converter.register_structure_hook(SignatureRule, lambda value, _type: SignatureRule(value))
_converter.register_structure_hook_func(lambda type_: type_ == Mapping[str, Any], lambda value, _type: value)

#: What a reply without a status structures to: an unknown (empty) status, never a guess.
_NO_TRADE_STATUS: Final = TradeStatus("")
_NO_REFUND_STATUS: Final = RefundStatus("")


@attrs.frozen(kw_only=True)
class _TradeFields:
    """Fields shared by refund replies, query replies and notifications."""

    out_trade_no: str | None = None
    trade_status: TradeStatus = _NO_TRADE_STATUS
    user_confirm_key: str | None = None
    paytype: str | None = None
    payment_type: str | None = None
    refund_no: str | None = None
    transaction_amount: Decimal | None = None
    total_fee: Decimal | None = None
    tid: str | None = None
    rate: Decimal | None = None
    eftpay_trade_no: str | None = None
    refund_trade_no: str | None = None
    time: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    signature_rule: SignatureRule | None = None


@attrs.frozen(kw_only=True)
class RefundResult(_TradeFields):
    """A refund or refund application eftPay accepted (``return_status`` ``"00"``).

    Acceptance is not completion: look at ``trade_status`` — ``TRADE_REFUND`` / ``TRADE_CLOSED``
    done, ``TRADE_PROCESSING`` / ``APPLY_SUCCESS`` pending, ``TRADE_FAIL`` failed, anything else
    unknown (``trade_status.is_known`` is False). ``refund_no`` is always the number sent.
    When ``settled_by_query`` is set, the fields come from the order query that settled an
    unknown outcome (so ``trade_type`` is in ``raw`` and ``return_char`` is the query's).
    """

    return_status: str
    return_char: str = ""
    refund_no: str
    attempts: int = 1
    settled_by_query: bool = False
    replayed: bool = False


@attrs.frozen(kw_only=True)
class QueryResult(_TradeFields):
    """An order query (``QRcodeTradeQuery.do``): the sale's status, or one refund's with ``refund_no``."""

    return_status: str
    return_char: str = ""
    trade_type: str | None = None
    extra_trade_no: str | None = None


@attrs.frozen(kw_only=True)
class RefundStatusResult:
    """``service.unified.RefundStatusQuery``: ``refund_status`` is SUCCESS, PROCESSING or FAIL.

    The reply fields beyond ``refund_status`` are not public; the known ones are mapped and the
    rest stay in ``raw``.
    """

    return_status: str
    return_char: str = ""
    refund_status: RefundStatus = _NO_REFUND_STATUS
    refund_no: str | None = None
    out_trade_no: str | None = None
    trade_status: TradeStatus = _NO_TRADE_STATUS
    transaction_amount: Decimal | None = None
    total_fee: Decimal | None = None
    time: str | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    signature_rule: SignatureRule | None = None


@attrs.frozen(kw_only=True)
class RefundNotification(_TradeFields):
    """A verified notification (``trade_type`` ``REFUND`` for refunds). Redeliveries happen:
    handle by ``refund_no`` idempotently, then answer with ``EftPayClient.notification_reply()``."""

    trade_type: str | None = None


_T = TypeVar("_T")


def structure_reply(cls: type[_T], fields: Mapping[str, Any], **extra: Any) -> _T:
    """Build ``cls`` from received fields: empty values become ``None``, the rest are converted
    strictly (money never through ``float``); a malformed value is a :class:`DecodeError`."""
    known = attrs.fields_dict(cls)  # type: ignore[arg-type]
    data: dict[str, Any] = {
        name: value for name, value in fields.items() if name in known and value not in ("", None)
    }
    data.update(extra)
    data["raw"] = fields
    try:
        return _converter.structure(data, cls)
    except Exception as exc:  # cattrs wraps conversion errors in (exception) groups
        raise DecodeError(f"malformed eftPay reply: {_first_error(exc)}", after_send=True) from None


def _first_error(exc: BaseException) -> str:
    inner = getattr(exc, "exceptions", None)  # ExceptionGroup (a backport on Python 3.10)
    while inner:
        exc = inner[0]
        inner = getattr(exc, "exceptions", None)
    return f"{type(exc).__name__}: {exc}"
