"""One throughput measurement in a fresh process: ``count`` refunds at ``concurrency``.

Run by :mod:`benchmarks.throughput`; prints one JSON object: count, wall seconds, client CPU
seconds (``time.process_time`` of this process, warm-up excluded) and errors.

Kinds: ``raw-aiohttp`` / ``raw-httpx`` post a pre-built, pre-signed body (the baselines);
``transport-aiohttp`` sends the same body through paykit's ``AiohttpTransport`` alone;
``paykit-aiohttp`` / ``paykit-httpx`` call ``WeChatPayClient.refund`` on ``AiohttpTransport`` /
the default ``HttpxTransport``; ``paykit-aiohttp-batch`` drives the same client with
``refund_many``. A kind ending in ``+uvloop`` runs on uvloop's event loop. WeChat Pay API v3:
``raw-aiohttp-v3`` posts one pre-built, pre-signed v3 refund; ``paykit-v3-aiohttp`` /
``paykit-v3-httpx`` call ``WeChatPayV3Client.refund`` (a fresh RSA signature per request, the
reply's RSA signature verified).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .fixtures import WECHAT_API_KEY, WECHAT_APPID, WECHAT_MCH_ID, wechat_sign_md5, wechat_xml

Call = Callable[[int], Awaitable[Any]]
REFUND_PATH = "/secapi/pay/refund"


def _refund_no(i: int) -> str:
    # Unique per process, so runs against the simulator's ledger never reuse a number.
    return f"B{os.getpid()}X{i:012d}"


def prebuilt_body() -> bytes:
    fields = {
        "appid": WECHAT_APPID,
        "mch_id": WECHAT_MCH_ID,
        "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS",
        "out_trade_no": "1217752501201407033233368018",
        "out_refund_no": _refund_no(0),
        "total_fee": "100",
        "refund_fee": "100",
    }
    fields["sign"] = wechat_sign_md5(fields)
    return wechat_xml(fields)


def _ssl_context(tls_dir: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    context.load_cert_chain(str(tls_dir / "client.pem"), str(tls_dir / "client.key"))
    return context


_FIRST_ERRORS: list[str] = []


def _mark(name: str) -> None:
    """Tell the parent process that the timed phase starts or ends (it reads the server's CPU)."""
    sys.stdout.write(f"MARK {name}\n")
    sys.stdout.flush()


async def _drive(call: Call, count: int, concurrency: int, start: int = 0) -> int:
    numbers = iter(range(start, start + count))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for i in numbers:
            try:
                await call(i)
            except Exception as exc:
                errors += 1
                if len(_FIRST_ERRORS) < 3:
                    _FIRST_ERRORS.append(f"{type(exc).__name__}: {exc}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return errors


async def _measure(call: Call, count: int, concurrency: int, warmup: int) -> dict[str, Any]:
    await _drive(call, warmup, concurrency, start=10**9)
    gc.collect()
    _mark("start")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    errors = await _drive(call, count, concurrency)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _mark("end")
    return {"count": count, "wall": wall, "cpu": cpu, "errors": errors}


async def _measure_batch(
    client: Any, count: int, concurrency: int, warmup: int, distinct_orders: bool
) -> dict[str, Any]:
    """Like :func:`_measure`, through ``refund_many`` instead of a hand-written worker pool."""
    from .fixtures import paykit_name

    refund_many = paykit_name("refund_many", "batch")

    def requests(start: int, n: int) -> Any:
        for i in range(start, start + n):
            order = f"T{os.getpid()}X{i:012d}" if distinct_orders else "1217752501201407033233368018"
            yield {"total_fee": 100, "refund_fee": 100, "out_trade_no": order, "out_refund_no": _refund_no(i)}

    async def run_batch(start: int, n: int) -> int:
        errors = 0
        async with refund_many(client, requests(start, n), concurrency=concurrency) as outcomes:
            async for outcome in outcomes:
                if not outcome.ok:
                    errors += 1
                    if len(_FIRST_ERRORS) < 3:
                        _FIRST_ERRORS.append(f"{outcome.error_code}: {outcome.error_message}")
        return errors

    await run_batch(10**9, warmup)
    gc.collect()
    _mark("start")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    errors = await run_batch(0, count)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _mark("end")
    return {"count": count, "wall": wall, "cpu": cpu, "errors": errors}


async def _raw_aiohttp(
    target: str,
    body: bytes,
    headers: dict[str, str],
    context: ssl.SSLContext,
    count: int,
    concurrency: int,
    warmup: int,
) -> dict[str, Any]:
    """The raw-aiohttp baseline: ``body`` posted to ``target`` as is, ``count`` times."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(_i: int) -> bytes:
            async with session.post(target, data=body, headers=headers) as response:
                data = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}")
                return data

        return await _measure(call, count, concurrency, warmup)


async def run(
    kind: str,
    url: str,
    tls_dir: Path,
    count: int,
    concurrency: int,
    warmup: int,
    retry_delay: float | None,
    distinct_orders: bool = False,
) -> dict[str, Any]:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    target = url.rstrip("/") + REFUND_PATH
    if kind == "raw-aiohttp":
        return await _raw_aiohttp(
            target, prebuilt_body(), headers, _ssl_context(tls_dir), count, concurrency, warmup
        )
    if kind == "raw-httpx":
        import httpx

        body = prebuilt_body()
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(verify=_ssl_context(tls_dir), limits=limits, trust_env=False) as client:

            async def call(_i: int) -> bytes:
                response = await client.post(target, content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                return response.content

            return await _measure(call, count, concurrency, warmup)
    if kind in ("transport-aiohttp", "floor-aiohttp"):
        # paykit's AiohttpTransport alone, sending the same pre-built body: where the time goes
        # between raw aiohttp and the full client.
        from paykit_async import ClientCertificate
        from paykit_async.transport import TransportSettings, WireRequest

        from .fixtures import paykit_name

        transport = paykit_name("AiohttpTransport", "transport.aiohttp_transport")()
        cert = ClientCertificate.from_pem(tls_dir / "client.pem", tls_dir / "client.key")
        transport.configure(
            TransportSettings(certificate=cert, ca_file=str(tls_dir / "ca.pem"), max_connections=concurrency)
        )
        request = WireRequest(url=target, headers=headers, content=prebuilt_body())

        async def send(_i: int) -> Any:
            response = await transport.send(request)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            return response

        if kind == "floor-aiohttp":
            # The least work a verified refund needs, on the same transport (benchmarks.floor).
            from .floor import make_floor_refund

            floor = make_floor_refund(
                transport, target, appid=WECHAT_APPID, mch_id=WECHAT_MCH_ID, api_key=WECHAT_API_KEY
            )

            async def send(i: int) -> Any:
                return await floor(
                    total_fee=100,
                    refund_fee=100,
                    out_trade_no="1217752501201407033233368018",
                    out_refund_no=_refund_no(i),
                )

        try:
            return await _measure(send, count, concurrency, warmup)
        finally:
            await transport.aclose()
    if kind in ("raw-aiohttp-v3", "paykit-v3-aiohttp", "paykit-v3-httpx"):
        return await _run_v3(kind, url, tls_dir, count, concurrency, warmup)
    if kind in ("paykit-aiohttp", "paykit-httpx", "paykit-aiohttp-batch"):
        from paykit_async import ClientCertificate, RetryBudget, RetryPolicy

        from .fixtures import paykit_name

        WeChatPayClient = paykit_name("WeChatPayClient", "providers.wechatpay")
        transport: Any = None
        if kind.startswith("paykit-aiohttp"):
            transport = paykit_name("AiohttpTransport", "transport.aiohttp_transport")()
        options: dict[str, Any] = {}
        if retry_delay is not None:
            options["retry"] = RetryPolicy(attempts=6, initial_delay=retry_delay, max_delay=retry_delay * 4)
            options["retry_budget"] = RetryBudget(capacity=10**9)
        cert = ClientCertificate.from_pem(tls_dir / "client.pem", tls_dir / "client.key")
        async with WeChatPayClient(
            WECHAT_APPID,
            WECHAT_MCH_ID,
            WECHAT_API_KEY,
            cert=cert,
            base_url=url,
            ca_file=tls_dir / "ca.pem",
            transport=transport,
            max_connections=concurrency,
            **options,
        ) as client:

            async def call(i: int) -> Any:
                result = await client.refund(
                    total_fee=100,
                    refund_fee=100,
                    out_trade_no=f"T{os.getpid()}X{i:012d}"
                    if distinct_orders
                    else "1217752501201407033233368018",
                    out_refund_no=_refund_no(i),
                )
                return result

            if kind == "paykit-aiohttp-batch":
                return await _measure_batch(client, count, concurrency, warmup, distinct_orders)
            return await _measure(call, count, concurrency, warmup)
    raise SystemExit(f"unknown kind {kind!r}")


V3_REFUND_PATH = "/v3/refund/domestic/refunds"


async def _run_v3(
    kind: str, url: str, tls_dir: Path, count: int, concurrency: int, warmup: int
) -> dict[str, Any]:
    """WeChat Pay API v3 refunds (no client certificate: v3 has no mutual TLS)."""
    from .fixtures import V3_APIV3_KEY, V3_MCHID, V3_PUBLIC_KEY_ID, V3_SERIAL, paykit_name, v3_keys

    keys = v3_keys(tls_dir)
    target = url.rstrip("/") + V3_REFUND_PATH
    if kind == "raw-aiohttp-v3":
        body = json.dumps(
            {
                "out_trade_no": "T1",
                "out_refund_no": "R1",
                "amount": {"refund": 100, "total": 100, "currency": "CNY"},
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="N",signature="S",'
            'timestamp="1",serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1"',
        }
        context = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
        return await _raw_aiohttp(target, body, headers, context, count, concurrency, warmup)
    WeChatPayV3Client = paykit_name("WeChatPayV3Client", "providers.wechatpay_v3")
    transport: Any = None
    if kind == "paykit-v3-aiohttp":
        transport = paykit_name("AiohttpTransport", "transport.aiohttp_transport")()
    async with WeChatPayV3Client(
        V3_MCHID,
        keys.merchant_key_file,
        V3_SERIAL,
        V3_APIV3_KEY,
        wechatpay_public_key=keys.platform_public_key_file,
        wechatpay_public_key_id=V3_PUBLIC_KEY_ID,
        base_url=url,
        ca_file=tls_dir / "ca.pem",
        transport=transport,
        max_connections=concurrency,
    ) as client:

        async def refund(i: int) -> Any:
            return await client.refund(
                refund=100,
                total=100,
                out_trade_no="1217752501201407033233368018",
                out_refund_no=_refund_no(i),
            )

        return await _measure(refund, count, concurrency, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--retry-delay", type=float, default=None)
    parser.add_argument("--distinct-orders", action="store_true", help="one order per refund (simulator)")
    args = parser.parse_args()
    warmup = args.warmup if args.warmup is not None else max(2 * args.concurrency, 100)
    # "<kind>+uvloop": the same client on uvloop's event loop.
    kind, on_uvloop = args.kind.removesuffix("+uvloop"), args.kind.endswith("+uvloop")
    measurement = run(
        kind,
        args.url,
        args.tls_dir,
        args.count,
        args.concurrency,
        warmup,
        args.retry_delay,
        args.distinct_orders,
    )
    if on_uvloop:
        import uvloop

        result = uvloop.run(measurement)
    else:
        result = asyncio.run(measurement)
    result.update(kind=args.kind, concurrency=args.concurrency, first_errors=_FIRST_ERRORS)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
