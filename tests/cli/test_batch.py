"""refund_many: outcomes per request, bounded concurrency, ordering, rate limits, cancellation."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from paykit_async.batch import (
    BatchOutcome,
    BatchStatus,
    RateLimiter,
    RefundNumberRule,
    count_attempts,
    refund_many,
    refund_number_rule,
)
from paykit_async.errors import ValidationError
from paykit_async.pipeline import FakeClock

from .fakes import FakeRefundClient, LedgerTransport

pytestmark = pytest.mark.anyio


def _request(i: int, behaviour: str = "ok", **extra: Any) -> dict[str, Any]:
    return {"out_trade_no": f"T{i}", "amount": 100 + i, "behaviour": behaviour, **extra}


def _live_tasks() -> int:
    """How many tasks exist right now, on whichever backend runs the test."""
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        import trio

        def count(task: trio.lowlevel.Task) -> int:
            return 1 + sum(count(child) for n in task.child_nurseries for child in n.child_tasks)

        root = trio.lowlevel.current_root_task()
        assert root is not None
        return count(root)


async def _collect(batch: Any) -> list[BatchOutcome]:
    async with batch as outcomes:
        return [outcome async for outcome in outcomes]


async def test_every_request_gets_exactly_one_outcome_of_the_right_kind() -> None:
    transport = LedgerTransport()
    requests: list[Any] = [
        _request(0),
        _request(1, "refuse"),
        _request(2, "lost"),
        _request(3, "flaky"),
        _request(4, amount=0),  # the client refuses it before any I/O
        _request(5, colour="red"),  # not a refund() argument
        "not a mapping",
        _request(7, out_refund_no="MYOWNNUMBER7"),
    ]
    async with FakeRefundClient(transport, middleware=[count_attempts]) as client:
        outcomes = await _collect(refund_many(client, requests, concurrency=3))

    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == list(range(len(requests)))
    status = {i: o.status for i, o in by_index.items()}
    assert status == {
        0: BatchStatus.SUCCEEDED,
        1: BatchStatus.FAILED,
        2: BatchStatus.UNKNOWN,
        3: BatchStatus.SUCCEEDED,
        4: BatchStatus.INVALID,
        5: BatchStatus.INVALID,
        6: BatchStatus.INVALID,
        7: BatchStatus.SUCCEEDED,
    }
    assert by_index[1].error_code == "NOTENOUGH"
    assert by_index[1].error_message == "balance too low"
    assert by_index[2].error_code == "RefundOutcomeUnknown"
    assert by_index[4].error_message is not None
    assert "amount" in by_index[4].error_message
    assert by_index[5].error_message is not None
    assert "colour" in by_index[5].error_message
    # Attempts come from the count_attempts middleware: the flaky one needed a retry.
    assert by_index[0].attempts == 1
    assert by_index[3].attempts == 2
    assert by_index[2].attempts == 3
    # Refund numbers: fixed before sending, kept when given, unique, used on the wire.
    assert by_index[7].refund_no == "MYOWNNUMBER7"
    sent = [o.refund_no for o in outcomes if o.status is not BatchStatus.INVALID]
    assert all(sent)
    assert len(set(sent)) == len(sent)
    assert by_index[0].result["refund_id"] == f"P{by_index[0].refund_no}"
    assert by_index[0].request["out_refund_no"] == by_index[0].refund_no
    # The unknown one was executed by the provider: its number is what lets it be settled.
    assert transport.executions[by_index[2].refund_no or ""] == 1
    assert max(transport.executions.values()) == 1
    # Nothing invalid reached the wire.
    assert transport.sends == 1 + 1 + 3 + 2 + 1


async def test_a_plain_batch_gives_the_outcomes_of_the_general_path() -> None:
    # Without a store, rate limit, on_start or attempt counting, refund_many awaits each refund
    # directly (fewer frames per request); the outcomes must be those of the general path.
    requests: list[Any] = [
        _request(0),
        _request(1, "refuse"),
        _request(2, "lost"),
        _request(3, "flaky"),
        _request(4, amount=0),
        _request(5, colour="red"),
        "not a mapping",
        _request(7, out_refund_no="MYOWNNUMBER7"),
    ]

    async def journal(_index: int, _request: Any, _refund_no: str | None) -> None:
        return None

    def shape(outcome: BatchOutcome) -> tuple[Any, ...]:
        return (
            outcome.index,
            outcome.status,
            outcome.error_code,
            outcome.error_message if outcome.status is BatchStatus.INVALID else None,
            outcome.attempts,
            outcome.refund_no is not None,
            sorted(outcome.request),
            type(outcome.error).__name__,
        )

    shapes = []
    for on_start in (None, journal):
        async with FakeRefundClient(LedgerTransport()) as client:
            batch = refund_many(client, requests, concurrency=3, on_start=on_start)
            assert batch._direct is (on_start is None)
            outcomes = await _collect(batch)
        shapes.append(sorted(shape(outcome) for outcome in outcomes))
    assert shapes[0] == shapes[1]
    assert {row[1] for row in shapes[0]} == set(BatchStatus) - {BatchStatus.READY}


async def test_concurrency_is_bounded_and_requests_are_pulled_lazily() -> None:
    transport = LedgerTransport()
    pulled = 0

    def requests() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield _request(i)

    async with (
        FakeRefundClient(transport) as client,
        refund_many(client, requests(), concurrency=5) as outcomes,
    ):
        first = await outcomes.__anext__()
        # Only what the workers and the bounded result stream can hold has been pulled.
        assert pulled <= 5 + 5 + 5 + 1
        rest = [o async for o in outcomes]
    assert first.status is BatchStatus.SUCCEEDED
    assert len(rest) == 199
    assert transport.max_active <= 5
    assert transport.max_active > 1


async def test_async_iterables_are_accepted() -> None:
    async def requests() -> AsyncIterator[dict[str, Any]]:
        for i in range(30):
            await anyio.lowlevel.checkpoint()
            yield _request(i)

    async with FakeRefundClient(LedgerTransport()) as client:
        outcomes = await _collect(refund_many(client, requests(), concurrency=4))
    assert sorted(o.index for o in outcomes) == list(range(30))
    assert {o.status for o in outcomes} == {BatchStatus.SUCCEEDED}
    assert [o.request["out_trade_no"] for o in sorted(outcomes, key=lambda o: o.index)] == [
        f"T{i}" for i in range(30)
    ]


async def test_ordered_mode_yields_in_request_order_even_when_the_first_is_slow() -> None:
    transport = LedgerTransport()
    requests = [_request(0, "hang")] + [_request(i) for i in range(1, 40)]
    seen: list[int] = []
    async with FakeRefundClient(transport) as client, anyio.create_task_group() as tg:

        async def release_when_others_ran() -> None:
            await transport.wait_for(lambda t: t.sends >= 8)
            transport.release.set()

        tg.start_soon(release_when_others_ran)
        async with refund_many(client, requests, concurrency=4, ordered=True) as outcomes:
            async for outcome in outcomes:
                seen.append(outcome.index)
    assert seen == list(range(40))
    # Others ran while the first hung, but never more than the ordering window ahead.
    assert transport.sends >= 8


async def test_unordered_mode_does_not_wait_for_a_slow_request() -> None:
    transport = LedgerTransport()
    requests = [_request(0, "hang")] + [_request(i) for i in range(1, 10)]
    async with (
        FakeRefundClient(transport) as client,
        refund_many(client, requests, concurrency=2) as outcomes,
    ):
        first_nine = [await outcomes.__anext__() for _ in range(9)]
        transport.release.set()
        last = [o async for o in outcomes]
    assert sorted(o.index for o in first_nine) == list(range(1, 10))
    assert [o.index for o in last] == [0]


async def test_cancelling_the_caller_leaves_no_task_behind_and_names_the_started_refunds() -> None:
    transport = LedgerTransport()
    journal: dict[int, str | None] = {}

    async def on_start(index: int, request: Any, refund_no: str | None) -> None:
        journal[index] = refund_no

    requests = [_request(i, "hang" if i >= 3 else "ok") for i in range(100)]
    before = _live_tasks()
    received: list[BatchOutcome] = []
    async with FakeRefundClient(transport) as client:
        batch = refund_many(client, requests, concurrency=6, on_start=on_start)
        with anyio.CancelScope() as scope:
            async with batch as outcomes:
                async for outcome in outcomes:
                    received.append(outcome)
                    if len(received) == 3:
                        await transport.wait_for(lambda t: t.active >= 6)
                        scope.cancel()
        assert scope.cancelled_caught
        assert _live_tasks() == before
        assert transport.active == 0
    assert [o.index for o in received] == [0, 1, 2] or sorted(o.index for o in received) == [0, 1, 2]
    # Six refunds were on the wire when the caller was cancelled; each was journalled with its
    # refund number before sending, and the batch names them as in flight.
    assert sorted(batch.in_flight) == [3, 4, 5, 6, 7, 8]
    assert {i: journal[i] for i in batch.in_flight} == batch.in_flight
    assert all(batch.in_flight.values())
    assert batch.started == 9
    assert sorted(journal) == list(range(9))


async def test_leaving_the_block_early_cancels_the_rest() -> None:
    transport = LedgerTransport()
    before = _live_tasks()
    async with FakeRefundClient(transport) as client:
        async with refund_many(client, (_request(i) for i in range(10_000)), concurrency=8) as outcomes:
            async for outcome in outcomes:
                if outcome.index >= 0:
                    break
        assert _live_tasks() == before
    assert transport.sends < 100


async def test_an_error_in_the_callers_body_propagates_and_stops_the_batch() -> None:
    transport = LedgerTransport()

    async def consume(client: FakeRefundClient) -> None:
        async with refund_many(client, [_request(i) for i in range(1000)], concurrency=4) as outcomes:
            async for _outcome in outcomes:
                raise KeyError("caller bug")

    async with FakeRefundClient(transport) as client:
        with pytest.raises(KeyError):
            await consume(client)
    assert transport.sends < 1000


async def test_a_failing_journal_stops_the_batch_instead_of_sending_unrecorded_refunds() -> None:
    transport = LedgerTransport()

    async def on_start(index: int, request: Any, refund_no: str | None) -> None:
        if index == 5:
            raise OSError("disk full")

    async with FakeRefundClient(transport) as client:
        with pytest.raises(Exception) as caught:
            await _collect(refund_many(client, [_request(i) for i in range(50)], on_start=on_start))
    assert caught.group_contains(OSError)
    assert transport.sends < 50


async def test_rate_limit_spaces_requests() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    async with FakeRefundClient(LedgerTransport()) as client:
        outcomes = await _collect(
            refund_many(client, [_request(i) for i in range(21)], concurrency=4, rate=limiter)
        )
    assert len(outcomes) == 21
    # 21 requests at 10/s: the first goes at once, the other 20 take 2 seconds of waiting.
    assert clock.now() == pytest.approx(2.0)


async def test_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, burst=3, clock=clock)
    for _ in range(3):
        await limiter.acquire()
    assert clock.sleeps == []
    await limiter.acquire()
    await limiter.acquire()
    assert clock.now() == pytest.approx(0.5)


def test_bad_arguments_are_validation_errors() -> None:
    client = object()
    with pytest.raises(ValidationError):
        refund_many(client, [], concurrency=0)  # type: ignore[arg-type]

    class PooledClient(_InstantClient):
        max_connections = 10

    with pytest.raises(ValidationError, match="connection pool"):
        refund_many(PooledClient(), [], concurrency=11)
    refund_many(PooledClient(), [], concurrency=10)
    # A rate or buffer of the wrong kind failed only later, inside a worker or on entering.
    for bad in ("10", True, object()):
        with pytest.raises(ValidationError, match="rate"):
            refund_many(client, [], rate=bad)  # type: ignore[arg-type]
    for bad_buffer in (-1, 1.5, True):
        with pytest.raises(ValidationError, match="buffer"):
            refund_many(client, [], buffer=bad_buffer)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RateLimiter(0)
    with pytest.raises(ValidationError):
        RateLimiter(float("nan"))


def test_refund_number_rules_follow_the_provider() -> None:
    from paykit_async.providers.eftpay import EftPayClient
    from paykit_async.providers.payjs import PayJSClient
    from paykit_async.providers.wechatpay import WeChatPayClient

    # The rule is declared by each client class, so it is found on instances without any I/O.
    wechat = refund_number_rule(WeChatPayClient.__new__(WeChatPayClient))
    assert wechat is not None
    assert wechat.field == "out_refund_no"
    fixed, number = wechat.fix({"total_fee": 1})
    assert number is not None
    assert fixed["out_refund_no"] == number
    assert len(number) <= 64
    eft = refund_number_rule(EftPayClient.__new__(EftPayClient))
    assert eft is not None
    _, number = eft.fix({})
    assert number is not None
    assert eft.field == "refund_no"
    assert len(number) <= 28
    payjs = refund_number_rule(PayJSClient.__new__(PayJSClient))
    assert (payjs.field, payjs.generated, payjs.provider) == ("payjs_order_id", False, "payjs")
    assert payjs.fix({"payjs_order_id": "X1"}) == ({"payjs_order_id": "X1"}, "X1")
    assert payjs.fix({}) == ({}, None)
    assert refund_number_rule(object()) is None


class _InstantClient:
    """The cheapest possible client, so the measurement is about refund_many itself."""

    refund_number_rule = RefundNumberRule(field="out_refund_no")

    def __init__(self) -> None:
        self.calls = 0

    async def refund(self, *, out_trade_no: str, amount: int, out_refund_no: str, behaviour: str) -> str:
        self.calls += 1
        await anyio.lowlevel.checkpoint()
        return out_refund_no


async def _peak_memory(count: int) -> tuple[int, int]:
    client = _InstantClient()

    def requests() -> Iterator[dict[str, Any]]:
        for i in range(count):
            # Numbers given up front: minting 50,000 random ones is not what is measured here.
            yield _request(i, out_refund_no=f"R{i:031d}")

    succeeded = 0
    tracemalloc.start()
    try:
        async with refund_many(client, requests(), concurrency=32) as outcomes:
            async for outcome in outcomes:
                succeeded += outcome.ok
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.calls == count
    return peak, succeeded


@pytest.mark.slow
async def test_memory_stays_flat_as_the_batch_grows() -> None:
    small_peak, small_ok = await _peak_memory(5_000)
    large_peak, large_ok = await _peak_memory(50_000)
    assert (small_ok, large_ok) == (5_000, 50_000)
    assert large_peak <= 1.5 * small_peak, (small_peak, large_peak)


async def test_keyed_refunds_resume_with_the_recorded_number_and_replay_finished_ones() -> None:
    from paykit_async.pipeline.stores import MemoryStore

    store = MemoryStore()
    transport = LedgerTransport()
    requests = [_request(i, "lost" if i == 2 else "ok") for i in range(4)]

    def key(index: int, request: Any) -> str:
        return f"batch-1:{index}"

    async with FakeRefundClient(transport, idempotency_store=store) as client:
        first = {o.index: o for o in await _collect(refund_many(client, requests, idempotency_key=key))}
        # Every started refund is recorded in the store with its number before it was sent.
        for index, outcome in first.items():
            record = await store.get(f"batch-1:{index}")
            assert record is not None
            assert record.refund_no == outcome.refund_no
        assert first[2].status is BatchStatus.UNKNOWN
        sends = transport.sends
        # Run the same batch again: fresh numbers would be minted, but the keys win.
        transport_fixed = {o.refund_no for o in first.values()}
        second = {o.index: o for o in await _collect(refund_many(client, requests, idempotency_key=key))}
    assert {i: o.refund_no for i, o in second.items()} == {i: o.refund_no for i, o in first.items()}
    assert {o.refund_no for o in second.values()} == transport_fixed
    assert second[0].status is BatchStatus.SUCCEEDED
    assert second[0].result["refund_id"] == first[0].result["refund_id"]
    # Finished refunds were replayed from the store: only the unknown one went out again
    # (three attempts, under its recorded number).
    assert transport.sends - sends == 3
    assert second[2].status is BatchStatus.UNKNOWN
    assert max(transport.executions.values()) == 1


async def test_invalid_request_placeholders_get_their_own_outcome() -> None:
    from paykit_async.batch import InvalidRequest

    requests: list[Any] = [_request(0), InvalidRequest(reason="row 2: amount is not a number"), _request(2)]
    async with FakeRefundClient(LedgerTransport()) as client:
        outcomes = sorted(await _collect(refund_many(client, requests)), key=lambda o: o.index)
    assert [o.status for o in outcomes] == [BatchStatus.SUCCEEDED, BatchStatus.INVALID, BatchStatus.SUCCEEDED]
    assert outcomes[1].error_message == "row 2: amount is not a number"


async def test_a_refusal_after_an_attempt_that_may_have_executed_is_not_a_definite_failure() -> None:
    transport = LedgerTransport()
    async with FakeRefundClient(transport) as client:
        (outcome,) = await _collect(refund_many(client, [_request(0, "busy_after_lost")]))
    # The first attempt did the work (its reply was lost); the retry was refused. Calling that a
    # failure would hide a payout, so the outcome is unknown, with the refund number to settle it.
    assert transport.executions[outcome.refund_no or ""] == 1
    assert outcome.status is BatchStatus.UNKNOWN
    assert outcome.error_code == "RefundOutcomeUnknown"


async def test_cancelled_refunds_stay_recorded_in_the_clients_idempotency_store() -> None:
    from paykit_async.pipeline.stores import MemoryStore, RecordState

    store = MemoryStore()
    transport = LedgerTransport()
    requests = [_request(i, "hang") for i in range(20)]

    def key(index: int, request: Any) -> str:
        return f"cancel-test:{index}"

    async with FakeRefundClient(transport, idempotency_store=store) as client:
        batch = refund_many(client, requests, concurrency=4, idempotency_key=key)
        with anyio.CancelScope() as scope:
            async with batch as outcomes:
                await transport.wait_for(lambda t: t.active >= 4)
                scope.cancel()
                async for _ in outcomes:
                    pytest.fail("nothing completes: every refund hangs")
        assert transport.active == 0
    assert sorted(batch.in_flight) == [0, 1, 2, 3]
    for index, refund_no in batch.in_flight.items():
        record = await store.get(f"cancel-test:{index}")
        assert record is not None
        # Left in flight with its refund number, claim released: the next run resumes it.
        assert record.state is RecordState.IN_FLIGHT
        assert record.refund_no == refund_no
        assert record.lease_expires == 0.0
    assert await store.get("cancel-test:4") is None


async def test_a_request_whose_key_cannot_be_derived_fails_alone_and_the_others_are_reported() -> None:
    """A value the content key cannot hash (a dict with mixed key types) raised a TypeError in a
    worker: the whole batch stopped, and a refund already executed was never reported."""
    transport = LedgerTransport()
    requests: list[Any] = [
        _request(0),
        _request(1, behaviour={1: "a", "b": 2}),  # type: ignore[arg-type]
        _request(2),
    ]
    async with FakeRefundClient(transport) as client:
        outcomes = await _collect(refund_many(client, requests, batch_id="b", concurrency=1))

    by_index = {o.index: o for o in outcomes}
    assert [by_index[i].status for i in range(3)] == [
        BatchStatus.SUCCEEDED,
        BatchStatus.INVALID,
        BatchStatus.SUCCEEDED,
    ]
    assert by_index[1].error_message is not None
    assert "nothing was sent" in by_index[1].error_message
    assert isinstance(by_index[1].error, ValidationError)
    assert sorted(transport.executions) == sorted(str(by_index[i].refund_no) for i in (0, 2))


async def test_an_idempotency_key_callback_that_raises_fails_only_its_request() -> None:
    transport = LedgerTransport()

    def key(index: int, request: Any) -> str:
        if index == 1:
            raise LookupError("no key for this one")
        return f"k{index}"

    async with FakeRefundClient(transport) as client:
        outcomes = await _collect(refund_many(client, [_request(i) for i in range(3)], idempotency_key=key))
    status = {o.index: o.status for o in outcomes}
    assert status == {0: BatchStatus.SUCCEEDED, 1: BatchStatus.INVALID, 2: BatchStatus.SUCCEEDED}
    assert len(transport.executions) == 2


def test_an_amount_beyond_the_decimal_range_has_a_key_not_an_overflow() -> None:
    """eftPay amounts are decimal text: '1e9999999' in a CSV cell raised decimal.Overflow out of
    the key derivation and refused the whole file with 'Overflow: [<class ...>]'."""
    from paykit_async.batch import refund_key
    from paykit_async.providers.eftpay.client import EftPayClient

    request = {"out_trade_no": "E1", "transaction_amount": "1e9999999", "total_fee": "12.34"}
    key = refund_key(EftPayClient, request, batch_id="csv")
    assert key.startswith("csv:")
    assert key != refund_key(EftPayClient, {**request, "transaction_amount": "1e999999"}, batch_id="csv")


async def test_a_huge_concurrency_starts_no_more_workers_than_there_are_requests() -> None:
    """concurrency=10**6 started a million worker tasks for three requests (gigabytes, minutes)."""
    transport = LedgerTransport()
    tasks: list[int] = []

    async def refund(**fields: Any) -> Any:
        tasks.append(_live_tasks())
        return await client.refund(**fields)

    class Shim:
        pass

    shim = Shim()
    shim.refund = refund  # type: ignore[attr-defined]
    async with FakeRefundClient(transport) as client:
        requests = [_request(i, out_refund_no=f"HUGE{i}") for i in range(3)]
        batch = refund_many(shim, requests, concurrency=10**6)  # type: ignore[arg-type]
        outcomes = await _collect(batch)
    assert [o.status for o in outcomes] == [BatchStatus.SUCCEEDED] * 3
    assert batch._spawned <= 4
    assert max(tasks) < 50


@pytest.mark.parametrize("kind", ["plain", "async"])
async def test_an_iterable_that_raises_midway_lets_the_refunds_in_flight_finish_and_report(kind: str) -> None:
    """The requests' iterable raising (a CSV unreadable past row N, a database cursor lost) raised
    in a worker and cancelled the refunds in flight: sent, perhaps executed, never reported. Now
    no further request is taken, those in flight finish with their outcomes, then the iteration
    raises the iterable's own error (not wrapped in an exception group)."""
    transport = LedgerTransport()
    raising = anyio.Event()
    broken = OSError("the file went away")

    def plain() -> Iterator[dict[str, Any]]:
        yield _request(0, "hang")
        yield _request(1)
        raising.set()
        raise broken

    async def asynchronous() -> AsyncIterator[dict[str, Any]]:
        for request in plain():
            await anyio.lowlevel.checkpoint()
            yield request

    async def release_after_the_error() -> None:
        await raising.wait()
        await transport.wait_for(lambda t: t.active >= 1)
        transport.release.set()

    seen: list[BatchOutcome] = []
    async with FakeRefundClient(transport) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(release_after_the_error)
        batch = refund_many(client, plain() if kind == "plain" else asynchronous(), concurrency=4)
        caught: BaseException | None = None
        try:
            async with batch as outcomes:
                async for outcome in outcomes:
                    seen.append(outcome)
        except OSError as error:
            caught = error
    assert caught is broken
    assert {o.index: o.status for o in seen} == {0: BatchStatus.SUCCEEDED, 1: BatchStatus.SUCCEEDED}
    assert batch.in_flight == {}
    assert sorted(transport.executions) == sorted(str(o.refund_no) for o in seen)


async def test_each_outcome_keeps_the_request_as_sent_when_the_iterable_reuses_one_dict() -> None:
    """An iterable that fills one dict per request: a request that carried its own refund number
    was kept by reference, so its outcome's ``request`` showed a later row — re-sending an unknown
    outcome's request refunded that other row, and the unknown refund was reported settled."""
    transport = LedgerTransport()

    def reused() -> Iterator[dict[str, Any]]:
        row: dict[str, Any] = {}
        for i in range(6):
            row.clear()
            row.update(_request(i, "lost" if i == 0 else "ok", out_refund_no=f"OWN{i}"))
            yield row

    async with FakeRefundClient(transport) as client:
        outcomes = await _collect(refund_many(client, reused(), concurrency=2))
        for outcome in outcomes:
            assert outcome.request["out_refund_no"] == outcome.refund_no == f"OWN{outcome.index}"
            assert outcome.request["out_trade_no"] == f"T{outcome.index}"
        (unknown,) = [o for o in outcomes if o.status is BatchStatus.UNKNOWN]
        (again,) = await _collect(refund_many(client, [unknown.request]))
    assert again.refund_no == "OWN0"
    assert transport.seen["OWN0"] > 1


@pytest.mark.parametrize("ordered", [False, True])
async def test_leaving_early_names_every_refund_sent_whose_outcome_was_not_handed_out(ordered: bool) -> None:
    """``in_flight`` is what the caller must settle after leaving early. A refund that had finished
    but whose outcome still sat in the stream's buffer (or was held back for ordering) was in
    neither: executed, never reported, and its (random) number lost — re-sending the requests
    without an outcome would refund it again under a new number."""
    transport = LedgerTransport()
    delivered: list[BatchOutcome] = []
    async with FakeRefundClient(transport) as client:
        batch = refund_many(client, (_request(i) for i in range(1_000)), concurrency=8, ordered=ordered)
        async with batch as outcomes:
            async for outcome in outcomes:
                delivered.append(outcome)
                for _ in range(100):  # the workers finish refunds and fill the buffer meanwhile
                    await anyio.lowlevel.checkpoint()
                if len(delivered) == 2:
                    break
    reported = {str(o.refund_no) for o in delivered} | {str(n) for n in batch.in_flight.values()}
    assert len(transport.executions) > len(delivered)
    assert set(transport.executions) <= reported
    assert not {o.index for o in delivered} & set(batch.in_flight)


async def test_a_validation_error_after_a_request_went_out_is_unknown_not_invalid() -> None:
    """INVALID means nothing was sent. A client that raises ValidationError after sending (a reply
    field it cannot type) was reported INVALID though the refund was executed; with the attempts
    counted, the batch knows a request went out and reports UNKNOWN under the refund's number."""
    transport = LedgerTransport()

    class StrictReplies(FakeRefundClient):
        async def refund(self, **fields: Any) -> dict[str, Any]:
            result = await super().refund(**fields)
            if fields["out_trade_no"] == "T1":
                raise ValidationError("refund_fee in the reply is not a number", field="refund_fee")
            return result

    async with StrictReplies(transport, middleware=[count_attempts]) as client:
        outcomes = await _collect(refund_many(client, [_request(0), _request(1), _request(2, amount=0)]))
    by_index = {o.index: o for o in outcomes}
    assert by_index[1].status is BatchStatus.UNKNOWN
    assert by_index[1].refund_no in transport.executions
    assert by_index[1].as_record(2)["status"] == "unknown"
    assert by_index[2].status is BatchStatus.INVALID  # refused before any I/O: still INVALID
    assert by_index[2].attempts == 0
