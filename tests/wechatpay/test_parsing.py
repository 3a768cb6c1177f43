"""Typed results: indexed coupons, promotion_detail JSON, nested refund query indexes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paykit_async import DecodeError
from paykit_async.providers.wechatpay import Coupon, RefundStatus
from paykit_async.providers.wechatpay.parsing import (
    parse_close_order,
    parse_promotion_detail,
    parse_refund,
    parse_refund_query,
    query_record_as_refund_fields,
)

PROMOTION = {
    "promotion_detail": [
        {
            "promotion_id": "109519",
            "name": "单品惠-6",
            "scope": "SINGLE",
            "type": "DISCOUNT",
            "amount": 5,
            "refund_amount": 100,
            "activity_id": "931386",
            "wxpay_contribute": 0,
            "merchant_contribute": 0,
            "other_contribute": "5",
            "goods_detail": [
                {"goods_id": "a", "quantity": 1, "price": 100, "refund_amout": 100},
                {"goods_id": "b", "refund_quantity": 2, "refund_amount": 30},
            ],
        }
    ]
}


def refund_reply() -> dict[str, str]:
    return {
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "appid": "wx1",
        "mch_id": "1900000109",
        "sign": "X" * 32,
        "out_refund_no": "R1",
        "refund_id": "5000",
        "refund_fee": "100",
        "total_fee": "200",
        "settlement_refund_fee": "",
        "cash_fee": "190",
        "coupon_refund_fee": "10",
        "coupon_refund_count": "2",
        "coupon_type_1": "CASH",
        "coupon_refund_fee_1": "4",
        "coupon_refund_id_1": "C2",
        "coupon_type_0": "NO_CASH",
        "coupon_refund_fee_0": "6",
        "coupon_refund_id_0": "C1",
        "promotion_detail": json.dumps(PROMOTION, ensure_ascii=False),
        "brand_new_field": "kept",
    }


def test_refund_reply_becomes_typed_result() -> None:
    raw = refund_reply()
    result = parse_refund(raw, out_refund_no="ignored")
    assert result.out_refund_no == "R1"
    assert (result.refund_fee, result.total_fee, result.cash_fee) == (100, 200, 190)
    assert isinstance(result.refund_fee, int)
    assert result.settlement_refund_fee is None  # empty element
    assert result.coupons == [
        Coupon(coupon_type="NO_CASH", coupon_refund_fee=6, coupon_refund_id="C1"),
        Coupon(coupon_type="CASH", coupon_refund_fee=4, coupon_refund_id="C2"),
    ]
    assert result.raw is raw
    assert result.raw["brand_new_field"] == "kept"
    promotion = result.promotion_detail[0]
    assert (promotion.promotion_id, promotion.scope, promotion.type) == ("109519", "SINGLE", "DISCOUNT")
    assert (promotion.amount, promotion.refund_amount, promotion.other_contribute) == (5, 100, 5)
    assert [g.refund_amount for g in promotion.goods_detail] == [100, 30]
    assert promotion.goods_detail[0].price == 100
    assert promotion.goods_detail[1].refund_quantity == 2


def test_missing_out_refund_no_is_filled_from_the_request() -> None:
    raw = refund_reply()
    del raw["out_refund_no"]
    assert parse_refund(raw, out_refund_no="R-MINE").out_refund_no == "R-MINE"


def test_promotion_detail_as_a_bare_list() -> None:
    items = parse_promotion_detail(json.dumps(PROMOTION["promotion_detail"]))
    assert items[0].activity_id == "931386"


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"promotion_detail": [{"amount": 1.5}]}'])
def test_bad_promotion_detail_is_a_decode_error(text: str) -> None:
    with pytest.raises(DecodeError):
        parse_promotion_detail(text)


def test_non_integer_amount_is_a_decode_error() -> None:
    raw = refund_reply()
    raw["refund_fee"] = "1.00"
    with pytest.raises(DecodeError, match="unexpected type"):
        parse_refund(raw, out_refund_no="R1")


def query_reply() -> dict[str, str]:
    return {
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "transaction_id": "4200",
        "out_trade_no": "T1",
        "total_fee": "300",
        "cash_fee": "300",
        "refund_count": "2",
        "total_refund_count": "2",
        "out_refund_no_0": "R0",
        "refund_id_0": "50000",
        "refund_channel_0": "ORIGINAL",
        "refund_fee_0": "100",
        "refund_status_0": "SUCCESS",
        "refund_recv_accout_0": "支付用户的零钱",
        "refund_success_time_0": "2026-11-22 11:00:00",
        "coupon_refund_count_0": "2",
        "coupon_refund_fee_0": "9",
        "coupon_type_0_0": "CASH",
        "coupon_refund_id_0_0": "C00",
        "coupon_refund_fee_0_0": "4",
        "coupon_type_0_1": "NO_CASH",
        "coupon_refund_id_0_1": "C01",
        "coupon_refund_fee_0_1": "5",
        "out_refund_no_1": "R1",
        "refund_id_1": "50001",
        "refund_fee_1": "200",
        "refund_status_1": "SOMETHING_NEW",
    }


def test_refund_query_nested_indexes() -> None:
    result = parse_refund_query(query_reply())
    assert (result.total_fee, result.refund_count) == (300, 2)
    first, second = result.refunds
    assert (first.out_refund_no, first.refund_fee, first.coupon_refund_fee) == ("R0", 100, 9)
    assert first.refund_status == RefundStatus.SUCCESS
    assert first.refund_status_known
    assert [(c.coupon_refund_id, c.coupon_refund_fee) for c in first.coupons] == [("C00", 4), ("C01", 5)]
    assert first.refund_recv_accout == "支付用户的零钱"
    assert second.refund_status == "SOMETHING_NEW"
    assert not second.refund_status_known
    assert second.coupons == []
    assert result.find("R1") is second
    assert result.find("nope") is None


def test_query_record_as_refund_reply_fields() -> None:
    fields = query_record_as_refund_fields(query_reply(), 0)
    assert fields["out_refund_no"] == "R0"
    assert fields["refund_status"] == "SUCCESS"
    assert fields["coupon_refund_fee_1"] == "5"
    assert fields["coupon_refund_fee"] == "9"
    assert fields["total_fee"] == "300"
    assert "out_refund_no_1" not in fields
    result = parse_refund(fields, out_refund_no="R0", settled_by_query=True)
    assert result.refund_status == "SUCCESS"
    assert [c.coupon_refund_id for c in result.coupons] == ["C00", "C01"]


def test_close_order_result() -> None:
    result = parse_close_order({"return_code": "SUCCESS", "result_code": "SUCCESS", "appid": "wx1"})
    assert result.appid == "wx1"
    assert result.raw["result_code"] == "SUCCESS"


_REPLY_NAMES = st.sampled_from(
    [
        "out_refund_no",
        "refund_id",
        "refund_fee",
        "total_fee",
        "cash_fee",
        "refund_status",
        "coupon_refund_count",
        "coupon_type_0",
        "coupon_refund_fee_1",
        "coupon_refund_id_0",
        "coupon_refund_fee_0_1",
        "refund_fee_0001",
        "unknown_9",
        "extra",
        "coupons",
        "attempts",
        "raw",
        "promotion_detail",
        "settled_by_query",
    ]
)
_REPLY_VALUES = st.sampled_from(
    ["", "0", "7", "100", "-3", "1.5", " 4", "x", "SUCCESS", '{"promotion_detail": []}']
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(st.dictionaries(_REPLY_NAMES, _REPLY_VALUES, max_size=10), st.integers(1, 3), st.booleans())
def test_the_one_pass_refund_reading_agrees_with_the_general_one(
    fields: dict[str, str], attempts: int, replayed: bool
) -> None:
    # parse_refund reads the usual reply in one pass and leaves everything else to the general
    # path; the result (or the DecodeError) must be exactly what the general path gives.
    from paykit_async.providers.wechatpay import parsing

    def outcome(read: Any) -> Any:
        try:
            return read()
        except DecodeError as error:
            return ("DecodeError", error.message)

    fast = outcome(
        lambda: parse_refund(fields, out_refund_no="R-GIVEN", attempts=attempts, replayed=replayed)
    )
    general = outcome(lambda: parsing._refund_generally(fields, "R-GIVEN", attempts, False, replayed))
    assert fast == general
    if not isinstance(fast, tuple):
        assert fast.raw is fields
