"""The simulator parses requests with the library's codecs: hostile requests — arbitrary bytes or
correctly signed requests with hostile values — always get an HTTP answer, never an exception
out of the app, and never take time superlinear in their size."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async.simulator import Simulator, SimulatorConfig

from ..simulator.helpers import eft_request, payjs_request, wechat_request
from .support import FEW, HOSTILE, fill

ROUTES = {
    "wechatpay": ["/secapi/pay/refund", "/secapi/pay/refundv2", "/pay/refundquery", "/pay/closeorder"],
    "payjs": ["/api/refund", "/api/close", "/api/reverse", "/api/check"],
    "eftpay": ["/Servlet/JSAPIService.do", "/Servlet/QRcodeTradeQuery.do"],
}
PATHS = [f"/{provider}{path}" for provider, paths in ROUTES.items() for path in paths]

SIM = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))


def post(path: str, body: bytes, backend: str = "asyncio") -> httpx.Response:
    async def main() -> httpx.Response:
        # raise_app_exceptions (httpx's default): an exception in the app fails the test.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=SIM.app), base_url="http://sim"
        ) as http:
            return await http.post(path, content=body)

    return anyio.run(main, backend=backend)


_NUMBERISH = st.one_of(
    st.integers(-(10**15), 10**15).map(str),
    st.sampled_from(["", "0", "1.5", "0.01", "1e5", "٣", "²", "1" * 5000, " 7", "NaN", "Infinity", "9" * 30]),
    st.sampled_from(["9" * 30, "1" * 40 + ".5", "0." + "0" * 40 + "1"]),  # beyond Decimal's precision
)
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=16)
_VALUE = st.one_of(_NUMBERISH, _TEXT)


@st.composite
def _signed_request(draw: st.DrawFn, provider: str) -> tuple[str, bytes]:
    """A request that passes the simulator's signature check, its business values hostile."""
    path = f"/{provider}" + draw(st.sampled_from(ROUTES[provider]))
    if provider == "wechatpay":
        fields = {
            "out_trade_no": draw(st.sampled_from(["T1", "T2"])),
            "out_refund_no": draw(st.sampled_from(["R1", "R2"])),
            "total_fee": draw(_NUMBERISH),
            "refund_fee": draw(_NUMBERISH),
        }
        fields |= draw(
            st.dictionaries(st.sampled_from(["transaction_id", "refund_id", "offset"]), _VALUE, max_size=2)
        )
        sign_type = draw(st.sampled_from(["MD5", "HMAC-SHA256"]))
        return path, wechat_request(sign_type=sign_type, **fields)
    if provider == "payjs":
        fields = draw(st.dictionaries(st.sampled_from(["payjs_order_id", "x"]), _VALUE, max_size=2))
        return path, payjs_request(**fields)
    fields = {
        "service": draw(
            st.sampled_from(
                [
                    "service.wechat.jsapi.Refund",
                    "service.wechat.jsapi.ApplyRefund",
                    "service.unified.RefundStatusQuery",
                ]
            )
        ),
        "out_trade_no": "T1",
        "refund_no": draw(st.sampled_from(["R1", "R2", "R3", ""])),
        "transaction_amount": draw(_NUMBERISH),
        "total_fee": draw(_NUMBERISH),
        "paytype": draw(st.sampled_from(["WeChat", "WeChat", "WeChat", "Alipay", "x"])),
        "payment_type": draw(st.sampled_from(["WECHATCN", "ALIPAYHK", "x"])),
    }
    time = draw(st.one_of(st.none(), st.none(), _NUMBERISH))
    return path, eft_request(time=time or None, **fields)


@HOSTILE
@given(path=st.sampled_from(PATHS), body=st.binary(max_size=1024))
def test_arbitrary_request_bodies_get_an_answer(path: str, body: bytes) -> None:
    assert post(path, body).status_code < 500


@pytest.mark.parametrize("provider", sorted(ROUTES))
@HOSTILE
@given(data=st.data())
def test_signed_requests_with_hostile_values_get_an_answer(provider: str, data: st.DataObject) -> None:
    path, body = data.draw(_signed_request(provider))
    response = post(path, body)
    assert response.status_code in (200, 400, 429)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@FEW
@given(path=st.sampled_from(PATHS), body=st.one_of(st.binary(max_size=256), st.just(b"[" * 100_000)))
def test_on_both_backends(backend: str, path: str, body: bytes) -> None:
    assert post(path, body, backend).status_code < 500


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/wechatpay/pay/refundquery", b"<xml>" + b"<a><![CDATA[" * 20_000 + b"</xml>"),
        ("/eftpay/Servlet/JSAPIService.do", b"[" * 500_000),
        ("/eftpay/Servlet/JSAPIService.do", b'{"a":"\\ud800","sign":"x"}'),
        ("/payjs/api/refund", b"a=%ED%A0%80"),
    ],
    ids=["xml-cdata-openers", "json-deep", "json-surrogate", "form-surrogate"],
)
def test_the_issue_shapes_get_a_protocol_error(path: str, body: bytes) -> None:
    response = post(path, body)
    assert response.status_code == 200  # each provider's own "bad request" answer


def test_offset_with_exotic_digits_is_ignored() -> None:
    SIM.add_wechatpay_order("T-OFF", 100)
    body = wechat_request(out_trade_no="T-OFF", out_refund_no="R-OFF", total_fee="100", refund_fee="1")
    assert post("/wechatpay/secapi/pay/refund", body).status_code == 200
    for offset in ("²", "٣", "9" * 5000):
        reply = post("/wechatpay/pay/refundquery", wechat_request(out_trade_no="T-OFF", offset=offset))
        assert b"SUCCESS" in reply.content


def test_simulator_xml_parsing_time_grows_linearly() -> None:
    from .support import growth_ratio

    def run(body: bytes) -> Any:
        return post("/wechatpay/pay/refundquery", body).status_code

    ratio = growth_ratio(
        run, lambda n: fill(b"<xml>", b"<a><![CDATA[", b"</xml>", n), 256 * 1024, min_time=0.01
    )
    assert ratio < 3.0
