"""``refund_many`` in a fresh process, for the memory and retry measurements.

``--transport memory``: an in-process transport answering each request with a reply signed for
its ``out_refund_no`` (no sockets), so peak RSS shows what the batch machinery itself holds.
``--transport aiohttp --url URL --tls-dir DIR``: the real client over mutual TLS.

Prints one JSON object: count, ok (succeeded), attempts (requests sent, from
``count_attempts``), wall seconds, client CPU seconds, peak RSS (``ru_maxrss``, KiB) and the
RSS before the batch started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .fixtures import WECHAT_API_KEY, WECHAT_APPID, WECHAT_MCH_ID, paykit_name, wechat_refund_reply

_REFUND_NO = re.compile(rb"<out_refund_no>(?:<!\[CDATA\[)?([^<\]]*)")


class EchoTransport:
    """Answers every WeChat refund with a correctly signed reply for its ``out_refund_no``."""

    def configure(self, settings: object) -> None:
        """Nothing to set up."""

    async def send(self, request: Any) -> Any:
        from paykit_async.transport import WireResponse

        match = _REFUND_NO.search(request.content)
        refund_no = match.group(1).decode() if match else ""
        return WireResponse(
            status_code=200, headers={"content-type": "text/xml"}, content=wechat_refund_reply(refund_no)
        )

    async def aclose(self) -> None:
        """Nothing to close."""


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _requests(count: int, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + count):
        yield {
            "total_fee": 100,
            "refund_fee": 100,
            "out_trade_no": f"T{i:020d}",
            "out_refund_no": f"BENCH{i:019d}",
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from paykit_async import RetryPolicy

    WeChatPayClient = paykit_name("WeChatPayClient", "providers.wechatpay")
    refund_many = paykit_name("refund_many", "batch")
    count_attempts = paykit_name("count_attempts", "batch")
    options: dict[str, Any] = {"middleware": [count_attempts], "max_connections": args.concurrency}
    if args.retry_delay is not None:
        options["retry"] = RetryPolicy(
            attempts=6, initial_delay=args.retry_delay, max_delay=args.retry_delay * 4
        )
    if args.transport == "memory":
        options["transport"] = EchoTransport()
        # The certificate is irrelevant to an in-process transport, but refunds require one.
        from paykit_async import ClientCertificate

        cert = ClientCertificate.from_pem(args.tls_dir / "client.pem", args.tls_dir / "client.key")
        base_url = "https://api.mch.weixin.qq.com"
    else:
        from paykit_async import ClientCertificate

        options["transport"] = paykit_name("AiohttpTransport", "transport.aiohttp_transport")()
        options["ca_file"] = args.tls_dir / "ca.pem"
        cert = ClientCertificate.from_pem(args.tls_dir / "client.pem", args.tls_dir / "client.key")
        base_url = args.url
    ok = attempts = 0
    statuses: dict[str, int] = {}
    async with WeChatPayClient(
        WECHAT_APPID, WECHAT_MCH_ID, WECHAT_API_KEY, cert=cert, base_url=base_url, **options
    ) as client:
        if args.transport != "memory":
            # Open the connections (TLS handshakes) before timing.
            async with refund_many(
                client, _requests(2 * args.concurrency, 10**9), concurrency=args.concurrency
            ) as warm:
                async for _outcome in warm:
                    pass
        rss_before = _rss_kib()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        async with refund_many(client, _requests(args.count), concurrency=args.concurrency) as outcomes:
            async for outcome in outcomes:
                statuses[outcome.status.value] = statuses.get(outcome.status.value, 0) + 1
                if outcome.ok:
                    ok += 1
                elif statuses[outcome.status.value] <= 3:
                    sys.stderr.write(
                        f"{outcome.status.value}: {outcome.error_code} {outcome.error_message}\n"
                    )
                attempts += outcome.attempts or 0
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "count": args.count,
        "ok": ok,
        "statuses": statuses,
        "attempts": attempts,
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": rss_before,
        "peak_rss_kib": _rss_kib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transport", choices=["memory", "aiohttp"], default="memory")
    parser.add_argument("--url", default="")
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--retry-delay", type=float, default=None)
    args = parser.parse_args()
    sys.stdout.write(json.dumps(asyncio.run(run(args))) + "\n")


if __name__ == "__main__":
    main()
