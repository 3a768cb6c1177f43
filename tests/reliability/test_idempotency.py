"""The idempotency middleware over every store: one refund per key, through crashes and races."""

from __future__ import annotations

import hashlib
import json
import random

import anyio
import attrs
import pytest

from paykit_async.client_base import BaseClient
from paykit_async.errors import IdempotencyConflict, ProviderError, RefundOutcomeUnknown, ValidationError
from paykit_async.pipeline.clock import FakeClock
from paykit_async.pipeline.core import Operation
from paykit_async.pipeline.idempotency import IdempotencyMiddleware, request_fingerprint
from paykit_async.pipeline.retry import RetryPolicy
from paykit_async.pipeline.stores import (
    Claim,
    IdempotencyStore,
    MemoryStore,
    RecordedError,
    RecordedOutcome,
    RecordState,
)
from paykit_async.transport.wire import WireRequest, WireResponse

from ..cancellation import cancel_natively_once_started
from .fake_provider import FakeDialect, FakeProvider, FakeRefundClient, FakeTransport
from .store_wrappers import DelegatingStore

pytestmark = pytest.mark.anyio

ORDERS = {"O1": 1000, "O2": 1000}


def make_client(
    provider: FakeProvider, store: IdempotencyStore, **kwargs: object
) -> tuple[FakeRefundClient, FakeClock]:
    clock = FakeClock()
    client = FakeRefundClient(
        base_url="https://fake.test",
        transport=FakeTransport(provider),
        store=store,
        clock=clock,
        rng=random.Random(3),
        **kwargs,  # type: ignore[arg-type]
    )
    return client, clock


def test_the_fingerprint_is_sha256_of_canonical_json_without_the_refund_number() -> None:
    op = Operation(
        provider="wechatpay",
        name="refund",
        url="https://x.test/refund",
        fields={"total_fee": "100", "out_refund_no": "R1", "refund_fee": "50", "desc": "退款"},
        refund_no_field="out_refund_no",
    )
    canonical = (
        '{"fields":{"desc":"退款","refund_fee":"50","total_fee":"100"},'
        '"name":"refund","provider":"wechatpay"}'
    )
    assert request_fingerprint(op) == hashlib.sha256(canonical.encode()).hexdigest()
    renumbered = Operation(
        provider="wechatpay",
        name="refund",
        url="https://elsewhere.test/refund",
        fields={"refund_fee": "50", "desc": "退款", "out_refund_no": "R2", "total_fee": "100"},
        refund_no_field="out_refund_no",
    )
    assert request_fingerprint(renumbered) == request_fingerprint(op)
    other = Operation(
        provider="wechatpay",
        name="refund",
        url="https://x.test/refund",
        fields={"total_fee": "100", "out_refund_no": "R1", "refund_fee": "51", "desc": "退款"},
        refund_no_field="out_refund_no",
    )
    assert request_fingerprint(other) != request_fingerprint(op)
    assert json.loads(canonical)["fields"]  # the expected text is valid JSON


def test_the_fingerprint_never_includes_the_refund_number() -> None:
    fields = {"total_fee": "100", "out_refund_no": "R1", "refund_fee": "50"}
    chosen = Operation(
        provider="wechatpay", name="refund", url="https://x.test/refund", fields=fields,
        refund_no_field="out_refund_no",
    )  # fmt: skip
    other_number = attrs.evolve(chosen, fields={**fields, "out_refund_no": "R2"})
    assert request_fingerprint(other_number) == request_fingerprint(chosen)


async def test_the_same_key_and_request_replays_without_calling_the_provider(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, store)
    first = await client.refund(order_id="O1", amount=100, key="k1")
    second = await client.refund(order_id="O1", amount=100, key="k1")  # a fresh refund number minted
    assert not first.replayed
    assert second.replayed
    assert second.attempts == 0
    assert second.fields == first.fields
    assert provider.requests["/refund"] == 1
    assert len(provider.ledger) == 1


async def test_the_same_key_with_another_request_conflicts_and_sends_nothing(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, store)
    await client.refund(order_id="O1", amount=100, key="k1")
    with pytest.raises(IdempotencyConflict) as caught:
        await client.refund(order_id="O1", amount=200, key="k1")
    assert caught.value.key == "k1"
    assert provider.requests["/refund"] == 1


async def test_a_definite_refusal_is_recorded_and_replayed(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, store)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            await client.refund(order_id="O1", amount=5000, key="k1")
        assert caught.value.code == "NOT_ENOUGH"
    assert provider.requests["/refund"] == 1
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.FAILED


async def test_an_unknown_outcome_is_resumed_with_the_same_refund_number(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS, fault_rate=1.0, faults=("http_500",))  # executes, then 500s
    client, _ = make_client(provider, store, policy=RetryPolicy(attempts=2))
    operation = client.refund_operation(order_id="O1", amount=100, key="k1")
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await client.pipeline(operation)
    assert caught.value.refund_no == operation.refund_no
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT
    assert record.refund_no == operation.refund_no
    provider.fault_rate = 0.0
    outcome = await client.refund(order_id="O1", amount=100, key="k1")  # another fresh number, ignored
    assert outcome.fields["refund_no"] == operation.refund_no
    assert list(provider.ledger) == [operation.refund_no]
    # The outcome names the number it is about, which is not the one this call was built with.
    assert outcome.refund_no == operation.refund_no
    replayed = await client.refund(order_id="O1", amount=100, key="k1")
    assert replayed.replayed
    assert replayed.refund_no == operation.refund_no


class GatedTransport(FakeTransport):
    """Holds every request until ``gate`` is set."""

    def __init__(self, provider: FakeProvider) -> None:
        super().__init__(provider)
        self.gate = anyio.Event()
        self.arrived = anyio.Event()

    async def send(self, request: WireRequest) -> WireResponse:
        self.arrived.set()
        await self.gate.wait()
        return await super().send(request)


async def test_concurrent_calls_with_one_key_reach_the_provider_once(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS)
    transport = GatedTransport(provider)
    client = FakeRefundClient(
        base_url="https://fake.test", transport=transport, store=store, clock=FakeClock()
    )
    results: list[str] = []
    replays: list[bool] = []

    async def call() -> None:
        outcome = await client.refund(order_id="O1", amount=100, key="k1")
        results.append(outcome.fields["refund_no"])
        replays.append(outcome.replayed)

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(call)
        await transport.arrived.wait()
        await anyio.sleep(0.1)  # the others are now waiting on the claim
        transport.gate.set()
    assert provider.requests["/refund"] == 1
    assert len(set(results)) == 1
    assert sorted(replays) == [False] + [True] * 7


async def test_waiting_too_long_for_another_worker_is_unknown(store: IdempotencyStore) -> None:
    await store.claim("k1", refund_no="RBUSY", fingerprint=_fingerprint("O1", 100), owner="other", lease=60)
    provider = FakeProvider(orders=ORDERS)
    client = FakeRefundClient(base_url="https://fake.test", transport=FakeTransport(provider), store=None)
    middleware = IdempotencyMiddleware(store, wait=0.1)
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await middleware(client.refund_operation(order_id="O1", amount=100, key="k1"), client.pipeline)
    assert caught.value.refund_no == "RBUSY"
    assert provider.requests["/refund"] == 0


async def test_a_crashed_workers_claim_is_taken_over_after_its_lease(store: IdempotencyStore) -> None:
    await store.claim(
        "k1", refund_no="RCRASHED", fingerprint=_fingerprint("O1", 100), owner="dead", lease=0.05
    )
    await anyio.sleep(0.15)
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, store)
    outcome = await client.refund(order_id="O1", amount=100, key="k1")
    assert outcome.fields["refund_no"] == "RCRASHED"
    assert list(provider.ledger) == ["RCRASHED"]


def _fingerprint(order_id: str, amount: int) -> str:
    client = FakeRefundClient(base_url="https://fake.test", transport=FakeTransport(FakeProvider(orders={})))
    return request_fingerprint(client.refund_operation(order_id=order_id, amount=amount))


class BlockingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeping = anyio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeping.set()
        await anyio.sleep_forever()


async def test_cancellation_mid_backoff_leaves_the_record_resumable(store: IdempotencyStore) -> None:
    provider = FakeProvider(orders=ORDERS, fault_rate=1.0, faults=("cut_reply",))  # executed, reply cut
    clock = BlockingClock()
    client = FakeRefundClient(
        base_url="https://fake.test", transport=FakeTransport(provider), store=store, clock=clock
    )
    operation = client.refund_operation(order_id="O1", amount=100, key="k1")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.pipeline, operation)
            await clock.sleeping.wait()
            scope.cancel()
    assert scope.cancelled_caught
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT
    assert record.refund_no == operation.refund_no
    assert record.result is None
    assert record.lease_expires == 0.0  # released: the next call resumes at once

    provider.fault_rate = 0.0
    again, _ = make_client(provider, store)
    outcome = await again.refund(order_id="O1", amount=100, key="k1")
    assert outcome.fields["refund_no"] == operation.refund_no
    assert list(provider.ledger) == [operation.refund_no]
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.SUCCEEDED


async def test_cancellation_while_the_request_is_in_flight_leaves_it_resumable(
    store: IdempotencyStore,
) -> None:
    provider = FakeProvider(orders=ORDERS)
    transport = GatedTransport(provider)
    client = FakeRefundClient(
        base_url="https://fake.test", transport=transport, store=store, clock=FakeClock()
    )
    operation = client.refund_operation(order_id="O1", amount=100, key="k1")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.pipeline, operation)
            await transport.arrived.wait()
            scope.cancel()
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT
    assert record.lease_expires == 0.0
    transport.gate.set()
    outcome = await client.refund(order_id="O1", amount=100, key="k1")
    assert outcome.fields["refund_no"] == operation.refund_no


async def test_calls_without_a_key_and_non_refunds_pass_through(anyio_backend: str) -> None:
    store = MemoryStore()
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, store)
    await client.refund(order_id="O1", amount=100)
    await client.refund(order_id="O2", amount=100)
    query = Operation(provider="fake", name="query", url="https://fake.test/query", fields={"refund_no": "X"})
    middleware = IdempotencyMiddleware(store)
    await middleware(query, client.query_pipeline)
    keyed_query = Operation(
        provider="fake",
        name="query",
        url="https://fake.test/query",
        fields={"refund_no": "X"},
        idempotency_key="q",
    )
    await middleware(keyed_query, client.query_pipeline)
    assert repr(store) == "<MemoryStore 0 key(s)>"
    assert len(provider.ledger) == 2


async def test_an_empty_key_or_missing_refund_number_is_refused_before_io(anyio_backend: str) -> None:
    provider = FakeProvider(orders=ORDERS)
    client, _ = make_client(provider, MemoryStore())
    with pytest.raises(ValidationError):
        await client.refund(order_id="O1", amount=100, key="")
    operation = client.refund_operation(order_id="O1", amount=100, key="k")
    unnumbered = Operation(
        provider=operation.provider,
        name=operation.name,
        url=operation.url,
        fields={k: v for k, v in operation.fields.items() if k != "refund_no"},
        refund_no_field="refund_no",
        idempotency_key="k",
    )
    with pytest.raises(ValidationError):
        await client.pipeline(unnumbered)
    assert sum(provider.requests.values()) == 0


def test_middleware_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        IdempotencyMiddleware(MemoryStore(), lease=0)


async def test_base_client_puts_the_store_outermost(anyio_backend: str) -> None:
    provider = FakeProvider(orders=ORDERS)
    store = MemoryStore()
    client = BaseClient(
        dialect=FakeDialect(),
        base_url="https://fake.test",
        transport=FakeTransport(provider),
        idempotency_store=store,
        clock=FakeClock(),
    )
    assert isinstance(client.pipeline.middlewares[0], IdempotencyMiddleware)
    fields = {"order_id": "O1", "amount": "100", "refund_no": "R-A"}
    operation = Operation(
        provider="fake",
        name="refund",
        url=client._url("/refund"),
        fields=fields,
        refund_no_field="refund_no",
        refund_no_generated=True,
        idempotency_key="k",
    )
    first = await client._call(operation)
    second = await client._call(
        Operation(**{**_as_kwargs(operation), "fields": {**fields, "refund_no": "R-B"}})
    )
    assert second.replayed
    assert second.fields["refund_no"] == first.fields["refund_no"] == "R-A"
    assert list(provider.ledger) == ["R-A"]
    # Choosing the recorded number explicitly (as after RefundOutcomeUnknown.refund_no) is the same
    # refund; choosing another number under the same key is a conflict and sends nothing.
    same = Operation(
        **{**_as_kwargs(operation), "fields": {**fields, "refund_no": "R-A"}, "refund_no_generated": False}
    )
    assert (await client._call(same)).replayed
    chosen = Operation(
        **{**_as_kwargs(operation), "fields": {**fields, "refund_no": "R-C"}, "refund_no_generated": False}
    )
    with pytest.raises(IdempotencyConflict):
        await client._call(chosen)
    assert list(provider.ledger) == ["R-A"]
    await client.aclose()


def _as_kwargs(operation: Operation) -> dict[str, object]:
    return {
        "provider": operation.provider,
        "name": operation.name,
        "url": operation.url,
        "fields": operation.fields,
        "refund_no_field": operation.refund_no_field,
        "refund_no_generated": operation.refund_no_generated,
        "idempotency_key": operation.idempotency_key,
    }


class SlowClaims(DelegatingStore):
    """Wraps a store so that claims take a while (as over a slow network)."""

    def __init__(self, inner: IdempotencyStore, started: anyio.Event) -> None:
        super().__init__(inner)
        self.started = started

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        self.started.set()
        await anyio.sleep(0.05)
        return await self.inner.claim(
            key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=lease
        )


async def test_cancellation_during_a_claim_strands_nothing(store: IdempotencyStore) -> None:
    started = anyio.Event()
    provider = FakeProvider(orders=ORDERS)
    slow = SlowClaims(store, started)
    client = FakeRefundClient(base_url="https://fake.test", transport=FakeTransport(provider), store=slow)
    operation = client.refund_operation(order_id="O1", amount=100, key="k1")
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.pipeline, operation)
            await started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert provider.requests["/refund"] == 0
    record = await store.get("k1")
    assert record is not None  # the claim completed despite the cancellation ...
    assert record.lease_expires == 0.0  # ... and was released, so the next call need not wait
    outcome = await client.refund(order_id="O1", amount=100, key="k1")
    assert outcome.fields["refund_no"] == operation.refund_no


class SlowStoreReplies(DelegatingStore):
    """Wraps a store so that the reply to a claim, or a finish, is slow to come (a slow network):
    a claim is made at once and its reply arrives later; a finish is sent only after a while."""

    def __init__(self, inner: IdempotencyStore, started: anyio.Event, *, slow: str) -> None:
        super().__init__(inner)
        self.started = started
        self.slow = slow

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        claim = await self.inner.claim(
            key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=lease
        )
        if self.slow == "claim":
            self.started.set()
            await anyio.sleep(0.2)
        return claim

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        if self.slow == "finish":
            self.started.set()
            await anyio.sleep(0.2)
        return await self.inner.finish(key, owner=owner, result=result)


async def _cancelled_natively_while_the_store_answers(
    store: IdempotencyStore, anyio_backend: str, phase: str
) -> tuple[FakeProvider, SlowStoreReplies, FakeRefundClient, Operation]:
    """A keyed refund cancelled natively (asyncio's ``Task.cancel()``) while ``store``'s answer to
    its ``phase`` call (claim or finish) is on its way."""
    started = anyio.Event()
    provider = FakeProvider(orders=ORDERS)
    slow = SlowStoreReplies(store, started, slow=phase)
    client = FakeRefundClient(base_url="https://fake.test", transport=FakeTransport(provider), store=slow)
    operation = client.refund_operation(order_id="O1", amount=100, key="k1")
    await cancel_natively_once_started(anyio_backend, started, lambda: client.pipeline(operation))
    return provider, slow, client, operation


async def test_a_native_cancellation_while_a_claim_is_answered_strands_nothing(
    store: IdempotencyStore, anyio_backend: str
) -> None:
    """Cancelled while the store's answer to a claim it made was on its way: the claim used to be
    held for its whole lease (120 s), every call with the key answered "being sent by another
    worker" although nothing was sent. Now it is released, and the next call sends the refund."""
    provider, slow, client, operation = await _cancelled_natively_while_the_store_answers(
        store, anyio_backend, "claim"
    )
    assert provider.requests["/refund"] == 0
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT
    assert record.lease_expires == 0.0  # released: the next call need not wait for the lease
    slow.slow = ""
    outcome = await client.refund(order_id="O1", amount=100, key="k1")
    assert outcome.fields["refund_no"] == operation.refund_no
    assert list(provider.ledger) == [operation.refund_no]


async def test_a_native_cancellation_while_recording_the_outcome_still_records_it(
    store: IdempotencyStore, anyio_backend: str
) -> None:
    """Cancelled after the provider executed the refund, while its outcome was being recorded:
    the record used to stay in flight and claimed for its whole lease (the next call turned away
    as "being sent by another worker"). Now the outcome is recorded and replayed."""
    provider, slow, client, operation = await _cancelled_natively_while_the_store_answers(
        store, anyio_backend, "finish"
    )
    assert list(provider.ledger) == [operation.refund_no]
    record = await store.get("k1")
    assert record is not None
    assert record.state is RecordState.SUCCEEDED
    slow.slow = ""
    outcome = await client.refund(order_id="O1", amount=100, key="k1")
    assert outcome.replayed
    assert outcome.fields["refund_no"] == operation.refund_no
    assert provider.requests["/refund"] == 1
