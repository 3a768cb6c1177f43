"""Test helpers for WeChat Pay v2, written independently of the library's signer and codec.

Signatures are computed here with hashlib/hmac inline; XML is built and read with the standard
library; notification ciphertexts are produced with ``cryptography`` directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from paykit_async.providers.wechatpay import WeChatPayClient

from ..servers import ScriptedServer

APPID = "wx8888888888888888"
MCH_ID = "1900000109"
API_KEY = "192006250b4c09247ec02edce69f6a2d"  # the public example key from the signing page
OTHER_KEY = "00000000000000000000000000000000"
XML_HEADERS = {"content-type": "text/xml; charset=utf-8"}


def string_a(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")


def md5_sign(fields: Mapping[str, str], key: str = API_KEY) -> str:
    text = f"{string_a(fields)}&key={key}"
    return hashlib.md5(text.encode()).hexdigest().upper()


def hmac_sign(fields: Mapping[str, str], key: str = API_KEY) -> str:
    text = f"{string_a(fields)}&key={key}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def to_xml(fields: Mapping[str, str], root: str = "xml") -> bytes:
    element = ET.Element(root)
    for name, value in fields.items():
        ET.SubElement(element, name).text = value
    body: bytes = ET.tostring(element, encoding="utf-8")
    return body


def from_xml(body: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(body)}


def signed_reply(fields: Mapping[str, str], *, hmac_sha256: bool = False, key: str = API_KEY) -> bytes:
    """A SUCCESS reply with ``fields`` (plus return/result codes and merchant ids), signed inline."""
    reply = {
        "return_code": "SUCCESS",
        "return_msg": "OK",
        "appid": APPID,
        "mch_id": MCH_ID,
        "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "result_code": "SUCCESS",
        **fields,
    }
    reply["sign"] = hmac_sign(reply, key) if hmac_sha256 else md5_sign(reply, key)
    return to_xml(reply)


def error_reply(err_code: str, err_code_des: str = "error") -> bytes:
    return signed_reply({"result_code": "FAIL", "err_code": err_code, "err_code_des": err_code_des})


def refund_success_fields(request: Mapping[str, str], **extra: str) -> dict[str, str]:
    """The fields of a successful refund reply echoing ``request``."""
    fields = {
        "transaction_id": request.get("transaction_id", "4200000001201407033233368018"),
        "out_trade_no": request.get("out_trade_no", "T1001"),
        "out_refund_no": request["out_refund_no"],
        "refund_id": "50000000012014070300000001",
        "refund_fee": request["refund_fee"],
        "settlement_refund_fee": request["refund_fee"],
        "total_fee": request["total_fee"],
        "settlement_total_fee": request["total_fee"],
        "fee_type": "CNY",
        "cash_fee": request["total_fee"],
        "cash_refund_fee": request["refund_fee"],
    }
    fields.update(extra)
    return fields


def aes_encrypt(plaintext: bytes, key: bytes) -> str:
    """AES-256-ECB + PKCS#7, base64 — the way WeChat encrypts ``req_info``."""
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()


def notification_aes_key(api_key: str = API_KEY) -> bytes:
    return hashlib.md5(api_key.encode()).hexdigest().lower().encode()


def notification_body(
    inner: Mapping[str, str],
    *,
    api_key: str = API_KEY,
    appid: str = APPID,
    mch_id: str = MCH_ID,
    req_info: str | None = None,
    **outer: str,
) -> bytes:
    if req_info is None:
        req_info = aes_encrypt(to_xml(inner, root="root"), notification_aes_key(api_key))
    return to_xml(
        {
            "return_code": "SUCCESS",
            "appid": appid,
            "mch_id": mch_id,
            "nonce_str": "TeqClE3i0mvn3DrK",
            "req_info": req_info,
            **outer,
        }
    )


def scripted_client(scripted: ScriptedServer, **options: Any) -> WeChatPayClient:
    """A client of the test merchant for the scripted mutual-TLS server (its certificate and CA)."""
    return WeChatPayClient(
        APPID,
        MCH_ID,
        API_KEY,
        cert=scripted.tls.client_certificate(),
        base_url=scripted.base_url,
        ca_file=scripted.tls.ca_file,
        **options,
    )
