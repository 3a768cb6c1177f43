"""Shared benchmark material: merchant keys, correctly signed canned replies and TLS files.

Replies are signed here with hashlib written inline (not with paykit's signer), so a benchmark
can never pass because the library agrees with itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = [
    "EFTPAY_SECRET",
    "EFTPAY_USER_CONFIRM_KEY",
    "PAYJS_KEY",
    "PAYJS_MCHID",
    "V3_APIV3_KEY",
    "V3_MCHID",
    "V3_PUBLIC_KEY_ID",
    "V3_SERIAL",
    "WECHAT_API_KEY",
    "WECHAT_APPID",
    "WECHAT_MCH_ID",
    "TLSMaterial",
    "V3Keys",
    "eftpay_refund_reply",
    "make_tls_material",
    "payjs_refund_reply",
    "paykit_name",
    "v3_keys",
    "v3_refund_reply",
    "wechat_refund_fields",
    "wechat_refund_reply",
    "wechat_sign_md5",
    "wechat_xml",
]

WECHAT_APPID = "wx8888888888888888"
WECHAT_MCH_ID = "1900000109"
WECHAT_API_KEY = "192006250b4c09247ec02edce69f6a2d"
PAYJS_MCHID = "1230000109"
PAYJS_KEY = "pjs_test_key_0123456789abcdef"
EFTPAY_USER_CONFIRM_KEY = "123456789012"
EFTPAY_SECRET = "eftpay-bench-secret"

V3_MCHID = "1900000109"
V3_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
V3_APIV3_KEY = "benchmarkV3apiv3keybenchmark0001"
V3_PUBLIC_KEY_ID = "PUB_KEY_ID_0119000010920261122000000000099"

OUT_TRADE_NO = "1217752501201407033233368018"
TRANSACTION_ID = "4200000012201407033233368018"


def _canonical(fields: Mapping[str, str], *, php: bool = False) -> str:
    empty = ("", "0") if php else ("",)
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] not in empty)


def wechat_sign_md5(fields: Mapping[str, str], key: str = WECHAT_API_KEY) -> str:
    """WeChat Pay v2 MD5 signature, written independently of paykit_async.signing."""
    text = f"{_canonical(fields)}&key={key}"
    return hashlib.md5(text.encode()).hexdigest().upper()


def wechat_xml(fields: Mapping[str, str]) -> bytes:
    """Flat ``<xml>`` with every value in CDATA, as WeChat Pay writes replies (and requests)."""
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{body}</xml>".encode()


def wechat_refund_fields(
    out_refund_no: str = "R0000000000000001", *, err_code: str | None = None
) -> dict[str, str]:
    """A typical successful (or, with ``err_code``, failed) refund reply, signed."""
    fields = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": WECHAT_APPID,
        "mch_id": WECHAT_MCH_ID,
        "nonce_str": "NfsMFbUFpdbEhPXP",
        "result_code": "SUCCESS",
        "transaction_id": TRANSACTION_ID,
        "out_trade_no": OUT_TRADE_NO,
        "out_refund_no": out_refund_no,
        "refund_id": "50000000382019052709732678859",
        "refund_channel": "",
        "refund_fee": "100",
        "coupon_refund_fee": "0",
        "total_fee": "100",
        "cash_fee": "100",
        "cash_refund_fee": "100",
        "coupon_refund_count": "0",
    }
    if err_code is not None:
        fields["result_code"] = "FAIL"
        fields["err_code"] = err_code
        fields["err_code_des"] = "系统超时"
    fields["sign"] = wechat_sign_md5(fields)
    return fields


def wechat_refund_reply(out_refund_no: str = "R0000000000000001", *, err_code: str | None = None) -> bytes:
    return wechat_xml(wechat_refund_fields(out_refund_no, err_code=err_code))


def payjs_refund_reply(payjs_order_id: str = "2019052709732678859") -> bytes:
    fields = {
        "return_code": 1,
        "return_msg": "退款成功",
        "payjs_order_id": payjs_order_id,
        "out_trade_no": OUT_TRADE_NO,
        "transaction_id": TRANSACTION_ID,
    }
    text = f"{_canonical({k: str(v) for k, v in fields.items()}, php=True)}&key={PAYJS_KEY}"
    fields["sign"] = hashlib.md5(text.encode()).hexdigest().upper()
    return json.dumps(fields, ensure_ascii=False).encode()


def eftpay_refund_reply(refund_no: str = "R0000000000000001", *, time: str = "20240101120000") -> bytes:
    fields = {
        "return_status": "00",
        "return_char": "Success",
        "time": time,
        "out_trade_no": OUT_TRADE_NO,
        "trade_status": "TRADE_REFUND",
        "user_confirm_key": EFTPAY_USER_CONFIRM_KEY,
        "paytype": "WeChat",
        "refund_no": refund_no,
        "transaction_amount": "0.50",
        "total_fee": "1.00",
        "payment_type": "WECHATCN",
        "tid": "",
        "eftpay_trade_no": "E20240101120000000001",
        "refund_trade_no": "ER2024010112000000001",
    }
    text = EFTPAY_SECRET + _canonical(fields)
    fields["sign"] = hashlib.sha256(text.encode()).hexdigest()
    return json.dumps(fields, ensure_ascii=False).encode()


@attrs.frozen(kw_only=True)
class TLSMaterial:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""

    ca_file: str
    server_cert_file: str
    server_key_file: str
    client_cert_file: str
    client_key_file: str


def make_tls_material(directory: Path) -> TLSMaterial:
    """Issue fresh trustme certificates into ``directory`` (generated at run time, never stored)."""
    import trustme

    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("merchant@paykit-bench.example")
    paths = {
        "ca_file": directory / "ca.pem",
        "server_cert_file": directory / "server.pem",
        "server_key_file": directory / "server.key",
        "client_cert_file": directory / "client.pem",
        "client_key_file": directory / "client.key",
    }
    ca.cert_pem.write_to_path(paths["ca_file"])
    server.cert_chain_pems[0].write_to_path(paths["server_cert_file"])
    for pem in server.cert_chain_pems[1:]:
        pem.write_to_path(paths["server_cert_file"], append=True)
    server.private_key_pem.write_to_path(paths["server_key_file"])
    client.cert_chain_pems[0].write_to_path(paths["client_cert_file"])
    client.private_key_pem.write_to_path(paths["client_key_file"])
    return TLSMaterial(**{k: str(v) for k, v in paths.items()})


def paykit_name(name: str, *modules: str) -> Any:
    """``paykit_async.<name>``, or from one of ``modules`` while it is not exported yet."""
    import importlib

    import paykit_async

    found = getattr(paykit_async, name, None)
    for module in modules:
        if found is not None:
            break
        found = getattr(importlib.import_module(f"paykit_async.{module}"), name, None)
    if found is None:
        raise ImportError(name)
    return found


# -- WeChat Pay API v3 --------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class V3Keys:
    """The merchant's API key and WeChat's (the endpoint's) key, as PEM files in the TLS directory,
    so that the client and the endpoint processes of a run share them."""

    merchant_key_file: str
    platform_key_file: str
    platform_public_key_file: str


def v3_keys(directory: Path) -> V3Keys:
    """Create (once per run directory) or load the v3 key files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    keys = V3Keys(
        merchant_key_file=str(directory / "v3_merchant_key.pem"),
        platform_key_file=str(directory / "v3_platform_key.pem"),
        platform_public_key_file=str(directory / "v3_platform_public.pem"),
    )
    if Path(keys.platform_public_key_file).is_file():
        return keys
    for path in (keys.merchant_key_file, keys.platform_key_file):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        Path(path).write_bytes(pem)
        if path == keys.platform_key_file:
            public = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            Path(keys.platform_public_key_file).write_bytes(public)
    return keys


def v3_refund_document(out_refund_no: str | None = None) -> dict[str, Any]:
    """A typical v3 refund reply (``out_refund_no`` left out when None: valid for any request)."""
    document: dict[str, Any] = {
        "refund_id": "50000000382019052709732678859",
        "transaction_id": TRANSACTION_ID,
        "out_trade_no": OUT_TRADE_NO,
        "channel": "ORIGINAL",
        "user_received_account": "招商银行信用卡0403",
        "create_time": "2026-11-22T12:00:00+08:00",
        "status": "PROCESSING",
        "funds_account": "AVAILABLE",
        "amount": {
            "total": 100,
            "refund": 100,
            "from": [],
            "payer_total": 100,
            "payer_refund": 100,
            "settlement_refund": 100,
            "settlement_total": 100,
            "discount_refund": 0,
            "currency": "CNY",
            "refund_fee": 0,
        },
        "promotion_detail": [],
    }
    if out_refund_no is not None:
        document = {"out_refund_no": out_refund_no, **document}
    return document


def v3_refund_reply(platform_key_file: str, out_refund_no: str | None = None) -> tuple[dict[str, str], bytes]:
    """A v3 refund reply and its Wechatpay-* headers, signed now with ``cryptography`` directly
    (not with paykit's signer). Valid for 300 s."""
    import base64
    import secrets
    import time

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(Path(platform_key_file).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    body = json.dumps(v3_refund_document(out_refund_no), ensure_ascii=False).encode()
    stamp, nonce = str(int(time.time())), secrets.token_hex(16)
    message = f"{stamp}\n{nonce}\n".encode() + body + b"\n"
    signature = base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
    headers = {
        "content-type": "application/json",
        "wechatpay-timestamp": stamp,
        "wechatpay-nonce": nonce,
        "wechatpay-serial": V3_PUBLIC_KEY_ID,
        "wechatpay-signature": signature,
    }
    return headers, body
