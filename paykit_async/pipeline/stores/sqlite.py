"""A durable idempotency store in one SQLite file, shared safely by several processes.

The stdlib ``sqlite3`` module runs in a worker thread (``anyio.to_thread``, one at a time per
store) so the event loop never blocks on disk. The file uses WAL with ``synchronous=FULL``: a
committed claim survives ``kill -9`` and power loss. Every claim is one ``BEGIN IMMEDIATE``
transaction (a write lock taken before reading), so two processes can never both acquire one key.

While another process holds the write lock, a transaction is retried in short slices with
``anyio.sleep`` between them (never one long blocking wait in SQLite's busy handler), so waiting
is cancellable — the idempotency layer bounds it by the call's deadline — and gives up after
``busy_timeout``. Every failure (a file that is not a database, read-only, locked too long,
unreadable records) is an :class:`~paykit_async.errors.IdempotencyStoreError` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread

from ...errors import IdempotencyStoreError
from .base import (
    Claim,
    IdempotencyRecord,
    RecordedError,
    RecordedOutcome,
    RecordState,
    dump_result,
    load_result,
)

__all__ = ["SQLiteStore"]

_IN_FLIGHT = RecordState.IN_FLIGHT.value

_T = TypeVar("_T")

# Primary result codes (sqlite3.SQLITE_BUSY / SQLITE_LOCKED exist only on Python >= 3.11).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

#: How long one attempt may block in SQLite's busy handler before yielding to the event loop.
_BUSY_SLICE = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS paykit_idempotency (
    key TEXT PRIMARY KEY,
    refund_no TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    lease_expires REAL NOT NULL DEFAULT 0,
    result TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""

_SELECT = (
    "SELECT key, refund_no, fingerprint, state, owner, lease_expires, result"
    " FROM paykit_idempotency WHERE key = ?"
)


class SQLiteStore:
    """Records in an SQLite file at ``path`` (created with its table on first use; a ``file:``
    URI is accepted too).

    One connection per store, used by one worker thread at a time. ``busy_timeout`` (seconds) is
    how long a write waits for another process's transaction before failing with
    :class:`~paykit_async.errors.IdempotencyStoreError` (a call's deadline may end it sooner).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.busy_timeout = busy_timeout
        self._time = time_source
        self._lock = threading.Lock()
        # One worker thread per store and event loop: callers queue on the loop, not each in a
        # thread of anyio's shared pool (40 threads), which they would fill while the file is
        # locked — stalling every other user of that pool (DNS lookups on trio) for as long.
        self._limiters: dict[object, anyio.CapacityLimiter] = {}
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path!r}>"

    # -- the protocol -------------------------------------------------------------------------

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        def claim(db: sqlite3.Connection) -> Claim:
            now = self._time()  # inside the write transaction: after any wait for the lock
            row = db.execute(_SELECT, (key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO paykit_idempotency (key, refund_no, fingerprint, state, owner,"
                    " lease_expires, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, refund_no, fingerprint, _IN_FLIGHT, owner, now + lease, now, now),
                )
                acquired = True
            else:
                record = _record(row)
                acquired = (
                    record.state is RecordState.IN_FLIGHT
                    and record.fingerprint == fingerprint
                    and (record.lease_expires <= now or record.owner == owner)
                )
                if acquired:
                    db.execute(
                        "UPDATE paykit_idempotency SET owner = ?, lease_expires = ?, updated_at = ?"
                        " WHERE key = ?",
                        (owner, now + lease, now, key),
                    )
            row = db.execute(_SELECT, (key,)).fetchone()
            return Claim(record=_record(row), acquired=acquired)

        return await self._write(claim)

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        state = RecordState.SUCCEEDED if isinstance(result, RecordedOutcome) else RecordState.FAILED
        text = dump_result(result)

        def finish(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE paykit_idempotency SET state = ?, result = ?, owner = '', lease_expires = 0,"
                " updated_at = ? WHERE key = ? AND state = ?",
                (state.value, text, self._time(), key, RecordState.IN_FLIGHT.value),
            )
            return cursor.rowcount == 1

        return await self._write(finish)

    async def release(self, key: str, *, owner: str) -> None:
        def release(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE paykit_idempotency SET lease_expires = 0, updated_at = ?"
                " WHERE key = ? AND owner = ? AND state = ?",
                (self._time(), key, owner, RecordState.IN_FLIGHT.value),
            )

        await self._write(release)

    async def reopen(self, key: str, *, fingerprint: str, owner: str, lease: float) -> bool:
        def reopen(db: sqlite3.Connection) -> bool:
            now = self._time()
            cursor = db.execute(
                "UPDATE paykit_idempotency SET state = ?, fingerprint = ?, owner = ?, lease_expires = ?,"
                " result = NULL, updated_at = ? WHERE key = ? AND state = ?",
                (_IN_FLIGHT, fingerprint, owner, now + lease, now, key, RecordState.FAILED.value),
            )
            return cursor.rowcount == 1

        return await self._write(reopen)

    async def get(self, key: str) -> IdempotencyRecord | None:
        def get(db: sqlite3.Connection) -> IdempotencyRecord | None:
            row = db.execute(_SELECT, (key,)).fetchone()
            return None if row is None else _record(row)

        return await self._run(get)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._closed = True
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await anyio.to_thread.run_sync(close)

    # -- plumbing -----------------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Runs ``work`` in the worker thread, retrying while the database is busy (up to
        ``busy_timeout``); any failure becomes an :class:`IdempotencyStoreError`."""

        # A slice is never abandoned on cancellation: a transaction always finishes (commits or
        # rolls back) before the caller sees the cancellation, so nothing is left half-written.
        def locked() -> _T:
            with self._lock:
                return work(self._connect())

        loop = anyio.lowlevel.current_token()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(1)
        give_up_at = time.monotonic() + self.busy_timeout
        pause = 0.005
        while True:
            try:
                return await anyio.to_thread.run_sync(locked, limiter=limiter)
            except sqlite3.OperationalError as error:
                if not _busy(error):
                    raise self._failure(error) from error
                if time.monotonic() + pause > give_up_at:
                    raise IdempotencyStoreError(
                        f"SQLite journal {self.path} is locked by another process "
                        f"(waited {self.busy_timeout:g} s)"
                    ) from error
            except (sqlite3.Error, OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
                raise self._failure(error) from error
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def _write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Runs ``work`` in one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before
        anything is read, so reads and writes see one state."""

        def transaction(db: sqlite3.Connection) -> _T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        return await self._run(transaction)

    def _failure(self, error: BaseException) -> IdempotencyStoreError:
        text = str(error) or type(error).__name__
        if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
            hint = "it is not an SQLite database (move it aside, or give another path)"
        elif "readonly" in text or "read-only" in text:
            hint = "it is read-only (the journal and its directory must be writable)"
        elif isinstance(error, sqlite3.Error):
            hint = f"{type(error).__name__}: {text}"
        else:
            hint = f"unreadable record ({type(error).__name__}: {text})"
        return IdempotencyStoreError(f"SQLite journal {self.path} cannot be used: {hint}")

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("this SQLiteStore is closed")
        if self._connection is None:
            db = sqlite3.connect(
                self.path,
                timeout=_BUSY_SLICE,
                isolation_level=None,
                check_same_thread=False,
                uri=self.path.startswith("file:"),
            )
            try:
                # Busy waits stay short here; longer ones are cancellable retries in _run. Switching
                # a new file to WAL while another process opens it can also answer "locked".
                db.execute(f"PRAGMA busy_timeout = {int(_BUSY_SLICE * 1000)}")
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = FULL")
                db.execute(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._connection = db
        return self._connection


def _busy(error: sqlite3.OperationalError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(error)


def _record(row: tuple[str, str, str, str, str, float, str | None]) -> IdempotencyRecord:
    key, refund_no, fingerprint, state, owner, lease_expires, result = row
    return IdempotencyRecord(
        key=key,
        refund_no=refund_no,
        fingerprint=fingerprint,
        state=RecordState(state),
        owner=owner,
        lease_expires=float(lease_expires),
        result=load_result(result),
    )
