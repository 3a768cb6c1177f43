"""The JSON and form codecs under hostile input: a result or a ``DecodeError`` for any bytes,
bounded nesting, no lone surrogates, linear time (issue 12, finding 2)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import DecodeError
from paykit_async.codecs.form import decode_form
from paykit_async.codecs.json import MAX_JSON_DEPTH, decode_json, decode_json_value
from paykit_async.providers.wechatpay.parsing import parse_promotion_detail

from .support import HOSTILE, fill, growth_ratio, swallow

MAX = 1 << 20  # the transports' reply cap


@pytest.mark.parametrize("body", [b"[" * 100_000, b"{" * 100_000, b'{"a":' * 50_000, b"[" * 1_000_000])
def test_deep_nesting_is_a_decode_error_not_a_recursion_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="nested deeper"):
        decode_json_value(body)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert decode_json_value(deep) is not None
    with pytest.raises(DecodeError):
        decode_json_value("[" + deep + "]")


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"note": "[" * 1000 + '\\"{' * 100, "n": [[1]]})
    assert decode_json(text.encode())["n"] == [[1]]


@pytest.mark.parametrize(
    "body",
    [b'{"a":"\\ud800"}', b'{"\\udc00":"x"}', b'{"a":["ok","\\uDBFF"]}', b'{"a":"\xed\xa0\x80"}'],
    ids=["lone-high", "lone-low-in-key", "nested", "raw-encoded-surrogate"],
)
def test_lone_surrogates_are_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_json(body)


def test_a_surrogate_pair_is_one_character() -> None:
    assert decode_json(b'{"a":"\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize(
    "body",
    [b'{"a":1' + b"1" * 5000 + b"}", b'{"a":NaN}', b'{"a":Infinity}', b"\xff\xfe{", b"", b"null"],
)
def test_other_refusals_are_decode_errors(body: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_json(body)


def test_promotion_detail_is_depth_bounded() -> None:
    with pytest.raises(DecodeError):
        parse_promotion_detail("[" * 100_000)


JSON_SHAPES = {
    "open_arrays": lambda n: b"[" * n,
    "empty_arrays": lambda n: b"[]" * (n // 2),
    "open_objects": lambda n: fill(b"", b'{"a":', b"", n),
    "escaped_quotes_unterminated": lambda n: fill(b'["', b'\\"', b"", n),
    "quotes": lambda n: b'"' * n,
    "deep_then_escapes": lambda n: fill(b"[" * 40 + b'"', b"\\\\", b"", n),
    "surrogate_escapes": lambda n: fill(b'{"a":"', b"\\ud800", b'"}', n),
    "long_number": lambda n: fill(b'{"a":1.', b"5", b"}", n),
    "wide_array": lambda n: fill(b"[", b"1,", b"1]", n),
}


FORM_SHAPES = {
    "ampersands": lambda n: b"&" * n,
    "pairs": lambda n: fill(b"", b"a=1&", b"", n),
    "percent_escapes": lambda n: fill(b"a=", b"%41", b"", n),
    "equals": lambda n: fill(b"a", b"=", b"", n),
}


_DECODERS: dict[str, tuple[Callable[[bytes], object], dict[str, Callable[[int], bytes]]]] = {
    "json": (decode_json_value, JSON_SHAPES),
    "form": (decode_form, FORM_SHAPES),
}


@pytest.mark.parametrize(
    ("codec", "shape"),
    [(codec, shape) for codec, (_, shapes) in _DECODERS.items() for shape in sorted(shapes)],
)
def test_decode_time_grows_linearly(codec: str, shape: str) -> None:
    decode, shapes = _DECODERS[codec]
    ratio = growth_ratio(swallow(decode, DecodeError), shapes[shape], MAX)
    assert ratio < 3.0, f"{codec} {shape}: doubling the body multiplied the time by {ratio:.2f}"


_JSON_TOKENS = st.sampled_from(
    [
        *('{"a":', '"b"', ":", ",", "[", "]", "{", "}", '"', "\\", "\\u", "d800", "1", "1.5", "-", "e9"),
        *("null", "true", "NaN", " ", '"\\ud800"', '"\\udc00"', "\x00", "中", '"sign":"ab"'),
    ]
)
_JSONISH = st.lists(_JSON_TOKENS, max_size=40).map(lambda tokens: "".join(tokens).encode())


def _as_before(body: bytes) -> tuple[str, object]:
    """decode_json_value's result, or its error message: a BOM is stripped as "utf-8-sig" does."""
    try:
        return "value", decode_json_value(body)
    except DecodeError as error:
        return "error", (error.message, error.retryable)


@HOSTILE
@given(
    st.one_of(st.binary(max_size=512), _JSONISH).flatmap(lambda b: st.sampled_from([b, b"\xef\xbb\xbf" + b]))
)
def test_a_byte_order_mark_is_read_as_utf_8_sig_reads_it(body: bytes) -> None:
    try:
        expected = _as_before(body.decode("utf-8-sig").encode("utf-8", "surrogatepass"))
    except UnicodeDecodeError as exc:
        expected = ("error", (f"not JSON: not UTF-8 ({exc.reason} at byte {exc.start})", True))
    assert _as_before(body) == expected


@HOSTILE
@given(st.one_of(st.binary(max_size=2048), _JSONISH))
def test_any_bytes_give_a_value_or_a_decode_error(body: bytes) -> None:
    try:
        value = decode_json_value(body)
    except DecodeError:
        return
    # Whatever came out can always be encoded: nothing unencodable reaches a signer.
    json.dumps(value, default=str, ensure_ascii=False).encode("utf-8")
    assert not isinstance(value, float)


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@HOSTILE
@given(_JSON_VALUES)
def test_valid_json_round_trips_exactly(value: object) -> None:
    text = json.dumps(value, default=str, ensure_ascii=False)
    try:
        decoded = decode_json_value(text.encode("utf-8", "surrogatepass"))
    except DecodeError:
        # Only lone surrogates (st.text can produce them) are refused.
        assert any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        return
    assert decoded == json.loads(text, parse_float=Decimal)


@HOSTILE
@given(
    st.one_of(
        st.binary(max_size=2048), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
    )
)
def test_form_bodies_give_text_fields_or_a_decode_error(body: bytes) -> None:
    try:
        fields = decode_form(body)
    except DecodeError:
        return
    for name, value in fields.items():
        name.encode("utf-8")
        value.encode("utf-8")
