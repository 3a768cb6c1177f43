"""The known-answer signing vectors of /work/shared/specs, in one place.

The library's signers (``tests/foundation/test_signers.py``, ``tests/eftpay/test_signing.py``)
and the hostile suite's independent reference signers (``tests/hostile/test_support.py``) are
all checked against these.
"""

from __future__ import annotations

#: WeChat Pay v2: the public example of the signing rule (MD5 and HMAC-SHA256).
WECHAT_FIELDS = {
    "appid": "wxd930ea5d5a258f4f",
    "mch_id": "10000100",
    "device_info": "1000",
    "body": "test",
    "nonce_str": "ibuaiVcKdpRxkhJA",
}
WECHAT_KEY = "192006250b4c09247ec02edce69f6a2d"
WECHAT_MD5 = "9A0A8659F005D6984697E2CA0A9CF3B7"
WECHAT_HMAC_SHA256 = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"

#: PAYJS: the documented example.
PAYJS_FIELDS = {"test": 123, "test2": "hehe"}
PAYJS_KEY = "test_key"
PAYJS_MD5 = "B16319F0C3F2BBDA5CB8B4FFC9048A81"

#: eftPay: computed from the written rule (the spec marks it illustrative, not an official vector).
EFTPAY_FIELDS = {
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
EFTPAY_SECRET = "SECRET"
EFTPAY_SHA256 = "bb2d148f1266a7ab597c8513c51ba173f17bc02c3dd1a48bf8c45c49b9ef221c"
