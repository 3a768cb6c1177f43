"""Statuses are kept verbatim; unknown ones are marked unknown, never mapped to a known one."""

from __future__ import annotations

import pytest

from paykit_async.providers.eftpay import RefundStatus, TradeStatus


@pytest.mark.parametrize(
    "value",
    ["TRADE_PROCESSING", "APPLY_SUCCESS", "TRADE_REFUND", "TRADE_CLOSED", "TRADE_FAIL", "TRADE_SUCCESS"],
)
def test_known_trade_statuses(value: str) -> None:
    status = TradeStatus(value)
    assert status.is_known
    assert status == value == getattr(TradeStatus, value)


def test_unknown_trade_status_is_kept_verbatim() -> None:
    status = TradeStatus("TRADE_REVOKED")
    assert status == "TRADE_REVOKED"
    assert not status.is_known
    assert not status.is_final
    assert not status.is_refunded
    assert "unknown" in repr(status)


def test_final_and_refunded() -> None:
    assert TradeStatus.TRADE_REFUND.is_refunded
    assert TradeStatus.TRADE_CLOSED.is_refunded
    assert not TradeStatus.TRADE_FAIL.is_refunded
    assert TradeStatus.TRADE_FAIL.is_final
    assert not TradeStatus.TRADE_PROCESSING.is_final
    assert not TradeStatus.APPLY_SUCCESS.is_final


def test_refund_statuses() -> None:
    assert {RefundStatus.SUCCESS, RefundStatus.PROCESSING, RefundStatus.FAIL} == RefundStatus.KNOWN
    assert not RefundStatus("REFUNDING").is_known


def test_missing_status_in_a_reply_is_unknown() -> None:
    from paykit_async.providers.eftpay.models import RefundResult, RefundStatusResult, structure_reply

    result = structure_reply(RefundResult, {"return_status": "00", "refund_no": "R1", "trade_status": ""})
    assert result.trade_status == ""
    assert not result.trade_status.is_known
    assert not structure_reply(RefundStatusResult, {"return_status": "00"}).refund_status.is_known
