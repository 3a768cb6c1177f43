"""WeChat Pay API v3 rules written here from the public specification, with ``cryptography`` only.

Nothing in this module imports paykit_async: the tests check the library against these, so a
mistake shared by the library and the simulator cannot hide.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
_ITEM = re.compile(r'\s*([a-z_]+)="([^"]*)"\s*')


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """base64(SHA256-with-RSA, PKCS#1 v1.5)."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verifies(public: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def request_message(method: str, target: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """``METHOD\\nURL\\nTIMESTAMP\\nNONCE\\nBODY\\n`` — every line ends with a newline."""
    return b"".join(
        [
            method.encode(),
            b"\n",
            target.encode(),
            b"\n",
            timestamp.encode(),
            b"\n",
            nonce.encode(),
            b"\n",
            body,
            b"\n",
        ]
    )


def reply_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """``TIMESTAMP\\nNONCE\\nBODY\\n``."""
    return timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"


def parse_authorization(header: str) -> dict[str, str]:
    """The items of ``WECHATPAY2-SHA256-RSA2048 k="v",…`` (any order); raises ValueError if malformed."""
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        raise ValueError(f"scheme {scheme!r}")
    items: dict[str, str] = {}
    for part in rest.split(","):
        match = _ITEM.fullmatch(part)
        if match is None:
            raise ValueError(f"item {part!r}")
        items[match.group(1)] = match.group(2)
    if set(items) != {"mchid", "nonce_str", "signature", "timestamp", "serial_no"}:
        raise ValueError(f"items {sorted(items)}")
    return items


def signed_headers(
    key: rsa.RSAPrivateKey,
    serial: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The Wechatpay-* headers of a reply or notification signed by ``key`` named ``serial``."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    return {
        "Wechatpay-Timestamp": stamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature": sign(key, reply_message(stamp, nonce, body)),
    }


def encrypt(apiv3_key: bytes, plaintext: bytes, *, nonce: str, associated_data: str) -> str:
    """base64(AES-256-GCM ciphertext ‖ tag)."""
    return base64.b64encode(
        AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    ).decode()


def decrypt(apiv3_key: bytes, ciphertext: str, *, nonce: str, associated_data: str) -> bytes:
    return AESGCM(apiv3_key).decrypt(nonce.encode(), base64.b64decode(ciphertext), associated_data.encode())


def notification_body(
    apiv3_key: bytes,
    resource: Mapping[str, Any],
    *,
    event_type: str = "REFUND.SUCCESS",
    notification_id: str = "EV-2018022511223320873",
    nonce: str = "fdasflkja484",
) -> bytes:
    """A refund notification as the spec describes it, with ``resource`` encrypted."""
    plaintext = json.dumps(resource, ensure_ascii=False).encode()
    document = {
        "id": notification_id,
        "create_time": "2018-06-08T10:34:56+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "退款成功",
        "resource": {
            "original_type": "refund",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": encrypt(apiv3_key, plaintext, nonce=nonce, associated_data="refund"),
            "associated_data": "refund",
            "nonce": nonce,
        },
    }
    return json.dumps(document, ensure_ascii=False).encode()


def refund_resource(
    *,
    mchid: str = "1900000100",
    out_refund_no: str = "1217752501201407033233368018",
    status: str = "SUCCESS",
    refund: int = 999,
    total: int = 999,
    **extra: Any,
) -> dict[str, Any]:
    """The decrypted resource of a refund notification (direct mode unless ``sp_mchid`` is given)."""
    resource: dict[str, Any] = {"mchid": mchid}
    resource.update(
        {
            "transaction_id": "1217752501201407033233368018",
            "out_trade_no": "1217752501201407033233368018",
            "refund_id": "1217752501201407033233368018",
            "out_refund_no": out_refund_no,
            "refund_status": status,
            "success_time": "2018-06-08T10:34:56+08:00",
            "user_received_account": "招商银行信用卡0403",
            "amount": {"total": total, "refund": refund, "payer_total": total, "payer_refund": refund},
        }
    )
    resource.update(extra)
    return resource
