"""Refunds on arq workers over Redis (extra ``workers``): batches beyond one machine.

One job per refund; any number of worker processes on any number of machines take them from
one Redis, which also holds the idempotency records (:class:`~paykit_async.pipeline.stores.RedisStore`)
and each merchant's rate-limit window, so every refund is made once and the merchant's requests
per second stay within the ``rate_limit`` of the configuration, whatever the number of workers::

    # workers.py — run with: arq workers.WorkerSettings   (or: paykit worker --config ... --redis ...)
    from paykit_async.workers import worker_settings

    WorkerSettings = worker_settings("paykit.toml", redis_url="redis://localhost:6379/0")

``paykit refunds enqueue`` queues a CSV's rows (the job id is the row's identity: enqueueing it
again adds nothing) and ``paykit refunds status`` reports a batch's progress. A worker that dies
mid-refund leaves its jobs in the queue; arq runs them again on another worker about a minute
later (:mod:`~paykit_async.workers.settings`), and they resume under the same refund numbers.

Nothing below the integrations imports this package; it needs ``arq`` (and so ``redis``) and
``limits``.
"""

from .batches import (
    BatchProgress,
    JobRecord,
    batch_key,
    batch_progress,
    connect,
    earlier_refunds,
    enqueue_refund,
    job_id_for,
    other_batch_refunds,
)
from .jobs import JOB_NAME, MAX_TRIES, RETRY_DELAYS, WorkerState, outcome_record, refund_job
from .settings import (
    IDEMPOTENCY_LEASE,
    JOB_TIMEOUT,
    KEEP_RESULTS,
    QUEUE_NAME,
    REFUND_DEADLINE,
    worker_settings,
)

__all__ = [
    "IDEMPOTENCY_LEASE",
    "JOB_NAME",
    "JOB_TIMEOUT",
    "KEEP_RESULTS",
    "MAX_TRIES",
    "QUEUE_NAME",
    "REFUND_DEADLINE",
    "RETRY_DELAYS",
    "BatchProgress",
    "JobRecord",
    "WorkerState",
    "batch_key",
    "batch_progress",
    "connect",
    "earlier_refunds",
    "enqueue_refund",
    "job_id_for",
    "other_batch_refunds",
    "outcome_record",
    "refund_job",
    "worker_settings",
]
