"""The strict cattrs converter: money and flags never pass through float or loose spellings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import cattrs
import pytest

from paykit_async.converter import converter, make_converter, strict_bool, strict_decimal, strict_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (100, 100), (-5, -5), ("100", 100), ("0", 0), ("-1", -1), (" 7 ", 7), ("007", 7)],
)
def test_int_from_int_or_digit_string(value: object, expected: int) -> None:
    assert strict_int(value) == expected
    assert type(strict_int(value)) is int


@pytest.mark.parametrize(
    "value",
    [1.0, 0.5, True, False, "1.0", "1e3", "abc", "", " ", "0x10", "1_000", "١٢", None, Decimal("1"), b"1"],
)
def test_int_refuses_everything_else(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        strict_int(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.01", Decimal("0.01")),
        ("0.10", Decimal("0.10")),
        (" 12.5 ", Decimal("12.5")),
        ("-3", Decimal("-3")),
        (7, Decimal(7)),
        (Decimal("1.00"), Decimal("1.00")),
    ],
)
def test_decimal_from_string_int_or_decimal_keeps_the_exponent(value: object, expected: Decimal) -> None:
    result = strict_decimal(value)
    assert result == expected
    assert str(result) == str(expected)


@pytest.mark.parametrize("value", [0.1, 1.0, True, "abc", "", "NaN", "Infinity", "-inf", None, b"1", [1]])
def test_decimal_refuses_floats_bools_and_non_finite(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        strict_decimal(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        ("FALSE", False),
        ("Y", True),
        ("N", False),
    ],
)
def test_bool_from_documented_spellings(value: object, expected: bool) -> None:
    assert strict_bool(value) is expected


@pytest.mark.parametrize("value", [2, -1, 1.0, 0.0, "yes", "no", "", " 1", "tRuE", None, "SUCCESS"])
def test_bool_refuses_other_spellings(value: object) -> None:
    with pytest.raises(ValueError):
        strict_bool(value)


@attrs.frozen(kw_only=True)
class _Reply:
    refund_fee: int
    amount: Decimal
    refunded: bool
    refund_id: str
    raw: dict[str, Any] = attrs.field(factory=dict)


def test_structuring_a_reply_model() -> None:
    reply = converter.structure(
        {"refund_fee": "100", "amount": "0.10", "refunded": "1", "refund_id": 5030, "unknown": "x"}, _Reply
    )
    assert reply == _Reply(refund_fee=100, amount=Decimal("0.10"), refunded=True, refund_id="5030")
    assert str(reply.amount) == "0.10"


@pytest.mark.parametrize(
    "fields",
    [
        {"refund_fee": 1.0, "amount": "1", "refunded": "1", "refund_id": "r"},
        {"refund_fee": "1", "amount": 0.1, "refunded": "1", "refund_id": "r"},
        {"refund_fee": "1", "amount": "1", "refunded": "yes", "refund_id": "r"},
        {"refund_fee": "1", "amount": "1", "refunded": "1", "refund_id": 1.5},
        {"refund_fee": True, "amount": "1", "refunded": "1", "refund_id": "r"},
    ],
)
def test_structuring_refuses_loose_values(fields: dict[str, object]) -> None:
    with pytest.raises(cattrs.BaseValidationError):
        converter.structure(fields, _Reply)


def test_decimal_unstructures_as_string_and_make_converter_gives_a_fresh_copy() -> None:
    assert converter.unstructure(Decimal("0.10")) == "0.10"
    fresh = make_converter()
    assert fresh is not converter
    fresh.register_structure_hook(Decimal, lambda value, _type: Decimal("0"))
    assert converter.structure("1.5", Decimal) == Decimal("1.5")
