"""Every idempotency store keeps the one protocol: atomic claims, leases, final results."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from paykit_async.errors import IdempotencyStoreError
from paykit_async.pipeline.stores import (
    IdempotencyStore,
    MemoryStore,
    RecordedError,
    RecordedOutcome,
    RecordState,
    RedisStore,
    SQLiteStore,
)

pytestmark = pytest.mark.anyio

LEASE = 60.0


def test_stores_implement_the_protocol(tmp_path: Path) -> None:
    for made in (MemoryStore(), SQLiteStore(tmp_path / "x.db"), RedisStore("redis://127.0.0.1:1/0")):
        assert isinstance(made, IdempotencyStore)


async def test_first_claim_creates_an_in_flight_record(store: IdempotencyStore) -> None:
    assert await store.get("k") is None
    claim = await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    assert claim.acquired
    assert claim.record.refund_no == "R1"
    assert claim.record.state is RecordState.IN_FLIGHT
    assert claim.record.owner == "a"
    assert await store.get("k") == claim.record


async def test_a_live_claim_excludes_other_owners_but_not_its_own(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    other = await store.claim("k", refund_no="R2", fingerprint="f", owner="b", lease=LEASE)
    assert not other.acquired
    assert other.record.refund_no == "R1"
    assert other.record.owner == "a"
    again = await store.claim("k", refund_no="R3", fingerprint="f", owner="a", lease=LEASE)
    assert again.acquired
    assert again.record.refund_no == "R1"


async def test_an_expired_lease_is_taken_over_with_the_same_refund_number(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="crashed", lease=0.05)
    await anyio.sleep(0.15)
    claim = await store.claim("k", refund_no="R2", fingerprint="f", owner="b", lease=LEASE)
    assert claim.acquired
    assert claim.record.refund_no == "R1"
    assert claim.record.owner == "b"


async def test_release_ends_only_the_owners_lease(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    await store.release("k", owner="b")
    assert not (await store.claim("k", refund_no="R2", fingerprint="f", owner="b", lease=LEASE)).acquired
    await store.release("k", owner="a")
    record = await store.get("k")
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT
    claim = await store.claim("k", refund_no="R2", fingerprint="f", owner="b", lease=LEASE)
    assert claim.acquired
    assert claim.record.refund_no == "R1"


async def test_a_different_fingerprint_never_takes_over(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    await store.release("k", owner="a")
    claim = await store.claim("k", refund_no="R2", fingerprint="other", owner="b", lease=LEASE)
    assert not claim.acquired
    assert claim.record.fingerprint == "f"


async def test_a_final_outcome_is_kept_exactly(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    outcome = RecordedOutcome(
        fields={"refund_fee": "100", "amount": Decimal("12.30"), "n": 3, "list": [1, "x"], "flag": True},
        status_code=200,
        settled_by_query=True,
    )
    assert await store.finish("k", owner="a", result=outcome)
    assert not await store.finish("k", owner="a", result=RecordedError(code="X", message="late"))
    claim = await store.claim("k", refund_no="R2", fingerprint="f", owner="b", lease=LEASE)
    assert not claim.acquired
    assert claim.record.state is RecordState.SUCCEEDED
    assert claim.record.result == outcome
    assert isinstance(claim.record.result, RecordedOutcome)
    assert type(claim.record.result.fields["amount"]) is Decimal


async def test_a_final_error_is_kept(store: IdempotencyStore) -> None:
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    error = RecordedError(code="NOTENOUGH", message="余额不足", raw={"err_code": "NOTENOUGH"})
    assert await store.finish("k", owner="a", result=error)
    record = await store.get("k")
    assert record is not None
    assert record.state is RecordState.FAILED
    assert record.result == error


async def test_concurrent_claims_acquire_once(store: IdempotencyStore) -> None:
    winners: list[str] = []

    async def contend(owner: str) -> None:
        claim = await store.claim("k", refund_no=f"R-{owner}", fingerprint="f", owner=owner, lease=LEASE)
        if claim.acquired:
            winners.append(claim.record.refund_no)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(contend, f"o{i}")
    assert len(winners) == 1


async def test_sqlite_claims_are_atomic_across_connections(tmp_path: Path) -> None:
    """Several stores on one file stand in for several processes (each has its own connection)."""
    stores = [SQLiteStore(tmp_path / "shared.db") for _ in range(6)]
    winners: list[str] = []

    async def contend(index: int, key: str) -> None:
        claim = await stores[index].claim(
            key, refund_no=f"R{index}", fingerprint="f", owner=f"o{index}", lease=LEASE
        )
        if claim.acquired:
            winners.append(key)

    async with anyio.create_task_group() as tg:
        for key in ("a", "b", "c"):
            for index in range(len(stores)):
                tg.start_soon(contend, index, key)
    assert sorted(winners) == ["a", "b", "c"]
    for made in stores:
        await made.aclose()


async def test_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "keys.db")
    await first.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    await first.aclose()
    second = SQLiteStore(tmp_path / "keys.db")
    record = await second.get("k")
    assert record is not None
    assert record.refund_no == "R1"
    await second.aclose()


def test_redis_store_repr_hides_the_url() -> None:
    assert "secret" not in repr(RedisStore("redis://:secret@127.0.0.1:6379/0"))


async def test_reopen_turns_only_a_failed_record_back_into_a_claim(store: IdempotencyStore) -> None:
    assert not await store.reopen("k", fingerprint="f", owner="a", lease=LEASE)  # no record
    await store.claim("k", refund_no="R1", fingerprint="f", owner="a", lease=LEASE)
    assert not await store.reopen("k", fingerprint="f2", owner="b", lease=LEASE)  # in flight
    await store.finish("k", owner="a", result=RecordedError(code="SIGNERROR", message="签名错误"))
    assert await store.reopen("k", fingerprint="f2", owner="b", lease=LEASE)
    record = await store.get("k")
    assert record is not None
    assert (record.state, record.refund_no, record.fingerprint, record.owner, record.result) == (
        RecordState.IN_FLIGHT,
        "R1",
        "f2",
        "b",
        None,
    )
    assert not (await store.claim("k", refund_no="R9", fingerprint="f2", owner="c", lease=LEASE)).acquired
    assert (await store.claim("k", refund_no="R9", fingerprint="f2", owner="b", lease=LEASE)).acquired
    await store.finish("k", owner="b", result=RecordedOutcome(fields={"refund_id": "1"}))
    assert not await store.reopen("k", fingerprint="f2", owner="c", lease=LEASE)  # succeeded stays


async def test_sqlite_waiters_do_not_fill_the_shared_worker_threads(
    tmp_path: Path, anyio_backend: str
) -> None:
    """While another process holds the journal's write lock, many concurrent claims wait for it.
    They used to wait each in threads of anyio's shared pool (40), in turns of 50 ms: the pool
    filled, and every other user of it in the process — DNS lookups on trio, any ``to_thread``
    call — queued behind all of their turns (seconds with a hundred waiters, for as long as the
    lock is held). Now they queue on the event loop, one thread per store, and the pool is free."""
    import sqlite3
    import threading

    path = tmp_path / "journal.db"
    store = SQLiteStore(path, busy_timeout=60)
    await store.get("create")
    locked, release = threading.Event(), threading.Event()
    released: list[bool] = []

    def hold_the_write_lock() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(timeout=20)  # ends the test's stall (and so fails it) rather than hanging
        released.append(True)
        db.execute("COMMIT")
        db.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        locked.wait()
        async with anyio.create_task_group() as group:
            for n in range(60):
                group.start_soon(
                    lambda n=n: store.claim(
                        f"k{n}", refund_no=f"R{n}", fingerprint="f", owner="a", lease=LEASE
                    )
                )
            for _ in range(50):
                await anyio.lowlevel.checkpoint()  # let every claim reach its wait
            # Each waiter used to hold a thread of the shared pool for a busy slice after another,
            # all of them together filling it: others queued behind 60 slices of 50 ms each.
            assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
            await anyio.to_thread.run_sync(lambda: None)  # someone else's worker-thread call
            assert not released  # it ran while the journal was still locked
            release.set()
        for n in range(60):
            record = await store.get(f"k{n}")
            assert record is not None
            assert record.refund_no == f"R{n}"
    finally:
        release.set()
        holder.join()
        await store.aclose()


async def test_redis_waiters_do_not_fill_the_shared_worker_threads(anyio_backend: str) -> None:
    """A Redis that accepts connections and never answers: off asyncio each command holds a worker
    thread for the store's ``timeout``. Sixty concurrent claims used to take sixty threads of
    anyio's shared pool (40) and stall its other users for as long; now a store uses at most a few
    threads of its own and the rest of its callers wait on the event loop."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held: list[socket.socket] = []
    stop = threading.Event()

    def swallow() -> None:  # accept and keep every connection, answer nothing
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=swallow)
    acceptor.start()
    store = RedisStore(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", timeout=1.0)
    failures: list[str] = []

    async def claim(n: int) -> None:
        try:
            await store.claim(f"k{n}", refund_no=f"R{n}", fingerprint="f", owner="a", lease=LEASE)
        except IdempotencyStoreError:
            failures.append(f"k{n}")

    try:
        with anyio.move_on_after(30):  # a stuck test fails below instead of hanging
            async with anyio.create_task_group() as group:
                for n in range(60):
                    group.start_soon(claim, n)
                for _ in range(50):
                    await anyio.lowlevel.checkpoint()  # let every claim reach its command
                assert anyio.to_thread.current_default_thread_limiter().borrowed_tokens == 0
                await anyio.to_thread.run_sync(lambda: None)  # someone else's worker-thread call
                group.cancel_scope.cancel()
    finally:
        stop.set()
        acceptor.join()
        for connection in held:
            connection.close()
        listener.close()
        await store.aclose()
