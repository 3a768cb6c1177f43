"""The issue's reproducers arriving as *replies*, through each client on asyncio and trio
(findings 1, 2, 3 and 5 on the reply path), plus growth ratios of reply decoding and of the
PAYJS and eftPay notification parsers on their worst shapes."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import anyio
import pytest

from paykit_async import (
    DecodeError,
    EftPayClient,
    PayJSClient,
    PaykitError,
    RefundOutcomeUnknown,
    SignatureError,
    WeChatPayClient,
)
from paykit_async.codecs.xml import MAX_XML_BYTES
from paykit_async.pipeline.core import Operation
from paykit_async.transport.wire import WireResponse

from .support import (
    EFT_SECRET,
    EFT_UCK,
    PAYJS_KEY,
    PAYJS_MCHID,
    SECRETS,
    always,
    assert_no_secret,
    eft_sign,
    eftpay_client,
    fill,
    growth_ratio,
    json_of,
    payjs_client,
    payjs_sign,
    signed_wechat_reply,
    swallow,
    wechat_client,
)

BACKENDS = ["asyncio", "trio"]
XML_FLOOD = b"<xml>" + b"<a><![CDATA[" * 8000 + b"</xml>"
JSON_FLOOD = b"[" * 100_000


def _wechat(body: bytes) -> WeChatPayClient:
    return wechat_client(always(200, body))


def _run(backend: str, main: Callable[[], object]) -> None:
    anyio.run(main, backend=backend)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_xml_flood_as_a_reply(backend: str) -> None:
    async def main() -> None:
        async with _wechat(XML_FLOOD) as client:
            with pytest.raises(DecodeError):
                await client.query_refund(out_refund_no="R1")
            with pytest.raises(RefundOutcomeUnknown):  # a refund: unknown, the settling query fails too
                await client.refund(total_fee=1, refund_fee=1, out_trade_no="T1", out_refund_no="R1")

    _run(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_json_flood_as_payjs_and_eftpay_replies(backend: str) -> None:
    async def main() -> None:
        async with payjs_client(always(200, JSON_FLOOD)) as payjs:
            with pytest.raises(DecodeError, match="nested deeper"):
                await payjs.check(payjs_order_id="P1")
        async with eftpay_client(always(200, JSON_FLOOD)) as eftpay:
            with pytest.raises(DecodeError, match="nested deeper"):
                await eftpay.refund_status(refund_no="R1")

    _run(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deep_promotion_detail_in_a_verified_refund_reply(backend: str) -> None:
    reply = signed_wechat_reply(out_refund_no="R1", refund_fee="1", promotion_detail="[" * 100_000)

    async def main() -> None:
        async with _wechat(reply) as client:
            with pytest.raises(RefundOutcomeUnknown) as caught:
                await client.refund(
                    total_fee=1,
                    refund_fee=1,
                    out_trade_no="T1",
                    out_refund_no="R1",
                    detail={"goods_detail": [{"goods_id": "1", "refund_quantity": 1, "refund_amount": 1}]},
                )
            assert caught.value.refund_no == "R1"
            assert isinstance(caught.value.__cause__, DecodeError)

    _run(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_indexed_names_with_thousands_of_digits_are_plain_fields(backend: str) -> None:
    digits = "1" * 5000
    reply = signed_wechat_reply(
        out_trade_no="T1",
        refund_count="1",
        out_refund_no_0="R1",
        refund_status_0="SUCCESS",
        **{f"out_refund_no_{digits}": "R2", f"coupon_type_0_{digits}": "CASH"},
    )

    async def main() -> None:
        async with _wechat(reply) as client:
            result = await client.query_refund(out_refund_no="R1")
            assert [record.out_refund_no for record in result.refunds] == ["R1"]
            assert result.raw[f"out_refund_no_{digits}"] == "R2"

    _run(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lone_surrogates_in_replies_are_decode_errors_without_secrets(backend: str) -> None:
    body = b'{"return_code":1,"payjs_order_id":"P1","x":"\\ud800","sign":"00"}'

    async def main() -> None:
        async with payjs_client(always(200, body)) as payjs:
            with pytest.raises(DecodeError) as caught:
                await payjs.close(payjs_order_id="P1")
            assert_no_secret(caught.value, SECRETS)
        async with eftpay_client(always(200, body)) as eftpay:
            with pytest.raises(DecodeError) as caught:
                await eftpay.refund_status(refund_no="R1")
            assert_no_secret(caught.value, SECRETS)

    _run(backend, main)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resplit_eftpay_reply_is_refused(backend: str) -> None:
    # refund_desc (merchant text, sorted before refund_no) smuggles a second reading.
    genuine = {
        "return_status": "00",
        "refund_desc": "x&refund_no=R1&refund_status=SUCCESS&return_status=00&zz=",
        "refund_no": "R1",
        "refund_status": "FAIL",
    }
    sign = eft_sign(genuine)
    forged = {"return_status": "00", "refund_desc": "x", "refund_no": "R1", "refund_status": "SUCCESS"}
    forged["zz"] = "&refund_no=R1&refund_status=FAIL&return_status=00"
    forged["sign"] = sign
    assert eft_sign(forged) == sign  # same signed string: the forgery carries a genuine signature

    async def main() -> None:
        for reply in (forged, {**genuine, "sign": sign}):
            async with eftpay_client(always(200, json_of(reply))) as eftpay:
                with pytest.raises(SignatureError, match="ambiguous"):
                    await eftpay.refund_status(refund_no="R1")

    _run(backend, main)


# -- growth ratios of reply decoding and the remaining notification parsers ------------------

_OPERATION = Operation(provider="x", name="query", url="https://x/", fields={})


def _decode_with(client: object) -> Callable[[bytes], object]:
    dialect = client.dialect  # type: ignore[attr-defined]
    return swallow(
        lambda body: dialect.decode(_OPERATION, WireResponse(status_code=200, content=body)), PaykitError
    )


def _many_signed_fields(n: int) -> dict[str, str]:
    fields = {f"f{i:07d}": "v&w" * 3 for i in range(max(1, n // 40))}
    return fields


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("wechat-xml-flood", lambda n: fill(b"<xml>", b"<a><![CDATA[", b"</xml>", n)),
        ("wechat-many-signed-fields", lambda n: signed_wechat_reply(**_many_signed_fields(n))),
    ],
)
def test_wechat_reply_decoding_grows_linearly(name: str, make: Callable[[int], bytes]) -> None:
    decode = _decode_with(_wechat(b""))
    assert growth_ratio(decode, make, MAX_XML_BYTES) < 3.0, name


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("json-flood", lambda n: b"[" * n),
        ("many-signed-fields", lambda n: json_of({**(f := _many_signed_fields(n)), "sign": eft_sign(f)})),
        ("long-value-of-ampersands", lambda n: json_of({"x": "&a" * (n // 2), "sign": "0"})),
    ],
)
def test_json_reply_decoding_and_eftpay_notifications_grow_linearly(
    name: str, make: Callable[[int], bytes]
) -> None:
    eftpay = EftPayClient(EFT_UCK, EFT_SECRET, base_url="https://e.example")
    payjs = PayJSClient(PAYJS_MCHID, PAYJS_KEY, base_url="https://p.example")
    for run in (_decode_with(eftpay), _decode_with(payjs), swallow(eftpay.parse_notification, PaykitError)):
        assert growth_ratio(run, make, 1 << 20) < 3.0, name


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (
            "many-signed-fields",
            lambda n: urlencode({**(f := _many_signed_fields(n)), "sign": payjs_sign(f)}).encode(),
        ),
        ("ampersands", lambda n: b"&" * n),
        ("one-long-value", lambda n: b"attach=" + b"%26a" * (n // 4)),
    ],
)
def test_payjs_notifications_grow_linearly(name: str, make: Callable[[int], bytes]) -> None:
    payjs = PayJSClient(PAYJS_MCHID, PAYJS_KEY, base_url="https://p.example")
    assert growth_ratio(swallow(payjs.parse_notification, PaykitError), make, 1 << 20) < 3.0, name
