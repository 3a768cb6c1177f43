"""PAYJS refunds with an idempotency store: the order number is the refund's identity."""

from __future__ import annotations

import attrs
import pytest

from paykit_async.errors import IdempotencyConflict
from paykit_async.pipeline import FakeClock
from paykit_async.pipeline.stores import MemoryStore
from paykit_async.providers.payjs import PayJSClient

from ..servers import ScriptedServer
from .payjs_fixtures import KEY, MCHID, ORDER_ID, refund_reply
from .test_client import Routes, received

pytestmark = pytest.mark.anyio

OTHER_ORDER = "2019051812345678901234567890ABCE"


def make_client(server: ScriptedServer, store: MemoryStore) -> PayJSClient:
    return PayJSClient(
        MCHID,
        KEY,
        base_url=server.base_url,
        ca_file=server.tls.ca_file,
        idempotency_store=store,
        clock=FakeClock(),
    )


async def test_a_keyed_refund_is_replayed_without_calling_payjs_again(payjs_server: ScriptedServer) -> None:
    Routes(payjs_server).add("refund", refund_reply())
    store = MemoryStore()
    async with make_client(payjs_server, store) as client:
        first = await client.refund(payjs_order_id=ORDER_ID, idempotency_key="refund-order-1")
        again = await client.refund(payjs_order_id=ORDER_ID, idempotency_key="refund-order-1")
    assert attrs.evolve(again, attempts=first.attempts, replayed=False) == first
    assert (first.attempts, first.replayed) == (1, False)
    assert (again.attempts, again.replayed) == (0, True)
    assert len(payjs_server.app.requests) == 1


async def test_one_key_reused_for_another_order_is_a_conflict(payjs_server: ScriptedServer) -> None:
    # For PAYJS the order is the refund's identity, so it is part of the request fingerprint: a
    # key reused for another order must neither replay the first order's result nor refund it.
    routes = Routes(payjs_server)
    routes.add("refund", refund_reply())
    store = MemoryStore()
    async with make_client(payjs_server, store) as client:
        first = await client.refund(payjs_order_id=ORDER_ID, idempotency_key="same-key")
        with pytest.raises(IdempotencyConflict):
            await client.refund(payjs_order_id=OTHER_ORDER, idempotency_key="same-key")
    assert first.payjs_order_id == ORDER_ID
    (only,) = payjs_server.app.requests
    received(only, "refund", ORDER_ID)
