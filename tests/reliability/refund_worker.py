"""A worker process for the crash and multi-worker tests: refunds orders through a real HTTP server.

Usage: python refund_worker.py BASE_URL STORE BACKEND LEASE OUT ORDER:AMOUNT...

``STORE`` is ``sqlite:PATH`` or ``redis:URL|PREFIX``; ``LEASE`` the claim lease in seconds. Each
order is refunded with idempotency key ``key-ORDER`` and a freshly generated refund number, as a
real caller would after a restart; one JSON line per finished refund is appended to ``OUT``
(flushed at once, so a killed worker leaves what it finished). The repository root must be on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import sys

import anyio

from paykit_async.pipeline.retry import RetryPolicy
from paykit_async.pipeline.stores import RedisStore, SQLiteStore
from paykit_async.pipeline.stores.base import IdempotencyStore
from paykit_async.transport.httpx_transport import HttpxTransport
from tests.reliability.fake_provider import FakeRefundClient

CONCURRENCY = 4


def _store(spec: str) -> IdempotencyStore:
    kind, _, rest = spec.partition(":")
    if kind == "sqlite":
        return SQLiteStore(rest)
    url, _, prefix = rest.partition("|")
    return RedisStore(url, prefix=prefix)


async def main(base_url: str, store_spec: str, lease: float, out: str, orders: list[tuple[str, int]]) -> None:
    store = _store(store_spec)
    client = FakeRefundClient(
        base_url=base_url,
        transport=HttpxTransport(),
        store=store,
        policy=RetryPolicy(initial_delay=0.01, max_delay=0.05, attempts=6),
        lease=lease,
    )
    limiter = anyio.CapacityLimiter(CONCURRENCY)
    with open(out, "a", encoding="utf-8") as sink:  # noqa: ASYNC230 - tiny appends

        async def one(order_id: str, amount: int) -> None:
            async with limiter:
                outcome = await client.refund(order_id=order_id, amount=amount, key=f"key-{order_id}")
                line = {
                    "pid": os.getpid(),
                    "order_id": order_id,
                    "refund_no": outcome.fields["refund_no"],
                    "replayed": outcome.replayed,
                }
                sink.write(json.dumps(line) + "\n")
                sink.flush()
                os.fsync(sink.fileno())

        async with anyio.create_task_group() as tg:
            for order_id, amount in orders:
                tg.start_soon(one, order_id, amount)
    await client.aclose()
    await store.aclose()


if __name__ == "__main__":
    base_url, store_spec, backend, lease, out, *specs = sys.argv[1:]
    parsed = [(spec.split(":")[0], int(spec.split(":")[1])) for spec in specs]
    anyio.run(main, base_url, store_spec, float(lease), out, parsed, backend=backend)
