"""An idempotency store in Redis: exactly-once refunds across many workers on many machines.

Each key is a Redis hash. Claims, results and releases are Lua scripts, so each is atomic on the
server; leases use the server's clock (``TIME``), so workers with skewed clocks agree. Records
expire ``ttl`` seconds after they were created.

redis-py's asyncio client runs on asyncio only; under trio (or any other event loop) the store
uses redis-py's synchronous client in a worker thread (``anyio.to_thread``), with the same
scripts and the same guarantees. A server that is down or does not answer within ``timeout``
raises :class:`~paykit_async.errors.IdempotencyStoreError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio.lowlevel
import anyio.to_thread

from ...errors import IdempotencyStoreError
from ...redaction import check_redis_url, url_for_message
from .base import (
    Claim,
    IdempotencyRecord,
    RecordedError,
    RecordedOutcome,
    RecordState,
    dump_result,
    load_result,
)

__all__ = ["RedisStore"]

# KEYS[1] record; ARGV: refund_no, fingerprint, owner, lease seconds, ttl milliseconds.
_CLAIM = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, 'refund_no', ARGV[1], 'fingerprint', ARGV[2], 'state', 'in_flight',
             'owner', ARGV[3], 'lease_expires', string.format('%.6f', now + tonumber(ARGV[4])))
  redis.call('PEXPIRE', key, ARGV[5])
  return {1, redis.call('HGETALL', key)}
end
local rec = redis.call('HMGET', key, 'fingerprint', 'state', 'owner', 'lease_expires')
if rec[1] == ARGV[2] and rec[2] == 'in_flight'
   and (tonumber(rec[4]) <= now or rec[3] == ARGV[3]) then
  redis.call('HSET', key, 'owner', ARGV[3],
             'lease_expires', string.format('%.6f', now + tonumber(ARGV[4])))
  return {1, redis.call('HGETALL', key)}
end
return {0, redis.call('HGETALL', key)}
"""

# KEYS[1] record; ARGV: state, result JSON.
_FINISH = """
if redis.call('HGET', KEYS[1], 'state') ~= 'in_flight' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'result', ARGV[2], 'owner', '', 'lease_expires', '0')
return 1
"""

# KEYS[1] record; ARGV: owner.
_RELEASE = """
local rec = redis.call('HMGET', KEYS[1], 'state', 'owner')
if rec[1] == 'in_flight' and rec[2] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'lease_expires', '0')
end
return 0
"""


# KEYS[1] record; ARGV: fingerprint, owner, lease seconds.
_REOPEN = """
if redis.call('HGET', KEYS[1], 'state') ~= 'failed' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('HSET', KEYS[1], 'state', 'in_flight', 'fingerprint', ARGV[1], 'owner', ARGV[2],
           'lease_expires', string.format('%.6f', now + tonumber(ARGV[3])))
redis.call('HDEL', KEYS[1], 'result')
return 1
"""


#: Worker threads a store uses at most per event loop off asyncio (redis-py's client is thread-safe).
_THREADS = 8


class RedisStore:
    """Records in Redis at ``url`` (``redis://`` or ``rediss://``), under ``prefix`` + key.

    ``ttl`` (seconds, default 30 days) is how long a key is remembered after its first claim;
    choose it longer than any retry of the same business refund may come. ``timeout`` (seconds)
    bounds connecting and each command.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 30 * 24 * 3600,
        prefix: str = "paykit:idem:",
        timeout: float = 5.0,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        self.url = check_redis_url(url, "url")
        self.ttl = ttl
        self.prefix = prefix
        self.timeout = timeout
        self._async_client: Any = None
        self._sync_client: Any = None
        # Off asyncio, commands run in worker threads: at most this many at a time per store and
        # event loop, so that a Redis that stops answering (each command then holds its thread
        # for ``timeout``) cannot fill anyio's shared pool and stall its other users (DNS on trio).
        self._threads: dict[object, anyio.CapacityLimiter] = {}

    def __repr__(self) -> str:
        # The URL may carry a password: show only the prefix.
        return f"<RedisStore prefix={self.prefix!r}>"

    # -- the protocol -------------------------------------------------------------------------

    async def claim(self, key: str, *, refund_no: str, fingerprint: str, owner: str, lease: float) -> Claim:
        reply = await self._eval(
            _CLAIM,
            key,
            refund_no,
            fingerprint,
            owner,
            f"{lease:.6f}",
            str(max(1, round(self.ttl * 1000))),
        )
        try:
            acquired, flat = reply
        except (TypeError, ValueError) as error:
            raise IdempotencyStoreError(f"Redis store: unexpected claim reply for key {key!r}") from error
        return Claim(record=_record(key, flat), acquired=int(acquired) == 1)

    async def finish(self, key: str, *, owner: str, result: RecordedOutcome | RecordedError) -> bool:
        state = RecordState.SUCCEEDED if isinstance(result, RecordedOutcome) else RecordState.FAILED
        reply = await self._eval(_FINISH, key, state.value, dump_result(result) or "")
        return int(reply) == 1

    async def release(self, key: str, *, owner: str) -> None:
        await self._eval(_RELEASE, key, owner)

    async def reopen(self, key: str, *, fingerprint: str, owner: str, lease: float) -> bool:
        reply = await self._eval(_REOPEN, key, fingerprint, owner, f"{lease:.6f}")
        return int(reply) == 1

    async def get(self, key: str) -> IdempotencyRecord | None:
        flat = await self._command("HGETALL", self.prefix + key)
        if not flat:
            return None
        if isinstance(flat, dict):
            flat = [item for pair in flat.items() for item in pair]
        return _record(key, flat)

    async def aclose(self) -> None:
        if self._async_client is not None:
            client, self._async_client = self._async_client, None
            await client.aclose()
        if self._sync_client is not None:
            sync_client, self._sync_client = self._sync_client, None
            await anyio.to_thread.run_sync(sync_client.close)

    # -- plumbing -----------------------------------------------------------------------------

    async def _eval(self, script: str, key: str, *args: str) -> Any:
        return await self._command("EVAL", script, 1, self.prefix + key, *args)

    async def _command(self, *args: Any) -> Any:
        try:
            import redis
        except ImportError:
            raise IdempotencyStoreError(
                'RedisStore needs the redis package: pip install "paykit_async[redis]"'
            ) from None
        try:
            return await self._execute(*args)
        except (ValueError, TypeError) as error:
            # redis-py's URL parsing: its message quotes parts of the URL, a password among them.
            unusable = type(error).__name__
        except (redis.RedisError, OSError) as error:
            # redis-py's messages name the host and port, never the password in the URL.
            reason = str(error) or type(error).__name__
            raise IdempotencyStoreError(f"Redis store failed: {type(error).__name__}: {reason}") from error
        # Raised outside the except block: the parser's error stays out of the chain.
        raise IdempotencyStoreError(f"Redis store: cannot use {url_for_message(self.url)} ({unusable})")

    async def _execute(self, *args: Any) -> Any:
        options: dict[str, Any] = {
            "decode_responses": True,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
        }
        if _on_asyncio():
            if self._async_client is None:
                import redis.asyncio

                self._async_client = redis.asyncio.Redis.from_url(self.url, **options)
            return await self._async_client.execute_command(*args)
        if self._sync_client is None:
            import redis

            self._sync_client = redis.Redis.from_url(self.url, **options)
        loop = anyio.lowlevel.current_token()
        threads = self._threads.get(loop)
        if threads is None:
            threads = self._threads[loop] = anyio.CapacityLimiter(_THREADS)
        client = self._sync_client
        return await anyio.to_thread.run_sync(lambda: client.execute_command(*args), limiter=threads)


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _record(key: str, flat: Sequence[str]) -> IdempotencyRecord:
    try:
        values = dict(zip(flat[::2], flat[1::2], strict=True))
        return IdempotencyRecord(
            key=key,
            refund_no=values["refund_no"],
            fingerprint=values["fingerprint"],
            state=RecordState(values["state"]),
            owner=values.get("owner", ""),
            lease_expires=float(values.get("lease_expires", "0")),
            result=load_result(values.get("result")),
        )
    except (KeyError, ValueError, TypeError) as error:
        raise IdempotencyStoreError(
            f"Redis store: the record for key {key!r} is unreadable ({type(error).__name__})"
        ) from error
