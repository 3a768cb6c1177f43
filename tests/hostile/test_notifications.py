"""Every notification parser under hostile input (issue 12, finding 2): the raw body as bytes or
str, or a framework's parsed mapping, gives a result or a ``PaykitError`` — never an
``AttributeError`` or ``TypeError`` — and nothing unsigned or altered is reported as genuine."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import DecodeError, EftPayClient, PayJSClient, PaykitError, SignatureError, WeChatPayClient

from .support import (
    EFT_SECRET,
    EFT_UCK,
    HOSTILE,
    PAYJS_KEY,
    PAYJS_MCHID,
    WECHAT_APPID,
    WECHAT_KEY,
    WECHAT_MCH_ID,
    eft_sign,
    growth_ratio,
    json_of,
    payjs_sign,
    swallow,
)

PAYJS = PayJSClient(PAYJS_MCHID, PAYJS_KEY, base_url="http://127.0.0.1:9")
EFTPAY = EftPayClient(EFT_UCK, EFT_SECRET, base_url="http://127.0.0.1:9")
WECHAT = WeChatPayClient(WECHAT_APPID, WECHAT_MCH_ID, WECHAT_KEY, base_url="http://127.0.0.1:9")

PARSERS: dict[str, Callable[[Any], object]] = {
    "payjs": PAYJS.parse_notification,
    "eftpay": EFTPAY.parse_notification,
    "wechatpay": WECHAT.parse_refund_notification,
}


def _payjs_fields(**extra: str) -> dict[str, str]:
    fields = {
        "attach": "gift card+1",
        "mchid": PAYJS_MCHID,
        "openid": "o7LFAw",
        "out_trade_no": "ORDER-1",
        "payjs_order_id": "P1",
        "return_code": "1",
        "time_end": "2024-01-01 12:00:00",
        "total_fee": "1250",
        "transaction_id": "4200",
        **extra,
    }
    return {**fields, "sign": payjs_sign(fields)}


def _eft_fields(**extra: str) -> dict[str, str]:
    fields = {
        "out_trade_no": "ORDER-1",
        "refund_no": "R1",
        "trade_status": "TRADE_CLOSED",
        "trade_type": "REFUND",
        "transaction_amount": "0.01",
        "user_confirm_key": EFT_UCK,
        **extra,
    }
    return {**fields, "sign": eft_sign(fields)}


def test_payjs_accepts_bytes_str_and_a_parsed_form_alike() -> None:
    fields = _payjs_fields()
    body = urlencode(fields)
    results = [PAYJS.parse_notification(b) for b in (body.encode(), body, fields, bytearray(body.encode()))]
    assert all(result == results[0] for result in results)
    assert results[0].total_fee == 1250


def test_eftpay_accepts_bytes_str_and_a_parsed_object_alike() -> None:
    fields = _eft_fields()
    body = json_of(fields)
    results = [EFTPAY.parse_notification(b) for b in (body, body.decode(), fields)]
    assert all(result.refund_no == "R1" for result in results)
    assert results[0].transaction_amount == Decimal("0.01")


@pytest.mark.parametrize("body", [None, 5, 1.5, ["a=b"], object(), {1: "x"}, {"a": b"x"}, {"a": None}])
def test_payjs_refuses_what_is_not_a_notification_body(body: object) -> None:
    with pytest.raises(DecodeError):
        PAYJS.parse_notification(body)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    [
        None,
        5,
        1.5,
        ["x"],
        object(),
        {1: "x"},
        {1: "x", "sign": "ab"},
        {"a": 0.01},
        {"a": object()},
        {"a": {2: 1}},
    ],
)
def test_eftpay_refuses_what_is_not_a_notification_body(body: object) -> None:
    with pytest.raises(DecodeError):
        EFTPAY.parse_notification(body)  # type: ignore[arg-type]


@pytest.mark.parametrize("body", [None, 5, ["x"], {1: "x"}, {"return_code": 1}])
def test_wechat_refuses_what_is_not_a_notification_body(body: object) -> None:
    with pytest.raises(DecodeError):
        WECHAT.parse_refund_notification(body)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_lone_surrogates_are_decode_errors(name: str) -> None:
    parse = PARSERS[name]
    for body in ("a=\ud800", '{"a":"\ud800"}', "<xml><a>\ud800</a></xml>", {"a": "\ud800"}, {"\udc00": "x"}):
        with pytest.raises(DecodeError):
            parse(body)


def test_deeply_nested_objects_are_decode_errors() -> None:
    deep: Any = "x"
    for _ in range(100):
        deep = {"a": deep}
    with pytest.raises(DecodeError):
        EFTPAY.parse_notification({"sign": "x", "a": deep})
    with pytest.raises(DecodeError):
        EFTPAY.parse_notification(b"[" * 100_000)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=10),
    st.decimals(),
)
_KEYS = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans())
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)
_BODIES = st.one_of(
    st.binary(max_size=1024),
    st.text(max_size=300),
    st.dictionaries(_KEYS, _VALUES, max_size=6),
    _SCALARS,
    st.lists(_SCALARS, max_size=3),
)


@pytest.mark.parametrize("name", sorted(PARSERS))
@HOSTILE
@given(body=_BODIES)
def test_any_input_gives_a_notification_or_a_paykit_error(name: str, body: object) -> None:
    with contextlib.suppress(PaykitError):
        PARSERS[name](body)


# -- nothing unsigned or altered is reported as genuine ---------------------------------------

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
_CHANGED = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8).filter(
    lambda v: v != "0"
)


@st.composite
def _altered(draw: st.DrawFn, genuine: dict[str, str]) -> dict[str, str]:
    """A copy of a signed message with one change that alters what was signed."""
    fields = dict(genuine)
    signed_names = [n for n in fields if n != "sign" and fields[n] not in ("", "0")]
    kind = draw(st.sampled_from(["alter", "drop", "add", "unsign", "resign"]))
    if kind == "alter":
        name = draw(st.sampled_from(signed_names))
        fields[name] = draw(_CHANGED.filter(lambda v, old=fields[name]: v != old))
    elif kind == "drop":
        del fields[draw(st.sampled_from(signed_names))]
    elif kind == "add":
        name = draw(st.from_regex(r"[a-z_]{1,12}", fullmatch=True).filter(lambda n: n not in fields))
        fields[name] = draw(_CHANGED)
    elif kind == "unsign":
        del fields["sign"]
    else:
        fields["sign"] = draw(st.sampled_from(["0" * 32, "F" * 32, "0" * 64, "", fields["sign"][:-1]]))
    return fields


@HOSTILE
@given(data=st.data(), attach=_TEXT, fee=st.integers(1, 10**9))
def test_payjs_altered_notifications_are_refused(data: st.DataObject, attach: str, fee: int) -> None:
    genuine = _payjs_fields(attach=attach, total_fee=str(fee))
    altered = data.draw(_altered(genuine))
    as_form = data.draw(st.booleans())
    with pytest.raises((SignatureError, DecodeError)):
        PAYJS.parse_notification(altered if as_form else urlencode(altered).encode())


@HOSTILE
@given(data=st.data(), desc=_TEXT, amount=st.decimals("0.01", "99999.99", places=2))
def test_eftpay_altered_notifications_are_refused(data: st.DataObject, desc: str, amount: Decimal) -> None:
    genuine = _eft_fields(refund_desc=desc, transaction_amount=str(amount))
    altered = data.draw(_altered(genuine))
    with pytest.raises((SignatureError, DecodeError)):
        EFTPAY.parse_notification(json_of(altered))


# -- linear time through verification and the re-split rule ----------------------------------

# Genuinely signed bodies (so the signature matches and the re-split rule runs) whose free text
# is the worst the rule's pattern can meet: many "&name" starts that never reach "=", bracket
# suffixes that never close, a run of "&", and a value that does split (refused at the end).
_VALUE_SHAPES = {
    "name_starts": lambda n: "&a" * (n // 2),
    "long_name": lambda n: "&" + "a" * n,
    "open_brackets": lambda n: "&a" + "[" * n,
    "bracket_pairs": lambda n: "&a" + "[]" * (n // 2),
    "ampersands": lambda n: "&" * n,
    "splits_at_the_end": lambda n: "&a" * (n // 2) + "&a=1",
}


@pytest.mark.parametrize("shape", sorted(_VALUE_SHAPES))
def test_payjs_notification_time_grows_linearly(shape: str) -> None:
    def make(n: int) -> bytes:
        return urlencode(_payjs_fields(attach=_VALUE_SHAPES[shape](n // 3))).encode()

    ratio = growth_ratio(swallow(PAYJS.parse_notification, PaykitError), make, 1 << 20)
    assert ratio < 3.0, f"{shape}: doubling the body multiplied the time by {ratio:.2f}"


@pytest.mark.parametrize("shape", sorted(_VALUE_SHAPES))
def test_eftpay_notification_time_grows_linearly(shape: str) -> None:
    def make(n: int) -> bytes:
        return json_of(_eft_fields(refund_desc=_VALUE_SHAPES[shape](n)))

    ratio = growth_ratio(swallow(EFTPAY.parse_notification, PaykitError), make, 1 << 20)
    assert ratio < 3.0, f"{shape}: doubling the body multiplied the time by {ratio:.2f}"
