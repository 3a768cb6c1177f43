"""EftPayClient with an idempotency store: one refund number per key, across calls."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from paykit_async import FakeClock, RefundOutcomeUnknown, RetryPolicy
from paykit_async.pipeline.stores import MemoryStore
from paykit_async.providers.eftpay import EftPayClient

from ..servers import RecordedRequest
from .conftest import EftPayServer
from .helpers import SECRET, USER_CONFIRM_KEY, accepted_refund, json_reply

pytestmark = pytest.mark.anyio

ARGS: dict[str, Any] = {
    "paytype": "Alipay",
    "payment_type": "ALIPAYHK",
    "out_trade_no": "T-IDEM-1",
    "transaction_amount": Decimal("5.00"),
    "total_fee": Decimal("5.00"),
    "idempotency_key": "order-T-IDEM-1-refund-1",
}


def make_client(server: EftPayServer) -> EftPayClient:
    return EftPayClient(
        USER_CONFIRM_KEY,
        SECRET,
        base_url=server.base_url,
        ca_file=server.ca_file,
        idempotency_store=MemoryStore(),
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
        clock=FakeClock(),
    )


async def test_same_key_replays_without_a_second_refund(eftpay_server: EftPayServer) -> None:
    eftpay_server.app.respond = lambda request: json_reply(accepted_refund(request.body))
    async with make_client(eftpay_server) as client:
        first = await client.refund(**ARGS)
        second = await client.refund(**ARGS)
    assert len(eftpay_server.app.requests) == 1
    assert second.replayed
    assert second.refund_no == first.refund_no
    assert second.signature_rule is None  # replayed from the store, not received now


async def test_same_key_resumes_the_recorded_refund_no(eftpay_server: EftPayServer) -> None:
    outage = True

    def respond(request: RecordedRequest) -> Any:
        if outage:
            return 503, {}, b"down"
        return json_reply(accepted_refund(request.body))

    eftpay_server.app.respond = respond
    async with make_client(eftpay_server) as client:
        with pytest.raises(RefundOutcomeUnknown) as info:
            await client.refund(**ARGS)
        outage = False
        result = await client.refund(**ARGS)  # mints a new number, but the key fixes the old one
    numbers = {
        json.loads(r.body)["refund_no"] for r in eftpay_server.app.requests if "refund_no" in r.body.decode()
    }
    assert numbers == {info.value.refund_no}
    assert result.refund_no == info.value.refund_no
