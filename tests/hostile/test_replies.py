"""Every client's reply decoding under hostile replies, through an in-memory transport.

Whatever a server answers — any status, any bytes, signed replies whose values are hostile —
each client call returns a result or raises a ``PaykitError``; an altered, unsigned or
re-signed reply is never returned as a result (issue 12: the property suite for replies).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async import EftPayClient, PayJSClient, PaykitError, WeChatPayClient
from paykit_async.codecs.xml import decode_xml
from paykit_async.providers.wechatpay.dialect import WeChatPayDialect
from paykit_async.providers.wechatpay.parsing import parse_refund_query

from ..payjs.payjs_fixtures import php_sign
from .support import (
    FEW,
    PAYJS_KEY,
    SECRETS,
    WECHAT_APPID,
    WECHAT_KEY,
    WECHAT_MCH_ID,
    WECHAT_SUCCESS,
    assert_no_secret,
    eft_refund,
    eft_sign,
    eftpay_client,
    growth_ratio,
    mock_transport,
    payjs_client,
    swallow,
    wechat_client,
    wechat_hmac_sign,
    wechat_sign,
    xml_of,
)

BACKENDS = ["asyncio", "trio"]
Call = Callable[[Any], Awaitable[object]]


def _wechat(transport: Any) -> WeChatPayClient:
    return wechat_client(transport)


def _payjs(transport: Any) -> PayJSClient:
    return payjs_client(transport)


def _eftpay(transport: Any) -> EftPayClient:
    return eftpay_client(transport)


CALLS: dict[str, tuple[Callable[[Any], Any], Call]] = {
    "wechat.refund": (
        _wechat,
        lambda c: c.refund(total_fee=100, refund_fee=100, out_trade_no="T1", out_refund_no="R1"),
    ),
    "wechat.refundv2": (
        _wechat,
        lambda c: c.refund(
            total_fee=100,
            refund_fee=100,
            out_trade_no="T1",
            out_refund_no="R1",
            detail={"goods_detail": [{"goods_id": "1", "refund_quantity": 1, "refund_amount": 100}]},
        ),
    ),
    "wechat.query_refund": (_wechat, lambda c: c.query_refund(out_refund_no="R1")),
    "wechat.close_order": (_wechat, lambda c: c.close_order(out_trade_no="T1")),
    "payjs.refund": (_payjs, lambda c: c.refund(payjs_order_id="P1")),
    "payjs.close": (_payjs, lambda c: c.close(payjs_order_id="P1")),
    "payjs.check": (_payjs, lambda c: c.check(payjs_order_id="P1")),
    "eftpay.refund": (
        _eftpay,
        eft_refund,
    ),
    "eftpay.query": (
        _eftpay,
        lambda c: c.query(out_trade_no="T1", paytype="WeChat", payment_type="WECHATCN", refund_no="R1"),
    ),
    "eftpay.refund_status": (_eftpay, lambda c: c.refund_status(refund_no="R1")),
}


def run_call(
    name: str, backend: str, answer: Callable[[httpx.Request], tuple[int, dict[str, str], bytes]]
) -> object:
    """Run one client call against ``answer``; return its result or the PaykitError it raised."""
    make, call = CALLS[name]

    async def main() -> object:
        async with make(mock_transport(answer)) as client:
            try:
                return await call(client)
            except PaykitError as error:
                assert_no_secret(error, SECRETS)
                return error

    return anyio.run(main, backend=backend)


# -- hostile values inside replies that verify ------------------------------------------------

_SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)
_NUMBERISH = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "0", "-1", "1.5", "1e5", "٣", "²", "1" * 5000, " 7 ", "+1", "0x10", "NaN"]),
)
_WECHAT_NAMES = st.one_of(
    st.sampled_from(
        [
            "return_code",
            "result_code",
            "err_code",
            "out_refund_no",
            "refund_fee",
            "total_fee",
            "coupon_refund_fee_0",
            "coupon_type_0",
            "refund_count",
            "out_refund_no_0",
            "refund_status_0",
            "refund_fee_0",
            "coupon_refund_fee_0_0",
            "promotion_detail",
            "refund_id",
        ]
    ),
    st.from_regex(r"[a-z_]{1,8}(_[0-9]{1,6}){0,2}", fullmatch=True),
    st.builds(lambda n: "coupon_type_" + "9" * n, st.integers(1, 5000)),
)
_WECHAT_VALUES = st.one_of(
    _SAFE_TEXT,
    _NUMBERISH,
    st.sampled_from(["SUCCESS", "FAIL", "R1", "SYSTEMERROR", "PROCESSING"]),
    st.sampled_from(
        ['{"promotion_detail":[{"amount":"x"}]}', "[" * 3000, '{"promotion_detail":{}}', "[1,2]"]
    ),
)


@st.composite
def _wechat_reply(draw: st.DrawFn) -> bytes:
    fields = {
        "return_code": "SUCCESS",
        "result_code": "SUCCESS",
        "appid": WECHAT_APPID,
        "mch_id": WECHAT_MCH_ID,
    }
    fields |= draw(st.dictionaries(_WECHAT_NAMES, _WECHAT_VALUES, max_size=8))
    fields["sign"] = draw(st.sampled_from([wechat_sign, wechat_hmac_sign]))(fields)
    return xml_of(fields)


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    _SAFE_TEXT,
    _NUMBERISH,
    st.sampled_from([1, 0, "1"]),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.dictionaries(st.from_regex(r"[a-zA-Z]{1,6}", fullmatch=True), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def _payjs_reply(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {
        "return_code": draw(st.sampled_from([1, "1", 0, True, None, "x"])),
        "payjs_order_id": "P1",
    }
    names = st.sampled_from(
        ["payjs_order_id", "status", "total_fee", "refund", "attach", "jsapi", "return_msg", "x"]
    )
    fields |= draw(st.dictionaries(names, _JSON_VALUES, max_size=6))
    if draw(st.booleans()):
        fields["sign"] = php_sign(fields, PAYJS_KEY)
    return json.dumps(fields, ensure_ascii=False).encode()


@st.composite
def _eft_reply(draw: st.DrawFn) -> bytes:
    fields: dict[str, Any] = {
        "return_status": draw(st.sampled_from(["00", "01", "", "99"])),
        "refund_no": "R1",
    }
    names = st.sampled_from(
        [
            "refund_no",
            "trade_status",
            "trade_type",
            "transaction_amount",
            "total_fee",
            "rate",
            "refund_status",
            "x",
        ]
    )
    fields |= draw(st.dictionaries(names, st.one_of(_SAFE_TEXT, _NUMBERISH), max_size=6))
    if draw(st.booleans()):
        fields["sign"] = eft_sign(fields)
    return json.dumps(fields, ensure_ascii=False).encode()


_STATUS = st.sampled_from([200, 200, 200, 400, 404, 429, 500, 503])
_HEADERS = st.sampled_from(
    [{}, {"retry-after": "5"}, {"retry-after": "9" * 400}, {"content-type": "text/html"}]
)


@pytest.mark.parametrize("backend", BACKENDS)
@FEW
@given(data=st.data())
def test_any_reply_gives_a_result_or_a_paykit_error(backend: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(CALLS)))
    provider = name.split(".")[0]
    structured = {"wechat": _wechat_reply(), "payjs": _payjs_reply(), "eftpay": _eft_reply()}[provider]
    body = data.draw(st.one_of(st.binary(max_size=512), structured))
    status, headers = data.draw(_STATUS), data.draw(_HEADERS)
    run_call(name, backend, lambda _request: (status, headers, body))


# -- altered replies are never results --------------------------------------------------------


def _genuine(name: str, request: httpx.Request) -> dict[str, Any]:
    """A correct, signed reply to ``request`` (refund replies echo the request's numbers)."""
    provider = name.split(".")[0]
    if provider == "wechat":
        fields = {
            **WECHAT_SUCCESS,
            "out_trade_no": "T1",
            "transaction_id": "4200",
            "total_fee": "100",
        }
        if "refundquery" in request.url.path:
            fields |= {
                "refund_count": "1",
                "out_refund_no_0": "R1",
                "refund_fee_0": "100",
                "refund_status_0": "SUCCESS",
            }
        elif "refund" in request.url.path:
            fields |= {"out_refund_no": "R1", "refund_id": "5000", "refund_fee": "100"}
        return fields
    if provider == "payjs":
        return {"return_code": 1, "payjs_order_id": "P1", "status": 1, "total_fee": 100, "return_msg": "ok"}
    return {
        "return_status": "00",
        "return_char": "ok",
        "refund_no": "R1",
        "trade_status": "TRADE_CLOSED",
        "trade_type": "REFUND",
        "refund_status": "SUCCESS",
        "transaction_amount": "0.01",
    }


def _encode(name: str, fields: dict[str, Any]) -> bytes:
    return xml_of(fields) if name.startswith("wechat") else json.dumps(fields).encode()


def _sign(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    provider = name.split(".")[0]
    sign = {"wechat": wechat_sign, "payjs": lambda f: php_sign(f, PAYJS_KEY), "eftpay": eft_sign}[provider]
    return {**fields, "sign": sign(fields)}


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_genuine_replies_give_results(name: str, backend: str) -> None:
    result = run_call(
        name, backend, lambda request: (200, {}, _encode(name, _sign(name, _genuine(name, request))))
    )
    assert not isinstance(result, BaseException), result


_CHANGED = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6).filter(
    lambda v: v not in ("0", "")
)


@pytest.mark.parametrize("backend", BACKENDS)
@FEW
@given(data=st.data())
def test_altered_replies_are_never_results(backend: str, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(CALLS)))
    kind = data.draw(st.sampled_from(["alter", "drop", "add", "unsign", "resign"]))
    pick = data.draw(st.randoms(use_true_random=False))
    replacement = data.draw(_CHANGED)
    added = data.draw(st.from_regex(r"[a-z_]{1,10}", fullmatch=True))

    def answer(request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
        fields = _sign(name, _genuine(name, request))
        names = sorted(n for n in fields if n != "sign" and fields[n] not in ("", "0", 0))
        if kind == "alter":
            target = pick.choice(names)
            if str(fields[target]) == replacement:
                fields[target] = replacement + "x"
            else:
                fields[target] = replacement
        elif kind == "drop":
            del fields[pick.choice(names)]
        elif kind == "add":
            fields[added if added not in fields else added + "_x"] = replacement
        elif kind == "unsign":
            del fields["sign"]
        else:
            fields["sign"] = fields["sign"][:-1] + ("0" if fields["sign"][-1] != "0" else "1")
        return 200, {}, _encode(name, fields)

    result = run_call(name, backend, answer)
    assert isinstance(result, PaykitError), f"{name} {kind}: an altered reply was returned as {result!r}"


# -- linear time: a verified WeChat reply typed by parsing.py ---------------------------------


def _query_fields(extra: Callable[[int], dict[str, str]], size: int) -> dict[str, str]:
    fields = {**WECHAT_SUCCESS, "out_trade_no": "T1", "total_fee": "100", "refund_count": "1"}
    fields |= {"out_refund_no_0": "R1", "refund_fee_0": "100", "refund_status_0": "SUCCESS"}
    fields |= extra(size)
    return {**fields, "sign": wechat_sign(fields)}


# Index values stop at four digits, so the many-item shapes wrap around and grow in name length.
_QUERY_SHAPES: dict[str, Callable[[int], dict[str, str]]] = {
    "many_refunds": lambda n: {
        f"out_refund_no_{i % 10_000}{'_x' * (i // 10_000)}": "R" for i in range(n // 24)
    },
    "many_coupons": lambda n: {
        f"coupon_refund_fee_0_{i % 10_000}{'_y' * (i // 10_000)}": "1" for i in range(n // 32)
    },
    "lazy_name": lambda n: {"a" + "_a" * (n // 2) + "_0": "1"},
    "underscores": lambda n: {"_" * n + "_0_0": "1"},
    "long_unindexed": lambda n: {"coupon_type_" + "9" * n: "CASH"},
}


@pytest.mark.parametrize("shape", sorted(_QUERY_SHAPES))
def test_wechat_query_reply_parsing_time_grows_linearly(shape: str) -> None:
    dialect = WeChatPayDialect(api_key=WECHAT_KEY)

    def run(body: bytes) -> object:
        return parse_refund_query(dialect.verify_reply(decode_xml(body)))

    def make(size: int) -> bytes:
        return xml_of(_query_fields(_QUERY_SHAPES[shape], size))

    ratio = growth_ratio(swallow(run, PaykitError), make, 1 << 20)
    assert ratio < 3.0, f"{shape}: doubling the reply multiplied the time by {ratio:.2f}"
