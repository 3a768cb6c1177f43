"""The suite's inline reference signers reproduce the specs' known answers.

Every "a forged or altered message is refused" test here signs its genuine messages with
``support``'s own hashlib/hmac code; these vectors (from /work/shared/specs) anchor that code
to the providers' rules rather than to the library under test.
"""

from __future__ import annotations

from .support import eft_sign, payjs_sign, wechat_hmac_sign, wechat_sign

WECHAT_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
WECHAT_KEY = "192006250b4c09247ec02edce69f6a2d"


def test_wechat_reference_signers_match_the_spec_vectors() -> None:
    assert wechat_sign(WECHAT_FIELDS, WECHAT_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"
    assert (
        wechat_hmac_sign(WECHAT_FIELDS, WECHAT_KEY)
        == "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
    )


def test_payjs_reference_signer_matches_the_spec_vector() -> None:
    assert payjs_sign({"test": 123, "test2": "hehe"}, "test_key") == "B16319F0C3F2BBDA5CB8B4FFC9048A81"


def test_eftpay_reference_signer_matches_the_spec_vector() -> None:
    fields = {
        "service": "service.wechat.jsapi.Refund",
        "user_confirm_key": "12345678",
        "transaction_amount": "0.01",
        "out_trade_no": "T1",
        "paytype": "WeChat",
        "payment_type": "WECHATCN",
        "refund_no": "R1",
        "total_fee": "0.01",
        "refund_desc": "",
        "time": "20240101120000",
    }
    assert eft_sign(fields, "SECRET") == "bb2d148f1266a7ab597c8513c51ba173f17bc02c3dd1a48bf8c45c49b9ef221c"
