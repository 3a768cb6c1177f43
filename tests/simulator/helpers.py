"""Requests signed by the providers' published rules, written here without the project's signers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY

CHINA = timezone(timedelta(hours=8))


# -- WeChat Pay v2 ------------------------------------------------------------------------------


def wechat_sign(fields: Mapping[str, str], key: str, sign_type: str = "MD5") -> str:
    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")
    text += f"&key={key}"
    if sign_type == "HMAC-SHA256":
        return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text.encode()).hexdigest().upper()


def to_xml(fields: Mapping[str, str], root: str = "xml") -> bytes:
    return (
        f"<{root}>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + f"</{root}>"
    ).encode()


def from_xml(body: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(body)}


def wechat_request(key: str = DEMO_WECHATPAY.api_key, sign_type: str = "MD5", **business: str) -> bytes:
    fields = {
        "appid": DEMO_WECHATPAY.appid,
        "mch_id": DEMO_WECHATPAY.mch_id,
        "nonce_str": secrets.token_hex(8),
    }
    if sign_type != "MD5":
        fields["sign_type"] = sign_type
    fields |= business
    fields["sign"] = wechat_sign(fields, key, sign_type)
    return to_xml(fields)


def wechat_reply_verified(reply: Mapping[str, str], key: str = DEMO_WECHATPAY.api_key) -> bool:
    sign_type = "HMAC-SHA256" if len(reply.get("sign", "")) == 64 else "MD5"
    return hmac.compare_digest(wechat_sign(reply, key, sign_type), reply.get("sign", ""))


def decrypt_req_info(req_info: str, api_key: str = DEMO_WECHATPAY.api_key) -> dict[str, str]:
    key = hashlib.md5(api_key.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    padded = decryptor.update(base64.b64decode(req_info)) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    plain = unpadder.update(padded) + unpadder.finalize()
    root = ET.fromstring(plain)
    assert root.tag == "root"
    return {child.tag: child.text or "" for child in root}


# -- PAYJS ----------------------------------------------------------------------------------------


def payjs_sign(fields: Mapping[str, Any], key: str) -> str:
    def empty(v: Any) -> bool:
        return v in ("", "0", 0, None, False)

    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and not empty(fields[k]))
    return hashlib.md5(f"{text}&key={key}".encode()).hexdigest().upper()


def payjs_request(key: str = DEMO_PAYJS.key, mchid: str = DEMO_PAYJS.mchid, **business: str) -> bytes:
    fields = {"mchid": mchid, **business}
    fields["sign"] = payjs_sign(fields, key)
    return urlencode(fields).encode()


# -- eftPay ---------------------------------------------------------------------------------------


def eft_sign(fields: Mapping[str, str], secret: str) -> str:
    text = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] not in ("", None))
    return hashlib.sha256((secret + text).encode()).hexdigest()


def eft_time(when: datetime | None = None) -> str:
    return (when or datetime.now(CHINA)).astimezone(CHINA).strftime("%Y%m%d%H%M%S")


def eft_request(secret: str = DEMO_EFTPAY.secret, time: str | None = None, **business: str) -> bytes:
    fields = {"user_confirm_key": DEMO_EFTPAY.user_confirm_key, "time": time or eft_time(), **business}
    fields["sign"] = eft_sign(fields, secret)
    return json.dumps(fields).encode()


def eft_refund(**overrides: str) -> dict[str, str]:
    base = {
        "service": "service.wechat.jsapi.Refund",
        "transaction_amount": "0.01",
        "out_trade_no": "T1",
        "paytype": "WeChat",
        "payment_type": "WECHATCN",
        "refund_no": "R1",
        "total_fee": "10.01",
        "tid": "tid_1",
        "refund_desc": "",
    }
    return base | overrides


def eft_reply_verified(reply: Mapping[str, Any], secret: str = DEMO_EFTPAY.secret) -> bool:
    text_fields = {k: str(v) for k, v in reply.items()}
    return hmac.compare_digest(eft_sign(text_fields, secret), str(reply.get("sign", "")))
