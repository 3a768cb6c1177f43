"""A lost, corrupted or restored idempotency store never mints a second refund number.

The refund number of a keyed refund is derived from (provider, merchant, key): repeating the call
after the store forgot it sends the provider the number it already knows, and the provider's own
dedupe (by refund number) keeps the payout single. Checked against the simulator's ledger.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from paykit_async import (
    EftPayClient,
    IdempotencyStoreError,
    MemoryStore,
    PayJSClient,
    SQLiteStore,
    WeChatPayClient,
    derive_refund_no,
)
from paykit_async.pipeline.stores import IdempotencyStore, RecordState
from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY, Simulator, SimulatorConfig

from ..cli.helpers import demo_wechat_client

pytestmark = pytest.mark.anyio

KEY = "refund-ORDER-1001"


def _simulator() -> Simulator:
    sim = Simulator(SimulatorConfig(completion_delay=0.0))
    sim.add_wechatpay_order("ORDER-1001", 2500)
    sim.add_eftpay_order("E1001", Decimal("25.00"))
    sim.add_payjs_order("P" * 32, 2500)
    return sim


def _wechat(sim: Simulator, store: IdempotencyStore | None, **options: Any) -> WeChatPayClient:
    return demo_wechat_client(sim, idempotency_store=store, **options)


async def _wechat_refund(sim: Simulator, store: IdempotencyStore | None) -> str:
    async with _wechat(sim, store) as client:
        result = await client.refund(
            out_trade_no="ORDER-1001", total_fee=2500, refund_fee=500, idempotency_key=KEY
        )
    assert result.out_refund_no
    return result.out_refund_no


def _sent_refund_numbers(sim: Simulator, provider: str, field: str) -> list[str]:
    """The refund numbers of the refund requests that reached ``provider``, in order."""
    return [
        r.fields[field]
        for r in sim.requests()
        if r.provider == provider and r.endpoint in ("refund", "JSAPIService") and field in r.fields
    ]


def _assert_paid_once(sim: Simulator, provider: str, order: str, amount: int) -> None:
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    view = snapshot.order(provider, order)
    assert view.payouts == 1
    assert view.refunded == amount


def _expected_wechat_number() -> str:
    return derive_refund_no(provider="wechatpay", merchant=DEMO_WECHATPAY.mch_id, key=KEY)


async def test_the_number_is_derived_from_the_key_even_without_a_store(anyio_backend: str) -> None:
    sim = _simulator()
    first = await _wechat_refund(sim, None)
    second = await _wechat_refund(sim, None)
    assert first == second == _expected_wechat_number()
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first, first]
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


async def test_a_lost_memory_store_repeats_the_same_number(anyio_backend: str) -> None:
    sim = _simulator()
    first = await _wechat_refund(sim, MemoryStore())
    again = await _wechat_refund(sim, MemoryStore())  # a restarted process: the store is empty
    assert again == first
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first, first]
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


async def test_a_restored_memory_store_resumes_the_same_number(anyio_backend: str) -> None:
    sim = _simulator()
    store = MemoryStore()
    await store.claim(KEY, refund_no="R-STALE-BACKUP", fingerprint="an older request", owner="gone", lease=1)
    backup = dict(store._records)  # an older copy, from before the refund
    store._records.clear()
    first = await _wechat_refund(sim, store)
    store._records.clear()
    store._records.update(backup)
    # The backup holds the key for a different request: the store refuses, nothing is sent ...
    with pytest.raises(Exception, match="different request"):
        await _wechat_refund(sim, store)
    # ... and a backup from before the key existed is as good as a lost store.
    store._records.clear()
    assert await _wechat_refund(sim, store) == first
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first, first]
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def test_a_deleted_sqlite_store_repeats_the_same_number(tmp_path: Path, anyio_backend: str) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    store = SQLiteStore(path)
    first = await _wechat_refund(sim, store)
    await store.aclose()
    _remove_sqlite(path)
    store = SQLiteStore(path)
    assert await _wechat_refund(sim, store) == first
    record = await store.get(KEY)
    assert record is not None
    assert record.state is RecordState.SUCCEEDED
    assert record.refund_no == first
    await store.aclose()
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


async def test_a_corrupted_sqlite_store_sends_nothing_then_the_same_number(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    store = SQLiteStore(path)
    first = await _wechat_refund(sim, store)
    await store.aclose()
    _remove_sqlite(path)
    path.write_bytes(b"this is not a database\n" * 200)
    corrupted = SQLiteStore(path)
    with pytest.raises(IdempotencyStoreError, match="not an SQLite database"):
        await _wechat_refund(sim, corrupted)
    await corrupted.aclose()
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first]
    # The operator moves the broken file aside and repeats: the provider sees the same number.
    path.rename(tmp_path / "journal.db.broken")
    store = SQLiteStore(path)
    assert await _wechat_refund(sim, store) == first
    await store.aclose()
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first, first]
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


async def test_a_restored_sqlite_backup_resumes_the_same_number(tmp_path: Path, anyio_backend: str) -> None:
    sim = _simulator()
    path = tmp_path / "journal.db"
    backup = tmp_path / "backup.db"
    store = SQLiteStore(path)
    await store.get("warm-up")  # creates the file and its table
    await store.aclose()
    shutil.copyfile(path, backup)  # last night's backup: before the refund
    store = SQLiteStore(path)
    first = await _wechat_refund(sim, store)
    await store.aclose()
    _remove_sqlite(path)
    shutil.copyfile(backup, path)
    store = SQLiteStore(path)
    assert await store.get(KEY) is None
    assert await _wechat_refund(sim, store) == first
    await store.aclose()
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == [first, first]
    _assert_paid_once(sim, "wechatpay", "ORDER-1001", 500)


async def test_eftpay_derives_a_28_character_number_and_survives_a_lost_store(
    tmp_path: Path, anyio_backend: str
) -> None:
    sim = _simulator()
    numbers = []
    for _ in range(2):
        store = SQLiteStore(tmp_path / "eft.db")
        async with EftPayClient(
            DEMO_EFTPAY.user_confirm_key,
            DEMO_EFTPAY.secret,
            base_url=sim.base_url("eftpay"),
            transport=sim.transport(),
            idempotency_store=store,
        ) as client:
            result = await client.refund(
                paytype="WeChat",
                payment_type="WECHATCN",
                out_trade_no="E1001",
                transaction_amount="5.10",
                total_fee="25.00",
                idempotency_key=KEY,
            )
            numbers.append(result.refund_no)
        await store.aclose()
        _remove_sqlite(tmp_path / "eft.db")
    expected = derive_refund_no(provider="eftpay", merchant=DEMO_EFTPAY.user_confirm_key, key=KEY, length=28)
    assert numbers == [expected, expected]
    assert _sent_refund_numbers(sim, "eftpay", "refund_no") == [expected, expected]
    _assert_paid_once(sim, "eftpay", "E1001", 510)


async def test_merchants_and_sub_merchants_never_share_a_derived_number(anyio_backend: str) -> None:
    sim = _simulator()
    plain = _wechat(sim, None)
    partner = WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        sub_mch_id="1900000110",
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
    )
    assert plain.refund_merchant == DEMO_WECHATPAY.mch_id
    assert partner.refund_merchant == f"{DEMO_WECHATPAY.mch_id}/1900000110"
    assert plain.derived_refund_no(KEY) != partner.derived_refund_no(KEY)
    assert partner.derived_refund_no(KEY) == derive_refund_no(
        provider="wechatpay", merchant=f"{DEMO_WECHATPAY.mch_id}/1900000110", key=KEY
    )
    payjs = PayJSClient(
        DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs"), transport=sim.transport()
    )
    assert payjs.derived_refund_no(KEY) is None  # PAYJS: the order is the refund's identity
    for client in (plain, partner, payjs):
        await client.aclose()


async def test_an_explicit_number_wins_over_the_key(anyio_backend: str) -> None:
    sim = _simulator()
    async with _wechat(sim, MemoryStore()) as client:
        result = await client.refund(
            out_trade_no="ORDER-1001",
            total_fee=2500,
            refund_fee=500,
            out_refund_no="MY-OWN-1",
            idempotency_key=KEY,
        )
    assert result.out_refund_no == "MY-OWN-1"
    assert _sent_refund_numbers(sim, "wechatpay", "out_refund_no") == ["MY-OWN-1"]
