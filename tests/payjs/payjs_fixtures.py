"""PAYJS test fixtures signed INDEPENDENTLY of paykit_async's signer.

``php_sign`` re-implements the PAYJS rule from the spec with nothing but ``hashlib``: PHP
``array_filter`` (drop "", None, 0, "0", False), ``ksort``, ``http_build_query`` + ``urldecode``
(nested arrays as ``name[key]=value`` in insertion order), ``&key=``, MD5, upper-case hex.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlencode

MCHID = "1230000109"
KEY = "payjs-test-key-0123456789"
ORDER_ID = "2019051812345678901234567890ABCD"  # 32 characters, the maximum


def _php_empty(value: Any) -> bool:
    return value is None or value is False or value in ("", "0") or (type(value) is int and value == 0)


def _php_str(value: Any) -> str:
    if value is True:
        return "1"
    return str(value)


def _pairs(prefix: str, value: Any) -> list[str]:
    if isinstance(value, dict):
        out: list[str] = []
        for key, item in value.items():
            out.extend(_pairs(f"{prefix}[{key}]", item))
        return out
    if value is None:
        return []
    return [f"{prefix}={_php_str(value)}"]


def php_string(fields: dict[str, Any]) -> str:
    parts: list[str] = []
    for name in sorted(fields):
        value = fields[name]
        if name == "sign" or _php_empty(value):
            continue
        parts.extend(_pairs(name, value))
    return "&".join(parts)


def php_sign(fields: dict[str, Any], key: str = KEY) -> str:
    text = f"{php_string(fields)}&key={key}"
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def signed(fields: dict[str, Any], key: str = KEY) -> dict[str, Any]:
    """``fields`` plus their independent ``sign``."""
    return {**fields, "sign": php_sign(fields, key)}


def json_body(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode("utf-8")


def form_body(fields: dict[str, Any]) -> bytes:
    return urlencode({k: str(v) for k, v in fields.items()}).encode("ascii")


def refund_reply(order_id: str = ORDER_ID, **extra: Any) -> dict[str, Any]:
    return signed(
        {
            "return_code": 1,
            "return_msg": "退款成功",
            "payjs_order_id": order_id,
            "out_trade_no": "shop-20190518-0001",
            "transaction_id": "4200000311201905181234567890",
            **extra,
        }
    )


def check_reply(order_id: str = ORDER_ID, **extra: Any) -> dict[str, Any]:
    return signed(
        {
            "return_code": 1,
            "mchid": MCHID,
            "out_trade_no": "shop-20190518-0001",
            "payjs_order_id": order_id,
            "transaction_id": "4200000311201905181234567890",
            "status": 1,
            "openid": "o7LFAwUGDa3hvJ8AVWMZT0gRvBfc",
            "total_fee": 1250,
            "paid_time": "2019-05-18 12:34:56",
            "attach": "",
            **extra,
        }
    )


def notification(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "return_code": "1",
        "total_fee": "1250",
        "out_trade_no": "shop-20190518-0001",
        "payjs_order_id": ORDER_ID,
        "transaction_id": "4200000311201905181234567890",
        "time_end": "2019-05-18 12:34:56",
        "openid": "o7LFAwUGDa3hvJ8AVWMZT0gRvBfc",
        "attach": "gift card+1",
        "mchid": MCHID,
    }
    fields.update(overrides)
    return {k: v for k, v in fields.items() if v is not None}
