"""The floor: the least pure-Python work a verified WeChat v2 refund needs, beside paykit's.

``python -m benchmarks.floor [--rounds N]`` measures, with an in-memory transport and then in the
real I/O loop (concurrency 64, mutual TLS, the local endpoint, each kind in a fresh process as in
the throughput part), a refund written as one straight function on paykit's ``AiohttpTransport``:

* the request: the row's fields, a nonce, the MD5 signature, the XML body;
* the reply: the usual flat ``<xml>`` read with one regular expression, the MD5 signature checked
  in constant time, the re-split rule's fast check, ``return_code``/``result_code``, the refund
  number compared, a :class:`~paykit_async.providers.wechatpay.RefundResult` built.

It leaves out everything else paykit does per refund: argument validation beyond the amounts,
the pipeline, the retry layer and the call's deadline, settling an unknown outcome, the error
classification, every general path (expat, escaping, nested or odd replies), wire records. So it
is what no implementation of the same checks can go below on this interpreter, which tells
whether a goal for the library's own share in the loop (issue 18: ≤ 45 µs) can be met by trimming
Python at all. Written here from the spec (signing rule and reply shape), not with paykit's codec
or signer.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .fixtures import WECHAT_API_KEY, WECHAT_APPID, WECHAT_MCH_ID, make_tls_material
from .paired import paired_rounds

__all__ = ["FloorRefund", "make_floor_refund", "measure_in_memory"]

FloorRefund = Callable[..., Awaitable[Any]]

_HEADERS = {"content-type": "text/xml; charset=utf-8", "accept": "text/xml"}
# One element with CDATA or plain text; anything else (group 4) fails the floor's reply.
_ELEMENT = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>(?:<!\[CDATA\[([^<\]]*)\]\]>|([^<&\]]*))</\1>|(\S[\s\S]*)")
_PLAIN_NAMES = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\n[A-Za-z_][A-Za-z0-9_]*)*\Z")
_FEN = frozenset(
    {
        "refund_fee",
        "settlement_refund_fee",
        "total_fee",
        "settlement_total_fee",
        "cash_fee",
        "cash_refund_fee",
        "coupon_refund_fee",
        "coupon_refund_count",
    }
)
_TEXT = frozenset(
    {
        "out_refund_no",
        "refund_id",
        "transaction_id",
        "out_trade_no",
        "fee_type",
        "cash_fee_type",
        "appid",
        "mch_id",
        "sub_appid",
        "sub_mch_id",
    }
)


def make_floor_refund(transport: Any, url: str, *, appid: str, mch_id: str, api_key: str) -> FloorRefund:
    """``await refund(total_fee=…, refund_fee=…, out_trade_no=…, out_refund_no=…)`` over
    ``transport`` (a configured paykit transport): the floor described in the module docstring.
    Any reply it cannot verify or read raises ``ValueError``."""
    from paykit_async.providers.wechatpay import RefundResult
    from paykit_async.transport import WireRequest

    suffix = f"&key={api_key}".encode()

    async def refund(*, total_fee: int, refund_fee: int, out_trade_no: str, out_refund_no: str) -> Any:
        if type(total_fee) is not int or type(refund_fee) is not int or not 0 < refund_fee <= total_fee:
            raise ValueError("amounts")
        fields = {
            "appid": appid,
            "mch_id": mch_id,
            "nonce_str": os.urandom(16).hex(),
            "out_refund_no": out_refund_no,
            "out_trade_no": out_trade_no,
            "refund_fee": str(refund_fee),
            "total_fee": str(total_fee),
        }
        signed = "&".join([f"{name}={fields[name]}" for name in sorted(fields)]).encode() + suffix
        fields["sign"] = hashlib.md5(signed).hexdigest().upper()
        elements = "".join([f"<{name}><![CDATA[{value}]]></{name}>" for name, value in fields.items()])
        request = WireRequest(url=url, headers=_HEADERS, content=f"<xml>{elements}</xml>".encode())
        response = await transport.send(request)
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code}")
        text = response.content.decode()
        if not (text.startswith("<xml>") and text.endswith("</xml>")):
            raise ValueError("not the usual reply")
        found = _ELEMENT.findall(text, 5, len(text) - 6)
        reply = {name: cdata or plain for name, cdata, plain, _other in found}
        if "" in reply or len(reply) != len(found) or reply.get("return_code") != "SUCCESS":
            raise ValueError("not the usual reply")
        sign = reply.get("sign", "")
        names = sorted(name for name in reply if name != "sign")
        signed = "&".join([f"{name}={value}" for name in names if (value := reply[name])]).encode() + suffix
        expected = hashlib.md5(signed).hexdigest().upper()
        if not sign.isascii() or not hmac.compare_digest(expected.encode(), sign.upper().encode()):
            raise ValueError("bad signature")
        listed = "\n".join(reply)
        if (
            "&" in "".join(reply.values())
            or listed.count("\n") != len(reply) - 1
            or not _PLAIN_NAMES.match(listed)
        ):
            raise ValueError("re-splittable")
        if (
            reply.get("result_code") != "SUCCESS"
            or reply.get("out_refund_no", out_refund_no) != out_refund_no
        ):
            raise ValueError("refused, or about another refund")
        typed: dict[str, Any] = {}
        for name, value in reply.items():
            if value and name in _TEXT:
                typed[name] = value
            elif value and name in _FEN:
                typed[name] = int(value)
        typed.setdefault("out_refund_no", out_refund_no)
        return RefundResult(**typed, raw=reply)

    return refund


async def _per_call_cpu_us(call: Callable[[], Awaitable[Any]], count: int, repeats: int) -> float:
    for _ in range(count // 10):
        await call()
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(count):
            await call()
        samples.append((time.process_time() - start) / count * 1e6)
    return min(samples)


async def measure_in_memory(count: int = 20000, repeats: int = 7) -> dict[str, float]:
    """CPU µs per refund, best of ``repeats``: the floor and ``client.refund()``, both on the
    cost table's in-memory transport and canned reply."""
    from paykit_async import ClientCertificate

    from .cost import OUT_TRADE_NO, REFUND_NO, CannedTransport, wechat_client
    from .fixtures import wechat_refund_reply

    transport = CannedTransport(wechat_refund_reply(REFUND_NO))
    floor = make_floor_refund(
        transport, "https://api.mch.weixin.qq.com/secapi/pay/refund",
        appid=WECHAT_APPID, mch_id=WECHAT_MCH_ID, api_key=WECHAT_API_KEY,
    )  # fmt: skip
    request = {"total_fee": 100, "refund_fee": 100, "out_trade_no": OUT_TRADE_NO, "out_refund_no": REFUND_NO}
    with tempfile.TemporaryDirectory(prefix="paykit-floor-") as directory:
        tls = make_tls_material(Path(directory))
        cert = ClientCertificate.from_pem(tls.client_cert_file, tls.client_key_file)
    async with wechat_client(cert, transport) as client:
        return {
            "floor": await _per_call_cpu_us(lambda: floor(**request), count, repeats),
            "paykit": await _per_call_cpu_us(lambda: client.refund(**request), count, repeats),
        }


KINDS = ("raw-aiohttp", "transport-aiohttp", "floor-aiohttp", "paykit-aiohttp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    memory = asyncio.run(measure_in_memory())
    sys.stdout.write(
        f"in memory (CPU µs per refund, best of 7): floor {memory['floor']:.1f}, "
        f"paykit client.refund() {memory['paykit']:.1f}\n"
    )
    results = paired_rounds(KINDS, rounds=args.rounds, count=args.count)
    transport, raw = results["transport-aiohttp"], results["raw-aiohttp"]
    for kind in ("floor-aiohttp", "paykit-aiohttp"):
        share = [k["cpu_us"] - t["cpu_us"] for k, t in zip(results[kind], transport, strict=True)]
        ratio = [k["per_second"] / r["per_second"] for k, r in zip(results[kind], raw, strict=True)]
        sys.stdout.write(
            f"{kind}: own share in the I/O loop {statistics.median(share):.1f} µs per refund "
            f"(paired with transport-only, median of {len(share)}); "
            f"÷ raw aiohttp {statistics.median(ratio):.3f}\n"
        )


if __name__ == "__main__":
    main()
