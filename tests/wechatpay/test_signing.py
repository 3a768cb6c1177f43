"""Request signing by the spec's known-answer vectors and by an independent inline signer."""

from __future__ import annotations

import re

import pytest

from paykit_async.pipeline.core import Operation
from paykit_async.providers.wechatpay import WeChatPayDialect

from .helpers import API_KEY, from_xml, hmac_sign, md5_sign

# The public worked example of WeChat's signing page.
EXAMPLE = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
EXAMPLE_KEY = "192006250b4c09247ec02edce69f6a2d"
EXAMPLE_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
EXAMPLE_HMAC = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"


def test_independent_helper_matches_the_public_vectors() -> None:
    assert md5_sign(EXAMPLE, EXAMPLE_KEY) == EXAMPLE_MD5
    assert hmac_sign(EXAMPLE, EXAMPLE_KEY) == EXAMPLE_HMAC


@pytest.mark.parametrize(("sign", "valid"), [(EXAMPLE_MD5, True), (EXAMPLE_HMAC, True), ("0" * 32, False)])
def test_dialect_verifies_the_public_vectors_by_sign_length(sign: str, valid: bool) -> None:
    dialect = WeChatPayDialect(api_key=EXAMPLE_KEY)
    assert dialect.verify(EXAMPLE, sign) is valid
    assert dialect.verify(EXAMPLE, sign.lower()) is valid


def test_verification_covers_unknown_fields() -> None:
    dialect = WeChatPayDialect(api_key=EXAMPLE_KEY)
    assert not dialect.verify({**EXAMPLE, "new_field": "x"}, EXAMPLE_MD5)


def _encoded(sign_type: str) -> dict[str, str]:
    dialect = WeChatPayDialect(api_key=API_KEY, sign_type=sign_type)
    fields = {"appid": "wx1", "mch_id": "1900000109", "out_refund_no": "R1", "refund_fee": "0"}
    request = dialect.encode(Operation(provider="wechatpay", name="refund", url="https://x/p", fields=fields))
    assert request.headers["content-type"].startswith("text/xml")
    return from_xml(request.content)


def test_md5_request_is_signed_over_every_field_including_zero() -> None:
    sent = _encoded("MD5")
    assert "sign_type" not in sent
    assert re.fullmatch(r"[0-9a-f]{32}", sent["nonce_str"])
    assert sent["sign"] == md5_sign(sent)
    # "0" is not empty: dropping it would give another signature.
    assert sent["sign"] != md5_sign({k: v for k, v in sent.items() if k != "refund_fee"})


def test_hmac_request_declares_and_signs_its_sign_type() -> None:
    sent = _encoded("HMAC-SHA256")
    assert sent["sign_type"] == "HMAC-SHA256"
    assert sent["sign"] == hmac_sign(sent)
    assert len(sent["sign"]) == 64


def test_every_attempt_gets_a_fresh_nonce() -> None:
    assert _encoded("MD5")["nonce_str"] != _encoded("MD5")["nonce_str"]
