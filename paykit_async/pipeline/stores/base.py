"""The idempotency store protocol (implemented by MemoryStore, SQLiteStore and RedisStore).

A store remembers, per idempotency key, the refund number fixed before the first attempt, a
fingerprint of the request, and either a claim (an owner token with a lease: "this worker is
sending it now") or the final result. ``claim`` is atomic in every store, so concurrent calls with
one key never both reach the provider; a crashed worker's claim is taken over once its lease ends,
keeping the same refund number. A store that cannot do its job raises
:class:`~paykit_async.errors.IdempotencyStoreError` — never a driver's own exception.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "Claim",
    "IdempotencyRecord",
    "IdempotencyStore",
    "RecordState",
    "RecordedError",
    "RecordedOutcome",
    "dump_result",
    "load_result",
]


class RecordState(str, enum.Enum):
    """Where a keyed refund stands."""

    IN_FLIGHT = "in_flight"
    """Claimed (or left resumable after a crash, cancellation or unknown outcome)."""
    SUCCEEDED = "succeeded"
    """The provider verifiably executed the refund; the outcome is recorded."""
    FAILED = "failed"
    """The provider verifiably refused it (a definite, non-retryable error); the error is recorded."""


@attrs.frozen(kw_only=True)
class RecordedOutcome:
    """The verified reply of a refund that succeeded, replayed to later calls with the same key."""

    fields: Mapping[str, Any]
    status_code: int = 200
    settled_by_query: bool = False


@attrs.frozen(kw_only=True)
class RecordedError:
    """A definite provider refusal (``ProviderError`` code, message and raw reply fields)."""

    code: str
    message: str
    raw: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class IdempotencyRecord:
    """What a store holds for one key. ``lease_expires`` is store time in seconds (epoch)."""

    key: str
    refund_no: str
    fingerprint: str
    state: RecordState
    owner: str = ""
    lease_expires: float = 0.0
    result: RecordedOutcome | RecordedError | None = None


@attrs.frozen(kw_only=True)
class Claim:
    """The answer to :meth:`IdempotencyStore.claim`: the record as it now stands.

    ``acquired`` is True when the caller now owns the in-flight record and may send the refund.
    """

    record: IdempotencyRecord
    acquired: bool


@runtime_checkable
class IdempotencyStore(Protocol):
    """Durable key → (refund number, fingerprint, claim or final result), with atomic claims."""

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        """Atomically create or take over the record for ``key``.

        - No record: create it in flight with ``refund_no`` and ``fingerprint``, owned by
          ``owner`` for ``lease`` seconds; acquired.
        - In flight, same fingerprint, and the lease has ended or ``owner`` already holds it: take
          it over (the recorded refund number is kept); acquired.
        - Otherwise (another live owner, a final result, or a different fingerprint): unchanged;
          not acquired.
        """
        ...

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        """Record the final result if the record is still in flight; False if it was not."""
        ...

    async def release(self, key: str, *, owner: str) -> None:
        """End ``owner``'s lease at once, leaving the record in flight for the next call to resume."""
        ...

    async def reopen(self, key: str, *, fingerprint: str, owner: str, lease: float) -> bool:
        """Atomically turn a FAILED record back into an in-flight one claimed by ``owner``.

        The refund number is kept, the recorded refusal dropped and ``fingerprint`` recorded (the
        refused request may have been corrected: nothing was executed under that number). True
        when the record was failed and is now ``owner``'s; otherwise nothing changes.
        """
        ...

    async def get(self, key: str) -> IdempotencyRecord | None:
        """The record for ``key``, if any."""
        ...

    async def aclose(self) -> None:
        """Release connections; the data stays."""
        ...


def _encode_default(value: object) -> object:
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot record a {type(value).__name__} in an idempotency store")


def _decode_hook(obj: dict[str, Any]) -> object:
    if len(obj) == 1 and "$decimal" in obj:
        return Decimal(obj["$decimal"])
    return obj


def dump_result(result: RecordedOutcome | RecordedError | None) -> str | None:
    """Serialise a final result to JSON for a durable store (``Decimal`` kept exact)."""
    if result is None:
        return None
    if isinstance(result, RecordedOutcome):
        doc: dict[str, Any] = {
            "kind": "outcome",
            "fields": dict(result.fields),
            "status_code": result.status_code,
            "settled_by_query": result.settled_by_query,
        }
    else:
        doc = {"kind": "error", "code": result.code, "message": result.message, "raw": dict(result.raw)}
    return json.dumps(doc, default=_encode_default, sort_keys=True, separators=(",", ":"))


def load_result(text: str | None) -> RecordedOutcome | RecordedError | None:
    """The inverse of :func:`dump_result`."""
    if not text:
        return None
    doc = json.loads(text, object_hook=_decode_hook, parse_float=Decimal)
    if doc["kind"] == "outcome":
        return RecordedOutcome(
            fields=doc["fields"],
            status_code=int(doc["status_code"]),
            settled_by_query=bool(doc["settled_by_query"]),
        )
    return RecordedError(code=str(doc["code"]), message=str(doc["message"]), raw=doc["raw"])
