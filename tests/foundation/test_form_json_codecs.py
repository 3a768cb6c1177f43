"""Form (PAYJS) and JSON (eftPay, PAYJS replies) codecs: exact text, exact money."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs

import pytest

from paykit_async.codecs import decode_form, decode_json, encode_form, encode_json
from paykit_async.errors import DecodeError

FORM_FIELDS = {
    "mchid": "1230000109",
    "body": "a b+c&d=e",
    "attach": "退款 😀",
    "empty": "",
    "percent": "100%",
}


def test_form_round_trips_exactly() -> None:
    assert decode_form(encode_form(FORM_FIELDS)) == FORM_FIELDS


def test_form_is_ascii_with_plus_for_space_and_utf8_percent_escapes() -> None:
    body = encode_form({"body": "a b", "attach": "退"})
    assert body == b"body=a+b&attach=%E9%80%80"
    # An independent parser agrees.
    assert parse_qs(body.decode(), keep_blank_values=True) == {"body": ["a b"], "attach": ["退"]}


def test_form_decoding_keeps_blank_values_and_last_repeat() -> None:
    assert decode_form(b"a=&b=1&b=2") == {"a": "", "b": "2"}
    assert decode_form(b"") == {}


@pytest.mark.parametrize("body", [b"a=%ff", b"\xff=1", b"just-text"])
def test_malformed_form_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_form(body)


def test_json_keeps_decimal_amounts_exact() -> None:
    decoded = decode_json(b'{"transaction_amount": 0.10, "total_fee": "0.01", "count": 3}')
    assert decoded["transaction_amount"] == Decimal("0.10")
    assert str(decoded["transaction_amount"]) == "0.10"
    assert decoded["total_fee"] == "0.01"
    assert decoded["count"] == 3
    assert not any(isinstance(value, float) for value in decoded.values())


def test_json_encodes_decimal_as_string_and_keeps_non_ascii() -> None:
    body = encode_json({"transaction_amount": Decimal("0.10"), "desc": "退款", "n": 1})
    assert body == '{"transaction_amount":"0.10","desc":"退款","n":1}'.encode()
    assert json.loads(body) == {"transaction_amount": "0.10", "desc": "退款", "n": 1}


@pytest.mark.parametrize(
    "fields",
    [{"amount": 0.1}, {"nested": {"amount": 1.0}}, {"items": [1, 2.5]}, {"tuple": (Decimal(1), 0.5)}],
)
def test_json_refuses_floats_anywhere(fields: dict[str, object]) -> None:
    with pytest.raises(TypeError, match="float"):
        encode_json(fields)


@pytest.mark.parametrize("body", [b"NaN", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_json_refuses_non_finite_numbers(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_json(body)


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"1"])
def test_json_must_be_an_object(body: bytes) -> None:
    with pytest.raises(DecodeError, match="object"):
        decode_json(body)


@pytest.mark.parametrize("body", [b'{"a": 1', b"", b"\xff"])
def test_truncated_or_garbled_json_is_a_retryable_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        decode_json(body)
    assert caught.value.retryable is True
