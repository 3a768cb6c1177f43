"""What the integrations cost: OpenTelemetry per refund, and the notification endpoint per delivery.

``python -m benchmarks.integrations [--quick]`` prints two tables, each against a baseline measured
in the same run:

- a WeChat Pay v2 refund through the whole pipeline on an in-memory transport (the canned, signed
  reply of :mod:`benchmarks.cost`): bare, instrumented with the OpenTelemetry API only (no SDK:
  no-op spans) and with the SDK recording into an in-memory exporter and metric reader;
- a PAYJS payment notification: ``parse_notification`` alone, and POSTed through
  :func:`paykit_async.asgi.notification_app` over httpx's ASGI transport (first delivery: verify,
  claim, handler, finish; redelivery: verify, answered from the store), beside a bare ASGI app that
  only answers ``success`` through the same transport.

Figures are medians of per-call means in µs (lower is better).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any
from urllib.parse import urlencode

from . import fixtures as fx
from .cost import REFUND_NO, CannedTransport, _client_certificate, measure_async, wechat_client, wechat_refund


async def _refund_costs(number: int, repeat: int) -> list[tuple[str, float]]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from paykit_async.otel import instrument

    rows = []
    with _client_certificate() as cert:
        for label in ("bare", "instrumented, API only (no-op)", "instrumented, SDK in-memory"):
            client = wechat_client(cert, CannedTransport(fx.wechat_refund_reply(REFUND_NO)))
            exporter = InMemorySpanExporter()
            if label.endswith("(no-op)"):
                instrument(client)
            elif label.endswith("in-memory"):
                tracing = TracerProvider()
                tracing.add_span_processor(SimpleSpanProcessor(exporter))
                instrument(client, tracing, MeterProvider(metric_readers=[InMemoryMetricReader()]))

            async def one(client: Any = client, exporter: InMemorySpanExporter = exporter) -> None:
                await wechat_refund(client)
                exporter.clear()

            async with client:
                rows.append((label, await measure_async(one, number=number, repeat=repeat)))
    return rows


def _payjs_notification(order: str) -> bytes:
    from paykit_async.signing import KeyedMd5Signer

    fields = {
        "return_code": "1",
        "total_fee": "100",
        "out_trade_no": "T1",
        "payjs_order_id": order,
        "transaction_id": "4200000001",
        "time_end": "2024-01-01 12:00:00",
        "openid": "o7LF",
        "mchid": fx.PAYJS_MCHID,
    }
    fields["sign"] = KeyedMd5Signer(key=fx.PAYJS_KEY).sign(fields)
    return urlencode(fields).encode()


async def _notification_costs(number: int, repeat: int) -> list[tuple[str, float]]:
    import httpx

    from paykit_async import PayJSClient
    from paykit_async.asgi import notification_app

    async def handler(_note: Any) -> None:
        return None

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"success"})

    client = PayJSClient(fx.PAYJS_MCHID, fx.PAYJS_KEY)
    endpoint = notification_app(client, handler)
    body = _payjs_notification("P1")
    serial = iter(range(10**9))
    headers = {"content-type": "application/x-www-form-urlencoded"}
    rows = []

    async def parse_only() -> None:
        client.parse_notification(body)

    rows.append(("parse_notification alone", await measure_async(parse_only, number=number, repeat=repeat)))
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://shop") as plain,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=endpoint), base_url="http://shop") as shop,
    ):

        async def baseline() -> None:
            await plain.post("/", content=body, headers=headers)

        async def first() -> None:
            answer = await shop.post("/", content=_payjs_notification(f"P{next(serial)}"), headers=headers)
            assert answer.content == b"success"

        async def again() -> None:
            answer = await shop.post("/", content=body, headers=headers)
            assert answer.content == b"success"

        rows.append(
            ("bare ASGI app, same transport", await measure_async(baseline, number=number, repeat=repeat))
        )
        rows.append(
            ("notification_app, first delivery", await measure_async(first, number=number, repeat=repeat))
        )
        rows.append(
            ("notification_app, redelivery", await measure_async(again, number=number, repeat=repeat))
        )
    await client.aclose()
    return rows


def _table(title: str, rows: list[tuple[str, float]]) -> str:
    base = rows[0][1]
    lines = [f"{title}", f"{'':2}{'case':<40}{'µs/call':>10}{'× first row':>14}"]
    lines += [f"{'':2}{label:<40}{us:>10.1f}{us / base:>14.2f}" for label, us in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.integrations", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    number, repeat = (300, 3) if args.quick else (2000, 7)
    print(_table("WeChat Pay v2 refund, in-memory transport", asyncio.run(_refund_costs(number, repeat))))
    print()
    print(_table("PAYJS payment notification", asyncio.run(_notification_costs(number, repeat))))


if __name__ == "__main__":
    main()
