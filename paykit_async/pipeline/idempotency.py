"""Exactly-once refunds across retries, crashes and workers: the idempotency middleware.

For a refund operation with an ``idempotency_key``, before the first attempt the store durably
records key → (refund number, request fingerprint) and this worker's claim. Then:

- the same key and request later (another process, after a crash) re-sends the *recorded* refund
  number, or replays the recorded final outcome without calling the provider;
- the same key with a different request raises :class:`IdempotencyConflict`; nothing is sent;
- concurrent calls with one key never both reach the provider: the second waits for the first;
- a verified success is recorded and replayed (``Outcome.replayed``); a definite provider refusal
  (a non-retryable ``ProviderError`` whose outcome is known) is recorded and re-raised as the same
  ``ProviderError`` to later calls — unless the middleware was made with ``retry_failed=True``:
  then a later call re-sends it under the same refund number (nothing was executed under it, and
  the provider dedupes by it), so a refusal caused by a wrong key or balance can be retried once
  the cause is fixed;
- anything else — an unknown outcome, an exhausted retryable error, cancellation, a crash — leaves
  the record in flight with its refund number, so the next call with the key resumes it.

The store is the fast path and the record of outcomes, not the only guard: the clients derive a
keyed refund's number from the key itself (:func:`~paykit_async.refund_numbers.derive_refund_no`),
so even a lost or restored store sends the provider the number it already knows.

Failures of the store never escape raw: before anything is sent they raise
:class:`IdempotencyStoreError` (nothing was sent); after the provider answered, a failure to record
the outcome is logged and the known result returned (or ``RefundOutcomeUnknown`` raised when the
result is unknown), and the claim lapses at the end of its lease. Every wait on the store — for a
lock, for another worker's claim — is bounded by the call's deadline.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import attrs

from ..errors import (
    IdempotencyConflict,
    IdempotencyStoreError,
    ProviderError,
    RefundOutcomeUnknown,
    ValidationError,
)
from .clock import Clock, MonotonicClock
from .core import Handler, Operation, Outcome
from .deadline import call_deadline, remaining
from .stores.base import IdempotencyRecord, IdempotencyStore, RecordedError, RecordedOutcome, RecordState

__all__ = ["IdempotencyMiddleware", "request_fingerprint"]

logger = logging.getLogger("paykit_async.idempotency")

_T = TypeVar("_T")

_STATES = {
    RecordState.IN_FLIGHT: "outcome not yet known",
    RecordState.SUCCEEDED: "succeeded",
    RecordState.FAILED: "refused",
}

#: How long a store call may take when the call has no deadline.
_STORE_CALL_SECONDS = 30.0
#: Recording an outcome after the provider answered gets at least this long, even at the deadline ...
_BOOKKEEPING_GRACE = 1.0
#: ... and at most this long: the answer is in hand, and a record that could not be written only
#: means the next call re-sends the same number, which the provider answers with the same refund.
_BOOKKEEPING_CAP = 5.0


def request_fingerprint(operation: Operation) -> str:
    """A stable SHA-256 of the provider, operation name and business fields, minus the refund number.

    The refund number is left out because a client may mint a fresh one per call; the key fixes
    it. A number the *caller* chose is checked against the recorded one separately.
    """
    fields = {k: v for k, v in operation.fields.items() if k != operation.refund_no_field}
    document = {"provider": operation.provider, "name": operation.name, "fields": fields}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class IdempotencyMiddleware:
    """Applies an :class:`IdempotencyStore` to refund operations that carry an idempotency key.

    ``lease`` (seconds) is how long a claim stays exclusive; a crashed worker's claim is taken over
    after it — keep it longer than one call with all its retries and waits (``deadline``).
    ``wait`` bounds how long a call waits for another worker holding a live claim on the same key
    before raising :class:`RefundOutcomeUnknown`. ``deadline`` (seconds, the client passes its
    retry policy's) bounds the whole call, waits on the store included; ``clock`` measures it.
    ``retry_failed`` re-sends a key whose recorded outcome is a definite refusal (see the module).
    Operations without a key, and non-refund operations, pass straight through. When a key
    already has a refund number, that number replaces the operation's (also one the caller chose).
    """

    def __init__(
        self,
        store: IdempotencyStore,
        *,
        lease: float = 120.0,
        wait: float = 30.0,
        deadline: float | None = None,
        retry_failed: bool = False,
        clock: Clock | None = None,
    ) -> None:
        if not lease > 0 or not wait >= 0:
            raise ValidationError("lease must be > 0 and wait >= 0")
        if deadline is not None and not lease > deadline:
            raise ValidationError(
                f"the lease ({lease:g} s) must be longer than the call's deadline ({deadline:g} s), "
                "or another worker could take over a refund still being sent",
                field="idempotency_lease",
            )
        self.store = store
        self.lease = lease
        self.wait = wait
        self.deadline = deadline
        self.retry_failed = retry_failed
        self.clock: Clock = clock if clock is not None else MonotonicClock()

    def __repr__(self) -> str:
        return f"<IdempotencyMiddleware {self.store!r}>"

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        key = operation.idempotency_key
        if key is None or operation.refund_no_field is None:
            return await call_next(operation)
        if not key:
            raise ValidationError("must not be empty", field="idempotency_key")
        refund_no = operation.refund_no
        if not refund_no:
            raise ValidationError(
                "a keyed refund needs its refund number before the first attempt",
                field=operation.refund_no_field,
            )
        with call_deadline(self.clock, self.deadline) as deadline:
            return await self._keyed(operation, call_next, key, refund_no, deadline)

    async def _keyed(
        self, operation: Operation, call_next: Handler, key: str, refund_no: str, deadline: float | None
    ) -> Outcome:
        fingerprint = request_fingerprint(operation)
        owner = secrets.token_hex(16)
        record = await self._acquire(
            key,
            refund_no=refund_no,
            chosen=not operation.refund_no_generated,
            fingerprint=fingerprint,
            owner=owner,
            deadline=deadline,
        )
        if record.state is RecordState.SUCCEEDED:
            return _replay(record)
        if record.state is RecordState.FAILED:
            raise _replay_error(record)
        resumed = record.refund_no != refund_no
        if resumed:
            logger.info("idempotency key resumes refund %s", record.refund_no)
            fields = dict(operation.fields)
            fields[operation.refund_no_field or ""] = record.refund_no
            operation = attrs.evolve(operation, fields=fields)
        try:
            outcome = await call_next(operation)
        except ProviderError as error:
            if error.retryable or error.outcome_unknown:
                await self._release(key, owner, deadline)
            else:
                result = RecordedError(code=error.code, message=error.message, raw=error.raw)
                await self._finish(key, owner, result, deadline)
            raise
        except BaseException:
            # Unknown outcome, cancellation, anything: keep the refund number, free the claim.
            await self._release(key, owner, deadline)
            raise
        result_ok = RecordedOutcome(
            fields=outcome.fields,
            status_code=outcome.status_code,
            settled_by_query=outcome.settled_by_query,
        )
        await self._finish(key, owner, result_ok, deadline)
        # The caller built its operation with another number: say which one the reply is about.
        return attrs.evolve(outcome, refund_no=record.refund_no) if resumed else outcome

    async def _acquire(
        self,
        key: str,
        *,
        refund_no: str,
        chosen: bool,
        fingerprint: str,
        owner: str,
        deadline: float | None,
    ) -> IdempotencyRecord:
        """Claims ``key``, waiting (polling) while another worker holds a live claim on it.

        The key conflicts when the request differs, or when the caller chose a refund number (or,
        for PAYJS, an order) other than the one recorded; a client-minted number is replaced.
        With ``retry_failed``, a recorded refusal is reopened (under its number) and claimed.
        """
        left = remaining(self.clock, deadline)
        give_up_at = time.monotonic() + (self.wait if left is None else max(0.0, min(self.wait, left)))
        pause = 0.02
        may_reopen = self.retry_failed
        while True:
            claim = await self._claim_call(
                key,
                owner,
                deadline,
                lambda: self.store.claim(
                    key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=self.lease
                ),
            )
            record = claim.record
            acquired = claim.acquired
            if (
                may_reopen
                and record.state is RecordState.FAILED
                and not (chosen and record.refund_no != refund_no)
            ):
                may_reopen = False
                reopened = await self._claim_call(
                    key,
                    owner,
                    deadline,
                    lambda: self.store.reopen(key, fingerprint=fingerprint, owner=owner, lease=self.lease),
                )
                if reopened:
                    logger.info(
                        "re-sending refund %s, refused before, under the same number", record.refund_no
                    )
                    record = attrs.evolve(
                        record, state=RecordState.IN_FLIGHT, fingerprint=fingerprint, owner=owner, result=None
                    )
                    acquired = True
                else:
                    continue  # another worker reopened or changed it meanwhile: look again
            if acquired:
                try:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                except BaseException:
                    await self._release(key, owner, deadline)
                    raise
            if record.fingerprint != fingerprint or (chosen and record.refund_no != refund_no):
                if acquired:
                    await self._release(key, owner, deadline)
                what = "refund number" if record.fingerprint == fingerprint else "request"
                raise IdempotencyConflict(
                    f"this idempotency key was used for a different {what} (refund {record.refund_no}, "
                    f"{_STATES[record.state]}); nothing was sent",
                    key=key,
                )
            if acquired or record.state is not RecordState.IN_FLIGHT:
                return record
            if time.monotonic() + pause > give_up_at:
                raise RefundOutcomeUnknown(
                    f"refund {record.refund_no} is being sent by another worker; call again with "
                    "the same idempotency key to get its outcome",
                    refund_no=record.refund_no,
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _claim_call(
        self, key: str, owner: str, deadline: float | None, call: Callable[[], Awaitable[_T]]
    ) -> _T:
        """A claim (or reopen) within the call's deadline, as :class:`IdempotencyStoreError` on
        failure. Shielded, so a cancellation cannot strand a claim the store made but we never
        saw; if it fails or times out, the claim it may have made is released."""
        left = remaining(self.clock, deadline)
        bound = _STORE_CALL_SECONDS if left is None else max(0.0, left)
        try:
            with anyio.CancelScope(shield=True), anyio.fail_after(bound):
                result = await call()
        except TimeoutError:
            await self._release(key, owner, deadline)
            raise IdempotencyStoreError(
                f"the idempotency store did not answer within the call's deadline ({bound:.3g} s "
                "left); nothing was sent"
            ) from None
        except IdempotencyStoreError:
            raise  # the store's call failed as a whole: it made no claim
        except Exception as error:
            # A store outside this package that lets its driver's errors out.
            await self._release(key, owner, deadline)
            raise IdempotencyStoreError(
                f"the idempotency store failed ({type(error).__name__}: {error}); nothing was sent"
            ) from error
        except BaseException:
            # A cancellation the shield cannot hold: asyncio's ``Task.cancel()`` (``asyncio.timeout``,
            # ``wait_for``, a server cancelling its handler) goes through anyio's shield. The store
            # may have made the claim without our seeing it: release it, or it would turn every
            # call with this key away as "being sent by another worker" until its lease ran out.
            await self._release(key, owner, deadline)
            raise
        return result

    async def _finish(
        self, key: str, owner: str, result: RecordedOutcome | RecordedError, deadline: float | None
    ) -> None:
        until = self._bookkeeping_until(deadline)

        async def finish() -> None:
            failed = await self._bookkeeping(
                lambda: self.store.finish(key, owner=owner, result=result), until, "record the outcome"
            )
            if failed:
                # The record stays in flight with its refund number: the next call re-sends the same
                # number, which the provider answers idempotently. Free the claim so it need not wait.
                release = functools.partial(self.store.release, key, owner=owner)
                await self._bookkeeping(release, until, "release a claim")

        await despite_native_cancellation(finish)

    async def _release(self, key: str, owner: str, deadline: float | None) -> None:
        # If this fails too, the lease simply runs out; the record is still resumable.
        until = self._bookkeeping_until(deadline)
        await despite_native_cancellation(
            lambda: self._bookkeeping(lambda: self.store.release(key, owner=owner), until, "release a claim")
        )

    def _bookkeeping_until(self, deadline: float | None) -> float:
        """When bookkeeping after the provider call must stop (``time.monotonic``): the call's
        deadline, but at least ``_BOOKKEEPING_GRACE`` and at most ``_BOOKKEEPING_CAP`` from now."""
        left = remaining(self.clock, deadline)
        window = _BOOKKEEPING_CAP if left is None else min(_BOOKKEEPING_CAP, max(_BOOKKEEPING_GRACE, left))
        return time.monotonic() + window

    async def _bookkeeping(self, call: Callable[[], Awaitable[object]], until: float, what: str) -> bool:
        """Runs a store call after the provider was (or may have been) called; True if it failed.

        Bounded by ``until``, shielded from cancellation (a verified result must not be lost to a
        cancellation arriving now), and never raising: the caller's result matters more.
        """
        bound = max(0.1, until - time.monotonic())
        with anyio.CancelScope(shield=True), anyio.move_on_after(bound) as scope:
            try:
                await call()
            except Exception as error:
                logger.error("could not %s for an idempotency key: %s", what, error)
                return True
        if scope.cancelled_caught:
            logger.error("could not %s for an idempotency key within %.3g s", what, bound)
            return True
        return False


async def despite_native_cancellation(bookkeeping: Callable[[], Awaitable[object]]) -> None:
    """Runs ``bookkeeping`` (shielded store calls that are safe to repeat) to its end.

    anyio's shield holds anyio's cancellation, but not asyncio's ``Task.cancel()`` — what
    ``asyncio.timeout``, ``asyncio.wait_for`` and servers cancelling a handler use: it interrupts
    the store call at its await, leaving an outcome unrecorded or a claim held for its whole lease.
    Then the bookkeeping runs once more (the cancellation has been delivered; the task is not
    cancelled again unless someone cancels it again) and the cancellation goes on.
    """
    try:
        await bookkeeping()
    except BaseException:
        await bookkeeping()
        raise


def _replay(record: IdempotencyRecord) -> Outcome:
    result = record.result
    assert isinstance(result, RecordedOutcome)
    return Outcome(
        fields=dict(result.fields),
        status_code=result.status_code,
        attempts=0,
        settled_by_query=result.settled_by_query,
        replayed=True,
        refund_no=record.refund_no,
    )


def _replay_error(record: IdempotencyRecord) -> ProviderError:
    result = record.result
    assert isinstance(result, RecordedError)
    return ProviderError(result.code, result.message, retryable=False, raw=result.raw)
