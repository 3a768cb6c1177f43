"""A store that hands every call to another one: the base of the test stores that change one
call (fail it, slow it down) and leave the rest as they are."""

from __future__ import annotations

from paykit_async.pipeline.stores import IdempotencyStore
from paykit_async.pipeline.stores.base import Claim, IdempotencyRecord, RecordedError, RecordedOutcome


class DelegatingStore:
    """Every :class:`IdempotencyStore` call goes to ``inner`` unchanged."""

    def __init__(self, inner: IdempotencyStore) -> None:
        self.inner = inner

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        return await self.inner.claim(
            key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=lease
        )

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        return await self.inner.finish(key, owner=owner, result=result)

    async def release(self, key: str, *, owner: str) -> None:
        await self.inner.release(key, owner=owner)

    async def reopen(self, key: str, *, fingerprint: str, owner: str, lease: float) -> bool:
        return await self.inner.reopen(key, fingerprint=fingerprint, owner=owner, lease=lease)

    async def get(self, key: str) -> IdempotencyRecord | None:
        return await self.inner.get(key)

    async def aclose(self) -> None:
        await self.inner.aclose()
