"""Exactly-once refunds across retries, crashes and workers: the idempotency middleware.

For a refund operation with an ``idempotency_key``, before the first attempt the store durably
records key → (refund number, request fingerprint) and this worker's claim. Then:

- the same key and request later (another process, after a crash) re-sends the *recorded* refund
  number, or replays the recorded final outcome without calling the provider;
- the same key with a different request raises :class:`IdempotencyConflict`; nothing is sent;
- concurrent calls with one key never both reach the provider: the second waits for the first;
- a verified success is recorded and replayed (``Outcome.replayed``); a definite provider refusal
  (a non-retryable ``ProviderError`` whose outcome is known) is recorded and re-raised as the same
  ``ProviderError`` to later calls — use a new key for a new attempt after fixing its cause;
- anything else — an unknown outcome, an exhausted retryable error, cancellation, a crash — leaves
  the record in flight with its refund number, so the next call with the key resumes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time

import anyio
import anyio.lowlevel
import attrs

from ..errors import IdempotencyConflict, ProviderError, RefundOutcomeUnknown, ValidationError
from .core import Handler, Operation, Outcome
from .stores.base import IdempotencyRecord, IdempotencyStore, RecordedError, RecordedOutcome, RecordState

__all__ = ["IdempotencyMiddleware", "request_fingerprint"]

logger = logging.getLogger("paykit_async.idempotency")

#: How long bookkeeping after the call may take when the caller was cancelled.
_SHIELDED_BOOKKEEPING_SECONDS = 10.0


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
    after it — keep it longer than one call with all its retries and waits (the default retry
    policy's deadline is 60 s). ``wait`` bounds how long a call waits for another worker holding a
    live claim on the same key before raising :class:`RefundOutcomeUnknown`.
    Operations without a key, and non-refund operations, pass straight through. When a key
    already has a refund number, that number replaces the operation's (also one the caller chose).
    """

    def __init__(self, store: IdempotencyStore, *, lease: float = 120.0, wait: float = 30.0) -> None:
        if lease <= 0 or wait < 0:
            raise ValidationError("lease must be > 0 and wait >= 0")
        self.store = store
        self.lease = lease
        self.wait = wait

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
        fingerprint = request_fingerprint(operation)
        owner = secrets.token_hex(16)
        record = await self._acquire(
            key,
            refund_no=refund_no,
            chosen=not operation.refund_no_generated,
            fingerprint=fingerprint,
            owner=owner,
        )
        if record.state is RecordState.SUCCEEDED:
            return _replay(record)
        if record.state is RecordState.FAILED:
            raise _replay_error(record)
        if record.refund_no != refund_no:
            logger.info("idempotency key resumes refund %s", record.refund_no)
            fields = dict(operation.fields)
            fields[operation.refund_no_field] = record.refund_no
            operation = attrs.evolve(operation, fields=fields)
        try:
            outcome = await call_next(operation)
        except ProviderError as error:
            if error.retryable or error.outcome_unknown:
                await self._release(key, owner)
            else:
                result = RecordedError(code=error.code, message=error.message, raw=error.raw)
                await self._finish(key, owner, result)
            raise
        except BaseException:
            # Unknown outcome, cancellation, anything: keep the refund number, free the claim.
            await self._release(key, owner)
            raise
        result_ok = RecordedOutcome(
            fields=outcome.fields,
            status_code=outcome.status_code,
            settled_by_query=outcome.settled_by_query,
        )
        await self._finish(key, owner, result_ok)
        return outcome

    async def _acquire(
        self, key: str, *, refund_no: str, chosen: bool, fingerprint: str, owner: str
    ) -> IdempotencyRecord:
        """Claims ``key``, waiting (polling) while another worker holds a live claim on it.

        The key conflicts when the request differs, or when the caller chose a refund number (or,
        for PAYJS, an order) other than the one recorded; a client-minted number is replaced.
        """
        give_up_at = time.monotonic() + self.wait
        pause = 0.02
        while True:
            # Shielded, so a cancellation cannot strand a claim the store made but we never saw;
            # a claim won just as the caller was cancelled is released at once.
            with anyio.CancelScope(shield=True), anyio.fail_after(_SHIELDED_BOOKKEEPING_SECONDS):
                claim = await self.store.claim(
                    key, refund_no=refund_no, fingerprint=fingerprint, owner=owner, lease=self.lease
                )
            if claim.acquired:
                try:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                except BaseException:
                    await self._release(key, owner)
                    raise
            record = claim.record
            if record.fingerprint != fingerprint or (chosen and record.refund_no != refund_no):
                if claim.acquired:
                    await self._release(key, owner)
                raise IdempotencyConflict(
                    "this idempotency key was used for a different request; nothing was sent",
                    key=key,
                )
            if claim.acquired or record.state is not RecordState.IN_FLIGHT:
                return record
            if time.monotonic() + pause > give_up_at:
                raise RefundOutcomeUnknown(
                    f"refund {record.refund_no} is being sent by another worker; call again with "
                    "the same idempotency key to get its outcome",
                    refund_no=record.refund_no,
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, 0.5)

    async def _finish(self, key: str, owner: str, result: RecordedOutcome | RecordedError) -> None:
        # Shielded: a cancellation arriving now must not lose a verified result.
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SHIELDED_BOOKKEEPING_SECONDS):
            try:
                await self.store.finish(key, owner=owner, result=result)
            except Exception:
                # The record stays in flight with its refund number: the next call re-sends the
                # same number, which the provider answers idempotently.
                logger.exception("could not record the result for an idempotency key")

    async def _release(self, key: str, owner: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SHIELDED_BOOKKEEPING_SECONDS):
            try:
                await self.store.release(key, owner=owner)
            except Exception:
                # The lease then simply runs out; the record is still resumable.
                logger.exception("could not release an idempotency claim")


def _replay(record: IdempotencyRecord) -> Outcome:
    result = record.result
    assert isinstance(result, RecordedOutcome)
    return Outcome(
        fields=dict(result.fields),
        status_code=result.status_code,
        attempts=0,
        settled_by_query=result.settled_by_query,
        replayed=True,
    )


def _replay_error(record: IdempotencyRecord) -> ProviderError:
    result = record.result
    assert isinstance(result, RecordedError)
    return ProviderError(result.code, result.message, retryable=False, raw=result.raw)
