"""A store that fails is a PaykitError before anything is sent, and never loses a known result.

Garbage, read-only and locked SQLite files and a stopped redis-server give
``IdempotencyStoreError``; waiting on a store lock is bounded by the call's deadline; a failure to
record an outcome after the provider answered returns that outcome (logged), and the claim it
leaves lapses with its lease, after which the same refund number is sent again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from paykit_async import (
    IdempotencyStoreError,
    MemoryStore,
    PaykitError,
    ProviderError,
    RedisStore,
    RefundOutcomeUnknown,
    RetryPolicy,
    SQLiteStore,
    WeChatPayClient,
)
from paykit_async.pipeline.stores import (
    Claim,
    IdempotencyStore,
    RecordedError,
    RecordedOutcome,
    RecordState,
)
from paykit_async.simulator import Simulator, SimulatorConfig
from paykit_async.transport.wire import TransportSettings, WireRequest, WireResponse

from ..cli.helpers import demo_wechat_client
from .conftest import start_redis, stop_redis
from .store_wrappers import DelegatingStore

pytestmark = pytest.mark.anyio

KEY = "refund-ORDER-1"


def _simulator() -> Simulator:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("ORDER-1", 1000)
    sim.set_balance("wechatpay", None)
    return sim


def _client(sim: Simulator, store: IdempotencyStore, **options: Any) -> WeChatPayClient:
    return demo_wechat_client(sim, idempotency_store=store, **options)


async def _refund(client: WeChatPayClient) -> Any:
    return await client.refund(out_trade_no="ORDER-1", total_fee=1000, refund_fee=100, idempotency_key=KEY)


def _refund_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests() if r.endpoint == "refund")


async def test_a_garbage_sqlite_file_is_a_paykit_error_and_nothing_is_sent(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    path.write_bytes(os.urandom(8192))
    async with _client(sim, SQLiteStore(path)) as client:
        with pytest.raises(PaykitError) as caught:
            await _refund(client)
    assert isinstance(caught.value, IdempotencyStoreError)
    assert str(path) in str(caught.value)
    assert "not an SQLite database" in str(caught.value)
    assert _refund_requests(sim) == 0


async def test_a_read_only_sqlite_journal_is_a_paykit_error_and_nothing_is_sent(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    writable = SQLiteStore(path)
    await writable.get("create the file")
    await writable.aclose()
    read_only = SQLiteStore(f"file:{path}?mode=ro")
    async with _client(sim, read_only) as client:
        with pytest.raises(IdempotencyStoreError, match="read-only"):
            await _refund(client)
    await read_only.aclose()
    assert _refund_requests(sim) == 0


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
async def test_a_read_only_file_on_disk_is_a_paykit_error(tmp_path: Path, anyio_backend: str) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    writable = SQLiteStore(path)
    await writable.get("create the file")
    await writable.aclose()
    os.chmod(path, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        async with _client(sim, SQLiteStore(path)) as client:
            with pytest.raises(IdempotencyStoreError):
                await _refund(client)
    finally:
        os.chmod(tmp_path, 0o755)
    assert _refund_requests(sim) == 0


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode = WAL")
db.execute("CREATE TABLE IF NOT EXISTS other (x)")
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO other VALUES (1)")
print("locked", flush=True)
sys.stdin.read()
"""


def _lock_in_another_process(path: Path) -> subprocess.Popen[str]:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None
    assert locker.stdout.readline().strip() == "locked"
    return locker


def _unlock(locker: subprocess.Popen[str]) -> None:
    assert locker.stdin is not None
    locker.stdin.close()
    locker.wait(timeout=10)


async def test_a_journal_locked_by_another_process_is_a_paykit_error(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    locker = _lock_in_another_process(path)
    try:
        async with _client(sim, SQLiteStore(path, busy_timeout=0.3)) as client:
            with pytest.raises(IdempotencyStoreError, match="locked by another process"):
                await _refund(client)
    finally:
        _unlock(locker)
    assert _refund_requests(sim) == 0


async def test_waiting_on_a_locked_journal_is_bounded_by_the_deadline(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    locker = _lock_in_another_process(path)
    try:
        # The store would wait 60 s for the lock; the call's 0.5 s deadline ends it first.
        store = SQLiteStore(path, busy_timeout=60)
        async with _client(sim, store, retry=RetryPolicy(deadline=0.5)) as client:
            began = time.monotonic()
            with pytest.raises(IdempotencyStoreError, match="deadline"):
                await _refund(client)
            elapsed = time.monotonic() - began
        await store.aclose()
    finally:
        _unlock(locker)
    assert _refund_requests(sim) == 0
    # Bounded by the deadline plus the short bookkeeping grace — far from the 60 s busy timeout.
    assert elapsed < 15, elapsed


class LockingTransport:
    """Forwards to the simulator; while the refund is at the provider, another connection takes
    the journal's write lock (as another process would)."""

    def __init__(self, inner: Any, journal: Path) -> None:
        self.inner = inner
        self.journal = journal
        self.locker: sqlite3.Connection | None = None

    @property
    def in_process(self) -> bool:
        """Whether the wrapped transport never leaves this process (plain-http refunds are fine)."""
        return bool(self.inner.in_process)

    def configure(self, settings: TransportSettings) -> None:
        self.inner.configure(settings)

    async def send(self, request: WireRequest) -> WireResponse:
        if request.url.endswith("/secapi/pay/refund") and self.locker is None:
            self.locker = sqlite3.connect(self.journal, isolation_level=None, check_same_thread=False)
            self.locker.execute("BEGIN IMMEDIATE")
        result: WireResponse = await self.inner.send(request)
        return result

    def unlock(self) -> None:
        assert self.locker is not None
        self.locker.execute("ROLLBACK")
        self.locker.close()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_lock_taken_while_the_refund_is_at_the_provider_returns_the_result_then_lapses(
    tmp_path: Path, anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    now = [1_000_000.0]
    store = SQLiteStore(path, busy_timeout=60, time_source=lambda: now[0])
    transport = LockingTransport(sim.transport(), path)
    options: dict[str, Any] = {
        "idempotency_lease": 130,  # the default deadline (60 s) is the retry policy's
        "idempotency_wait": 0.1,
    }
    async with _client(sim, store, transport=transport, **options) as client:
        began = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="paykit_async.idempotency"):
            result = await _refund(client)  # the provider refunded: that is what the caller learns
        elapsed = time.monotonic() - began
    assert result.refund_id
    assert "could not record the outcome" in caplog.text
    # Recording waits at most 5 s: not the 60 s busy timeout, nor the 60 s deadline.
    assert elapsed < 15, elapsed
    transport.unlock()
    record = await store.get(KEY)
    assert record is not None
    assert record.state is RecordState.IN_FLIGHT  # not recorded: the claim lasts until its lease ends
    assert record.refund_no == result.out_refund_no
    async with _client(sim, store, **options) as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await _refund(client)  # within the lease: another worker may still be sending it
        assert caught.value.refund_no == result.out_refund_no
        now[0] += 130  # the lease ends
        again = await _refund(client)
    assert again.out_refund_no == result.out_refund_no
    assert not again.replayed  # re-sent under the same number: WeChat answered with the same refund
    record = await store.get(KEY)
    assert record is not None
    assert record.state is RecordState.SUCCEEDED
    await store.aclose()
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert snapshot.order("wechatpay", "ORDER-1").payouts == 1


async def test_a_stopped_redis_server_is_a_paykit_error_and_nothing_is_sent(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    process, port = start_redis(tmp_path)
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=2)
    try:
        async with _client(sim, store) as client:
            first = await _refund(client)
            stop_redis(process)
            with pytest.raises(IdempotencyStoreError, match="Redis store failed"):
                await _refund(client)
            with pytest.raises(IdempotencyStoreError):
                await store.get(KEY)
    finally:
        stop_redis(process)
        await store.aclose()
    assert first.refund_id
    assert _refund_requests(sim) == 1


class BrokenStore(DelegatingStore):
    """A store from outside the package whose driver errors escape raw, in ``claim`` or ``finish``."""

    def __init__(self, *, broken: str) -> None:
        super().__init__(MemoryStore())
        self.broken = broken

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        if self.broken == "claim":
            raise sqlite3.OperationalError("disk I/O error")
        return await self.inner.claim(
            key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=lease
        )

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        if self.broken == "finish":
            raise ConnectionResetError("store went away")
        return await self.inner.finish(key, owner=owner, result=result)


async def test_a_raw_driver_error_before_sending_becomes_a_store_error(anyio_backend: str) -> None:
    sim = _simulator()
    async with _client(sim, BrokenStore(broken="claim")) as client:
        with pytest.raises(IdempotencyStoreError, match="disk I/O error") as caught:
            await _refund(client)
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert _refund_requests(sim) == 0


async def test_failing_to_record_returns_the_known_outcome(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    sim = _simulator()
    async with _client(sim, BrokenStore(broken="finish")) as client:
        with caplog.at_level(logging.ERROR, logger="paykit_async.idempotency"):
            result = await _refund(client)
            assert result.refund_id
            # A definite refusal is still that refusal, not a store error.
            with pytest.raises(ProviderError) as caught:
                await client.refund(
                    out_trade_no="NO-SUCH-ORDER", total_fee=1000, refund_fee=100, idempotency_key="other"
                )
    assert caught.value.code == "ORDERNOTEXIST"
    assert caplog.text.count("could not record the outcome") == 2
