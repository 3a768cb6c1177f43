"""The floor of ``benchmarks.floor`` is a real verified refund: it takes the genuine reply and
refuses what paykit refuses on the same path, so comparing paykit with it compares like work."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import fixtures
from benchmarks.cost import CannedTransport
from benchmarks.floor import make_floor_refund
from paykit_async.providers.wechatpay import RefundResult

pytestmark = pytest.mark.anyio

NUMBER = "R0000000000000001"


def _floor(reply: bytes) -> tuple[Any, CannedTransport]:
    transport = CannedTransport(reply)
    refund = make_floor_refund(
        transport,
        "https://api.mch.weixin.qq.com/secapi/pay/refund",
        appid=fixtures.WECHAT_APPID,
        mch_id=fixtures.WECHAT_MCH_ID,
        api_key=fixtures.WECHAT_API_KEY,
    )
    return refund, transport


async def _refund(reply: bytes) -> Any:
    refund, _ = _floor(reply)
    return await refund(
        total_fee=100, refund_fee=100, out_trade_no=fixtures.OUT_TRADE_NO, out_refund_no=NUMBER
    )


async def test_the_genuine_reply_gives_the_typed_result() -> None:
    result = await _refund(fixtures.wechat_refund_reply(NUMBER))
    assert isinstance(result, RefundResult)
    assert result.out_refund_no == NUMBER
    assert isinstance(result.refund_fee, int)


def _resigned(fields: dict[str, str]) -> bytes:
    fields = dict(fields)
    fields.pop("sign", None)
    fields["sign"] = fixtures.wechat_sign_md5(fields)
    return fixtures.wechat_xml(fields)


@pytest.mark.parametrize(
    ("reply", "refusal"),
    [
        pytest.param(
            fixtures.wechat_refund_reply(NUMBER).replace(b"<refund_fee><![CDATA[", b"<refund_fee><![CDATA[9"),
            "bad signature",
            id="tampered",
        ),
        pytest.param(
            _resigned({**fixtures.wechat_refund_fields(NUMBER), "return_msg": "OK&refund_fee=1"}),
            "re-splittable",
            id="re-split",
        ),
        pytest.param(
            fixtures.wechat_refund_reply("R0000000000000002"), "another refund", id="another-refund"
        ),
        pytest.param(fixtures.wechat_refund_reply(NUMBER, err_code="SYSTEMERROR"), "refused", id="refused"),
    ],
)
async def test_what_paykit_refuses_the_floor_refuses(reply: bytes, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal):
        await _refund(reply)
