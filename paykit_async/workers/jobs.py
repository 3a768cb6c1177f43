"""The arq job that makes one refund, and the record it leaves as its result.

A job carries the provider, the refund request (the ``refund()`` keyword arguments, as read
from one CSV row), the batch id and the idempotency key the enqueuer derived from the row's
content (:func:`~paykit_async.batch.refund_key`). The worker refunds through
:func:`~paykit_async.batch.refund_many` with that batch id, so the key — and the refund number
derived from it — are exactly those ``paykit refunds run`` would use for the same row: a CSV run
through either path refunds each row once.

A job's result is a plain record (JSON): ``status`` (``succeeded``, ``failed``, ``invalid`` or
``unknown``), the refund number, the provider's refund id, the error and the attempts. An unknown
outcome, or a failure that may pass (a retryable error past the deadline, the idempotency store
unreachable), is not final: the job asks arq to run it again later (:data:`RETRY_DELAYS`), under
the same key and refund number, and only its last try records it as it stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..batch import (
    BatchOutcome,
    BatchStatus,
    order_aliases,
    refund_key,
    refund_many,
    refund_number_rule,
)
from ..errors import PaykitError

__all__ = ["JOB_NAME", "MAX_TRIES", "RETRY_DELAYS", "WorkerState", "outcome_record", "refund_job"]

#: The name the job is enqueued under (arq's function name).
JOB_NAME = "paykit.refund"
#: How many times arq runs one job at most: crashes (a killed worker's job runs again) and
#: deferred retries of unknown outcomes together.
MAX_TRIES = 5
#: Seconds before running a job again whose outcome is not final yet (by try number).
RETRY_DELAYS = (5.0, 15.0, 30.0, 60.0)

#: Where ``on_startup`` leaves the worker's clients in arq's ``ctx``.
STATE_KEY = "paykit"


@attrs.frozen(kw_only=True)
class WorkerState:
    """What one worker process created at startup: a client per configured provider."""

    clients: Mapping[str, Any]
    closers: tuple[Any, ...] = ()


async def refund_job(
    ctx: dict[str, Any],
    provider: str,
    request: dict[str, Any],
    *,
    batch_id: str,
    key: str,
    row: int | None = None,
) -> dict[str, Any]:
    """Refund ``request`` through this worker's ``provider`` client, exactly once (see the module
    documentation); returns the result record."""
    from arq.worker import Retry

    state = ctx.get(STATE_KEY)
    client = state.clients.get(provider) if isinstance(state, WorkerState) else None
    if client is None:
        return _refused(
            row,
            request,
            "WorkerConfigError",
            f"this worker has no [{provider}] configuration; nothing was sent",
        )
    if refund_key(client, request, batch_id=batch_id) != key:
        # Another merchant account than the enqueuer's: its refund would be another refund.
        return _refused(
            row,
            request,
            "WorkerConfigError",
            f"this worker's [{provider}] merchant differs from the one the batch was enqueued for; "
            "nothing was sent",
        )
    finished: list[BatchOutcome] = []
    async with refund_many(client, [request], concurrency=1, batch_id=batch_id) as outcomes:
        finished.extend([one async for one in outcomes])
    outcome = finished[0]
    record = outcome_record(outcome, row)
    if outcome.ok:
        # The order under every name the reply gives it, for earlier_refunds: a later row may
        # name it by another (WeChat's transaction_id for out_trade_no).
        rule = refund_number_rule(client)
        names = rule.orders if rule is not None else ()
        aliases = order_aliases(client, {name: getattr(outcome.result, name, None) for name in names})
        if aliases:
            record["order_keys"] = list(aliases)
    try_number = int(ctx.get("job_try", 1))
    if not _final(outcome) and try_number < MAX_TRIES:
        delay = RETRY_DELAYS[min(try_number, len(RETRY_DELAYS)) - 1]
        raise Retry(defer=delay)
    return record


def _final(outcome: BatchOutcome) -> bool:
    """Whether a later try cannot change the outcome (a success, a definite refusal)."""
    if outcome.status is BatchStatus.UNKNOWN:
        return False
    if outcome.status is BatchStatus.FAILED:
        error = outcome.error
        return not (isinstance(error, PaykitError) and error.retryable)
    return True


def outcome_record(outcome: BatchOutcome, row: int | None) -> dict[str, Any]:
    """The job result for ``outcome``: a ``paykit refunds run`` results line
    (:meth:`BatchOutcome.as_record`; the idempotency store, Redis, holds the refunds)."""
    return outcome.as_record(row)


def _refused(row: int | None, request: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    """The record of a job this worker refused to send."""
    refused = BatchOutcome(
        index=0,
        request=request,
        status=BatchStatus.FAILED,
        error_code=code,
        error_message=message,
        attempts=0,
    )
    return outcome_record(refused, row)
