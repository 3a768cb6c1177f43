"""Idempotency stores: where refund numbers and final results are remembered per key.

``MemoryStore`` (one process), ``SQLiteStore`` (one machine, several processes, survives
``kill -9``) and ``RedisStore`` (many machines) implement one protocol, ``IdempotencyStore``.
"""

from .base import (
    Claim,
    IdempotencyRecord,
    IdempotencyStore,
    RecordedError,
    RecordedOutcome,
    RecordState,
)
from .memory import MemoryStore
from .redis import RedisStore
from .sqlite import SQLiteStore

__all__ = [
    "Claim",
    "IdempotencyRecord",
    "IdempotencyStore",
    "MemoryStore",
    "RecordState",
    "RecordedError",
    "RecordedOutcome",
    "RedisStore",
    "SQLiteStore",
]
