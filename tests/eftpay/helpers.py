"""Test helpers for eftPay, written independently of the library's signer and codecs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

SECRET = "test-secret-9f3a"  # a throwaway test secret
USER_CONFIRM_KEY = "S0003469"


def reference_sign(fields: Mapping[str, str], secret: str = SECRET, *, keep_empty: bool = False) -> str:
    """sha256(secret + "k=v&..." sorted, ``sign`` left out, empty values dropped unless keep_empty)."""
    pairs = [
        f"{name}={value}"
        for name, value in sorted(fields.items())
        if name != "sign" and (keep_empty or value != "")
    ]
    return hashlib.sha256((secret + "&".join(pairs)).encode("utf-8")).hexdigest()


def signed(fields: Mapping[str, str], secret: str = SECRET, *, keep_empty: bool = False) -> dict[str, str]:
    """``fields`` plus their reference ``sign``."""
    return {**fields, "sign": reference_sign(fields, secret, keep_empty=keep_empty)}


def json_reply(fields: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A 200 JSON reply for the scripted server."""
    return 200, {"content-type": "application/json"}, json.dumps(fields, ensure_ascii=False).encode()


def accepted_refund(request_body: bytes, **overrides: str) -> dict[str, str]:
    """The signed "00" reply eftPay gives to a refund request, echoing the request's fields."""
    sent = json.loads(request_body)
    fields = {
        "return_status": "00",
        "return_char": "",
        "time": sent["time"],
        "out_trade_no": sent["out_trade_no"],
        "trade_status": "TRADE_CLOSED",
        "user_confirm_key": sent["user_confirm_key"],
        "paytype": sent["paytype"],
        "refund_no": sent["refund_no"],
        "transaction_amount": sent["transaction_amount"],
        "total_fee": sent["total_fee"],
        "payment_type": sent["payment_type"],
        "tid": sent.get("tid", ""),
        "rate": "0.88",
        "eftpay_trade_no": "EFT0001",
        "refund_trade_no": "EFTR0001",
    }
    fields.update(overrides)
    return signed(fields)
