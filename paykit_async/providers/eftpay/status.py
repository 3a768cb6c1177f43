"""eftPay status values kept verbatim: known values are named, unknown ones are never guessed.

eftPay's full status appendix is not public, so a status is a ``str`` subclass holding exactly
what the provider sent; ``is_known`` says whether it is one of the documented values. Code that
branches on a status must treat an unknown one as "ask again later", not as success or failure.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["RefundStatus", "TradeStatus"]


class _OpenEnum(str):
    """A provider value kept verbatim, with the documented values listed in ``KNOWN``."""

    __slots__ = ()
    KNOWN: ClassVar[frozenset[str]] = frozenset()

    @property
    def is_known(self) -> bool:
        """True when the value is documented; False for anything eftPay added since."""
        return str(self) in self.KNOWN

    def __repr__(self) -> str:
        known = "" if self.is_known else ", unknown"
        return f"{type(self).__name__}({str(self)!r}{known})"

    @classmethod
    def structure(cls, value: Any, _type: object = None) -> Any:
        """A cattrs hook: only strings become statuses (never numbers or None)."""
        if not isinstance(value, str):
            raise TypeError(f"{cls.__name__} must be a string, got {type(value).__name__}")
        return cls(value)


class TradeStatus(_OpenEnum):
    """``trade_status`` of a sale or refund.

    Refund flow: ``TRADE_PROCESSING`` → ``APPLY_SUCCESS`` (ApplyRefund only) → ``TRADE_REFUND``
    (partial refund done) | ``TRADE_CLOSED`` (full refund done) | ``TRADE_FAIL``. Sales report
    ``TRADE_SUCCESS``. Compare with the class constants or plain strings.
    """

    __slots__ = ()
    TRADE_PROCESSING: ClassVar[TradeStatus]
    APPLY_SUCCESS: ClassVar[TradeStatus]
    TRADE_REFUND: ClassVar[TradeStatus]
    TRADE_CLOSED: ClassVar[TradeStatus]
    TRADE_FAIL: ClassVar[TradeStatus]
    TRADE_SUCCESS: ClassVar[TradeStatus]

    @property
    def is_refunded(self) -> bool:
        """The refund is done: ``TRADE_REFUND`` (partial) or ``TRADE_CLOSED`` (full)."""
        return str(self) in _REFUNDED

    @property
    def is_final(self) -> bool:
        """A documented end state of a refund (done or failed). False for unknown values."""
        return str(self) in _FINAL


class RefundStatus(_OpenEnum):
    """``refund_status`` from ``service.unified.RefundStatusQuery``: SUCCESS, PROCESSING or FAIL."""

    __slots__ = ()
    SUCCESS: ClassVar[RefundStatus]
    PROCESSING: ClassVar[RefundStatus]
    FAIL: ClassVar[RefundStatus]


_REFUNDED = frozenset({"TRADE_REFUND", "TRADE_CLOSED"})
_FINAL = _REFUNDED | {"TRADE_FAIL"}

TradeStatus.TRADE_PROCESSING = TradeStatus("TRADE_PROCESSING")
TradeStatus.APPLY_SUCCESS = TradeStatus("APPLY_SUCCESS")
TradeStatus.TRADE_REFUND = TradeStatus("TRADE_REFUND")
TradeStatus.TRADE_CLOSED = TradeStatus("TRADE_CLOSED")
TradeStatus.TRADE_FAIL = TradeStatus("TRADE_FAIL")
TradeStatus.TRADE_SUCCESS = TradeStatus("TRADE_SUCCESS")
TradeStatus.KNOWN = frozenset(
    {"TRADE_PROCESSING", "APPLY_SUCCESS", "TRADE_REFUND", "TRADE_CLOSED", "TRADE_FAIL", "TRADE_SUCCESS"}
)
RefundStatus.SUCCESS = RefundStatus("SUCCESS")
RefundStatus.PROCESSING = RefundStatus("PROCESSING")
RefundStatus.FAIL = RefundStatus("FAIL")
RefundStatus.KNOWN = frozenset({"SUCCESS", "PROCESSING", "FAIL"})
