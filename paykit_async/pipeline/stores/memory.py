"""An in-process idempotency store: one dict, for tests and single-process services."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from .base import Claim, IdempotencyRecord, RecordedError, RecordedOutcome, RecordState

__all__ = ["MemoryStore"]


class MemoryStore:
    """Keeps records in memory: exactly-once within one process, forgotten when it exits.

    Claims are atomic because each method runs without awaiting between its read and its write.
    ``time_source`` gives lease time (seconds); tests may pass a fake one.
    """

    def __init__(self, *, time_source: Callable[[], float] = time.time) -> None:
        self._records: dict[str, IdempotencyRecord] = {}
        self._time = time_source

    def __repr__(self) -> str:
        return f"<MemoryStore {len(self._records)} key(s)>"

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        now = self._time()
        record = self._records.get(key)
        if record is None:
            record = IdempotencyRecord(
                key=key,
                refund_no=refund_no,
                fingerprint=fingerprint,
                state=RecordState.IN_FLIGHT,
                owner=owner,
                lease_expires=now + lease,
            )
            self._records[key] = record
            return Claim(record=record, acquired=True)
        if (
            record.state is RecordState.IN_FLIGHT
            and record.fingerprint == fingerprint
            and (record.lease_expires <= now or record.owner == owner)
        ):
            record = attrs.evolve(record, owner=owner, lease_expires=now + lease)
            self._records[key] = record
            return Claim(record=record, acquired=True)
        return Claim(record=record, acquired=False)

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        record = self._records.get(key)
        if record is None or record.state is not RecordState.IN_FLIGHT:
            return False
        state = RecordState.SUCCEEDED if isinstance(result, RecordedOutcome) else RecordState.FAILED
        self._records[key] = attrs.evolve(record, state=state, owner="", lease_expires=0.0, result=result)
        return True

    async def release(self, key: str, *, owner: str) -> None:
        record = self._records.get(key)
        if record is not None and record.state is RecordState.IN_FLIGHT and record.owner == owner:
            self._records[key] = attrs.evolve(record, lease_expires=0.0)

    async def reopen(self, key: str, *, fingerprint: str, owner: str, lease: float) -> bool:
        record = self._records.get(key)
        if record is None or record.state is not RecordState.FAILED:
            return False
        self._records[key] = attrs.evolve(
            record,
            state=RecordState.IN_FLIGHT,
            fingerprint=fingerprint,
            owner=owner,
            lease_expires=self._time() + lease,
            result=None,
        )
        return True

    async def get(self, key: str) -> IdempotencyRecord | None:
        return self._records.get(key)

    async def aclose(self) -> None:
        return None
