"""A reply after a send is a definite failure only when it says so with certainty (issue 12,
finding 7): a signed SUCCESS reply mentioning ``<html`` is a success, and anything that cannot be
classified with certainty is an unknown outcome settled by a query — never "not executed"."""

from __future__ import annotations

import anyio
import httpx
import pytest

from paykit_async import (
    DecodeError,
    HTTPStatusError,
    RefundOutcomeUnknown,
)
from paykit_async.codecs.xml import looks_like_html

from .support import (
    WECHAT_APPID,
    WECHAT_MCH_ID,
    eft_refund,
    eft_sign,
    eftpay_client,
    json_of,
    mock_transport,
    payjs_client,
    signed_wechat_reply,
    wechat_client,
    wechat_sign,
    xml_of,
)

BACKENDS = ["asyncio", "trio"]
CERT_PAGE = (
    b"<html>\r\n<head><title>400 The SSL certificate error</title></head>\r\n<body>\r\n"
    b"<center>No required SSL certificate was sent</center>\r\n</body>\r\n</html>\r\n"
)


REFUND_FIELDS = {"out_trade_no": "T1", "out_refund_no": "R1", "refund_id": "5000", "refund_fee": "100"}
QUERY_REPLY = signed_wechat_reply(
    out_trade_no="T1",
    total_fee="100",
    refund_count="1",
    out_refund_no_0="R1",
    refund_id_0="5000",
    refund_fee_0="100",
    refund_status_0="SUCCESS",
)


def _wechat_refund(backend: str, refund_reply: tuple[int, bytes]) -> tuple[object, list[str]]:
    paths: list[str] = []

    def answer(request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
        paths.append(request.url.path)
        if request.url.path.endswith("/pay/refundquery"):
            return 200, {}, QUERY_REPLY
        return refund_reply[0], {}, refund_reply[1]

    async def main() -> object:
        async with wechat_client(mock_transport(answer)) as client:
            try:
                return await client.refund(
                    total_fee=100, refund_fee=100, out_trade_no="T1", out_refund_no="R1"
                )
            except Exception as error:
                return error

    return anyio.run(main, backend=backend), paths


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_signed_success_mentioning_html_is_a_success(backend: str) -> None:
    # The reproducer: <html in the first 512 bytes, inside a CDATA return_msg.
    fields = {
        "return_code": "SUCCESS",
        "return_msg": "<html><body>refund accepted</body></html>",
        "appid": WECHAT_APPID,
        "mch_id": WECHAT_MCH_ID,
        "nonce_str": "n",
        "result_code": "SUCCESS",
        **REFUND_FIELDS,
    }
    fields["sign"] = wechat_sign(fields)
    reply = xml_of(fields)
    assert b"<html" in reply[:512]
    assert not looks_like_html(reply)
    result, paths = _wechat_refund(backend, (200, reply))
    assert not isinstance(result, BaseException), result
    assert result.refund_id == "5000"  # type: ignore[attr-defined]
    assert not result.settled_by_query  # type: ignore[attr-defined]
    assert len(paths) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><a><![CDATA[<html>]]></a></xml>",
        b"\xef\xbb\xbf <?xml version='1.0'?>\n<xml><html>x</html></xml>",
        b"<xml>\n<return_msg><![CDATA[<!DOCTYPE html><html>]]></return_msg></xml>",
    ],
)
def test_an_xml_document_is_never_taken_for_html(body: bytes) -> None:
    assert not looks_like_html(body)


@pytest.mark.parametrize(
    "body", [CERT_PAGE, b"<!DOCTYPE html><html></html>", b"  <HTML><body>x</body></HTML>"]
)
def test_html_pages_are_still_recognised(body: bytes) -> None:
    assert looks_like_html(body)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "reply",
    [
        (200, CERT_PAGE),  # an HTML page with 200: not the documented certificate refusal
        (200, xml_of({"return_code": "MAYBE", "return_msg": "?"})),
        (200, signed_wechat_reply(**{**REFUND_FIELDS, "result_code": "PENDING"})),  # signed, undocumented
        (200, b"<xml><return_code>SUCCESS</return_code>"),
        (200, b""),
        # A bare 4xx after the send (a proxy, a gateway): no verified refusal, so not definite.
        (404, b"Not Found"),
        (400, b"bad request"),
        (403, xml_of({"return_code": "FAIL", "return_msg": "forbidden"})),
        (409, b""),
    ],
    ids=[
        "html-200",
        "unknown-return-code",
        "unknown-result-code",
        "truncated",
        "empty",
        "bare-404",
        "bare-400",
        "xml-403",
        "empty-409",
    ],
)
def test_an_unclassifiable_wechat_reply_is_settled_by_query(backend: str, reply: tuple[int, bytes]) -> None:
    result, paths = _wechat_refund(backend, reply)
    if isinstance(result, RefundOutcomeUnknown):
        pytest.fail(f"settling by query should have succeeded: {result!r}")
    assert not isinstance(result, BaseException), result
    assert result.settled_by_query  # type: ignore[attr-defined]
    assert paths[-1].endswith("/pay/refundquery")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 418, 499, 500, 503])
def test_a_bare_status_leaves_the_outcome_unknown(status: int) -> None:
    assert HTTPStatusError.from_reply("X", "refund", status, {}, b"").outcome_unknown


def test_429_alone_is_a_refusal_before_processing() -> None:
    error = HTTPStatusError.from_reply("X", "refund", 429, {"retry-after": "2"}, b"")
    assert (error.outcome_unknown, error.retryable, error.retry_after) == (False, True, 2.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_certificate_page_with_400_is_a_definite_refusal(backend: str) -> None:
    result, paths = _wechat_refund(backend, (400, CERT_PAGE))
    assert isinstance(result, DecodeError)
    assert not result.outcome_unknown
    assert "certificate" in result.message
    assert len(paths) == 1  # nothing was executed: no settling query


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"return_code": 2}'),
        (200, b"<html>busy</html>"),
        (200, b'{"return_code": "1", "x": '),
        (404, b"<html>Not Found</html>"),
        (400, b'{"return_code": 0, "return_msg": "bad"}'),
        (403, b""),
    ],
)
def test_an_unclassifiable_payjs_refund_reply_is_unknown(backend: str, status: int, body: bytes) -> None:
    async def main() -> None:
        check = {"return_code": 1, "payjs_order_id": "P1", "status": 1}
        check_reply = json_of({**check, "sign": _payjs_sign(check)})
        checked: list[str] = []

        def answer(request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
            if request.url.path.endswith("/check"):
                checked.append(request.url.path)
                return 200, {}, check_reply
            return status, {}, body

        async with payjs_client(mock_transport(answer)) as client:
            with pytest.raises(RefundOutcomeUnknown):
                await client.refund(payjs_order_id="P1")
        assert checked  # the outcome was put to a verified check, not taken as a refusal

    anyio.run(main, backend=backend)


def _payjs_sign(fields: dict[str, object]) -> str:
    from .support import payjs_sign

    return payjs_sign({k: str(v) for k, v in fields.items()})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"trade_status": "TRADE_CLOSED"}'),
        (200, b"<html></html>"),
        (200, b'{"return_status": '),
        (404, b"<html>Not Found</html>"),
        (400, b'{"return_status": "99", "return_char": "bad"}'),
        (401, b""),
    ],
)
def test_an_unclassifiable_eftpay_refund_reply_is_settled_by_query(
    backend: str, status: int, body: bytes
) -> None:
    query = {"return_status": "00", "refund_no": "R1", "trade_type": "REFUND", "trade_status": "TRADE_CLOSED"}
    query_reply = json_of({**query, "sign": eft_sign(query)})

    def answer(request: httpx.Request) -> tuple[int, dict[str, str], bytes]:
        if request.url.path.endswith("QRcodeTradeQuery.do"):
            return 200, {}, query_reply
        return status, {}, body

    async def main() -> None:
        async with eftpay_client(mock_transport(answer)) as client:
            result = await eft_refund(client)
            assert result.settled_by_query
            assert result.trade_status == "TRADE_CLOSED"

    anyio.run(main, backend=backend)
