"""MemoryStore(max_finished=N): long-running processes keep bounded memory, and nothing in flight
is ever forgotten."""

from __future__ import annotations

import pytest

from paykit_async import ValidationError
from paykit_async.asgi import DEFAULT_REMEMBERED_NOTIFICATIONS, notification_app
from paykit_async.pipeline.stores import MemoryStore, RecordedOutcome, RecordState

pytestmark = pytest.mark.anyio

DONE = RecordedOutcome(fields={"result_code": "SUCCESS"})


async def _finish(store: MemoryStore, key: str) -> None:
    claim = await store.claim(key, refund_no=f"R-{key}", fingerprint="f", owner="o", lease=60)
    assert claim.acquired
    assert await store.finish(key, owner="o", result=DONE)


async def test_the_oldest_finished_records_are_forgotten_beyond_the_bound() -> None:
    store = MemoryStore(max_finished=3)
    for i in range(5):
        await _finish(store, f"k{i}")
    assert [await store.get(f"k{i}") is None for i in range(5)] == [True, True, False, False, False]


async def test_records_in_flight_are_never_forgotten() -> None:
    store = MemoryStore(max_finished=2)
    await store.claim("busy", refund_no="R-busy", fingerprint="f", owner="x", lease=60)
    for i in range(10):
        await _finish(store, f"k{i}")
    busy = await store.get("busy")
    assert busy is not None
    assert busy.state is RecordState.IN_FLIGHT
    assert busy.refund_no == "R-busy"


async def test_memory_stays_flat_however_many_records_finish() -> None:
    store = MemoryStore(max_finished=1000)
    for i in range(20_000):
        await _finish(store, f"k{i}")
    assert len(store._records) == 1000
    assert len(store._finished) == 1000


async def test_unbounded_by_default_and_bad_bounds_refused() -> None:
    store = MemoryStore()
    for i in range(50):
        await _finish(store, f"k{i}")
    assert all([await store.get(f"k{i}") is not None for i in range(50)])
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValidationError, match="max_finished"):
            MemoryStore(max_finished=bad)  # type: ignore[arg-type]


def test_the_notification_endpoints_default_store_is_bounded() -> None:
    from paykit_async import PayJSClient

    async def handler(_notification: object) -> None:
        return None

    app = notification_app(PayJSClient("1500000001", "k", base_url="http://127.0.0.1:9"), handler)
    store = app.idempotency_store
    assert isinstance(store, MemoryStore)
    assert store._max_finished == DEFAULT_REMEMBERED_NOTIFICATIONS
