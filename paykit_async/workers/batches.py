"""Batches on the queue: enqueue refund jobs by row identity, and read a batch's progress.

A row's job id is ``paykit:`` + its idempotency key (:func:`~paykit_async.batch.refund_key`: the
batch id and a hash of the refund's content at the merchant), so enqueueing a row again — the same
CSV twice, an edited CSV — finds its job (queued, running or succeeded) and adds nothing; a job that
finished without a success may be queued again (``retry_failed``), under the same number. Each
batch keeps a Redis hash ``paykit:batch:<batch id>`` of its job ids and their row numbers, which
``batch_progress`` reads back with the jobs' results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from ..batch import EarlierRefund, RefundOrder
from .jobs import JOB_NAME
from .settings import JOB_EXPIRES, KEEP_RESULTS, QUEUE_NAME, dumps, loads

__all__ = [
    "BatchProgress",
    "JobRecord",
    "batch_key",
    "batch_progress",
    "connect",
    "earlier_refunds",
    "enqueue_refund",
    "job_id_for",
    "other_batch_refunds",
]

#: Statuses of :class:`JobRecord`, as ``paykit refunds status`` counts them.
DONE, FAILED, UNKNOWN, PENDING = "done", "failed", "unknown", "pending"
_READ_CHUNK = 500


def job_id_for(key: str) -> str:
    """The arq job id of the refund with idempotency key ``key``."""
    return f"paykit:{key}"


def batch_key(batch_id: str) -> str:
    """The Redis hash listing the jobs of ``batch_id``."""
    return f"paykit:batch:{batch_id}"


async def connect(redis_url: str, *, queue_name: str = QUEUE_NAME) -> Any:
    """An arq Redis pool for enqueueing and reading paykit jobs (JSON, never pickle)."""
    from arq.connections import create_pool

    from .settings import redis_settings

    settings = redis_settings(redis_url)
    settings.conn_retries = 0  # a command says at once that Redis is unreachable
    return await create_pool(
        settings, job_serializer=dumps, job_deserializer=loads, default_queue_name=queue_name
    )


async def enqueue_refund(
    pool: Any,
    *,
    provider: str,
    request: Mapping[str, Any],
    batch_id: str,
    key: str,
    row: int | None = None,
    queue_name: str = QUEUE_NAME,
    retry_failed: bool = False,
    order: RefundOrder | None = None,
    refund_no: str | None = None,
) -> bool:
    """Queue the refund ``request`` (``refund()`` arguments) under ``key``; False when its job
    already exists — queued, running, or finished within :data:`KEEP_RESULTS`.

    With ``retry_failed`` a job that finished without a success (a refusal — a wrong key, a
    balance —, an outcome still unknown, a job arq gave up on) is queued again under the same job
    id, so the worker resends it under the same refund number (the provider dedupes by it): after
    fixing the cause, enqueueing the file again finishes the batch, as ``paykit refunds run`` does.

    ``order`` (:func:`~paykit_async.batch.order_of`) and ``refund_no`` are recorded with the job in
    the batch's listing, so that :func:`earlier_refunds` can tell a row edited after it was queued.
    """
    job_id = job_id_for(key)
    listing = batch_key(batch_id)
    entry: dict[str, Any] = {"row": row, "provider": provider}
    if order is not None:
        entry.update(order=order.key, order_text=order.order, amounts=order.amounts, refund_no=refund_no)
    await pool.hset(listing, job_id, json.dumps(entry))
    await pool.expire(listing, KEEP_RESULTS)
    if retry_failed:
        await _forget_unsuccessful_result(pool, job_id, row)
    job = await pool.enqueue_job(
        JOB_NAME,
        provider,
        dict(request),
        batch_id=batch_id,
        key=key,
        row=row,
        _job_id=job_id,
        _queue_name=queue_name,
        _expires=JOB_EXPIRES,
    )
    return job is not None


async def _forget_unsuccessful_result(pool: Any, job_id: str, row: int | None) -> None:
    """Delete the result of job ``job_id`` unless it is a success, so that it can be queued again."""
    from arq.constants import result_key_prefix
    from arq.jobs import deserialize_result

    raw = await pool.get(result_key_prefix + job_id)
    if raw is None:
        return
    result = deserialize_result(raw, deserializer=loads)
    if _finished(job_id, row, result.success, result.result, result.job_try).progress != DONE:
        await pool.delete(result_key_prefix + job_id)


@attrs.frozen(kw_only=True)
class JobRecord:
    """One job of a batch: ``progress`` is done, failed, unknown or pending; ``record`` the job's
    result (the fields of a ``paykit refunds run`` results line) once it has one."""

    job_id: str
    row: int | None
    progress: str
    record: Mapping[str, Any]
    tries: int = 0


@attrs.frozen(kw_only=True)
class BatchProgress:
    """Every job of a batch, by row; ``counts`` per progress (done, failed, unknown, pending)."""

    batch_id: str
    jobs: Sequence[JobRecord]

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((DONE, FAILED, UNKNOWN, PENDING), 0)
        for job in self.jobs:
            counts[job.progress] += 1
        return counts

    @property
    def finished(self) -> bool:
        """No job is pending any more."""
        return all(job.progress != PENDING for job in self.jobs)

    @property
    def all_done(self) -> bool:
        """Every refund of the batch succeeded."""
        return all(job.progress == DONE for job in self.jobs)


async def batch_progress(pool: Any, batch_id: str) -> BatchProgress:
    """The progress of ``batch_id``: each job's result (read in chunks), or pending."""
    listing = await pool.hgetall(batch_key(batch_id))
    members = sorted(
        ((_text(job_id), json.loads(_text(value))) for job_id, value in listing.items()),
        key=lambda item: (item[1].get("row") is None, item[1].get("row") or 0, item[0]),
    )
    return BatchProgress(batch_id=batch_id, jobs=await _job_records(pool, members))


async def earlier_refunds(
    pool: Any, batch_id: str, *, present: Callable[[str], bool]
) -> tuple[dict[str, tuple[EarlierRefund, ...]], frozenset[str]]:
    """What ``batch_id``'s listing says of rows edited away, for
    :func:`~paykit_async.batch.edited_row_refusal`: by order key, the refunds of the jobs whose
    idempotency key is not ``present`` in the file any more and that succeeded, may have (outcome
    unknown) or still may (queued, running); and the keys of every job of those orders. Jobs
    queued without their order (by an older paykit) are not seen."""
    listing = await pool.hgetall(batch_key(batch_id))
    prefix = len(job_id_for(""))
    by_order: dict[str, list[str]] = {}
    gone: list[tuple[str, Any]] = []
    for raw_id, value in listing.items():
        job_id, info = _text(raw_id), json.loads(_text(value))
        order = info.get("order")
        if isinstance(order, str):
            by_order.setdefault(order, []).append(job_id[prefix:])
            if not present(job_id[prefix:]):
                gone.append((job_id, info))
    earlier: dict[str, list[EarlierRefund]] = {}
    for refund, orders in await _refunds_that_may_have_paid(pool, gone):
        for order in orders:
            earlier.setdefault(order, []).append(refund)
    keys = frozenset(key for order in earlier for key in by_order.get(order, ()))
    return {order: tuple(refunds) for order, refunds in earlier.items()}, keys


async def other_batch_refunds(
    pool: Any, batch_id: str
) -> tuple[dict[tuple[str, str], tuple[EarlierRefund, ...]], frozenset[str]]:
    """What the listings of every *other* batch id say, for
    :func:`~paykit_async.batch.repeated_row_refusal`: by (order key, amounts), the refunds their
    jobs made, may have made (outcome unknown) or still may (queued, running) — under each name the
    provider's reply gave the order — and the keys of the jobs ``batch_id`` itself has queued (a
    row queued before is never refused as a repeat). Listings expire with the results they list
    (:data:`KEEP_RESULTS`)."""
    own = batch_key(batch_id)
    prefix = len(batch_key(""))
    other: dict[tuple[str, str], list[EarlierRefund]] = {}
    async for raw_name in pool.scan_iter(match=batch_key("*"), count=500):
        name = _text(raw_name)
        if name == own:
            continue
        listed = [
            (job_id, info)
            for job_id, info in (
                (_text(raw_id), json.loads(_text(value)))
                for raw_id, value in (await pool.hgetall(name)).items()
            )
            if isinstance(info.get("order"), str)
        ]
        for refund, orders in await _refunds_that_may_have_paid(pool, listed, batch=name[prefix:]):
            for order in orders:
                other.setdefault((order, refund.amounts), []).append(refund)
    job_prefix = len(job_id_for(""))
    claimed = frozenset(_text(job_id)[job_prefix:] for job_id in await pool.hkeys(own))
    return {key: tuple(refunds) for key, refunds in other.items()}, claimed


async def _refunds_that_may_have_paid(
    pool: Any, listed: Sequence[tuple[str, Any]], *, batch: str | None = None
) -> list[tuple[EarlierRefund, tuple[str, ...]]]:
    """The jobs of ``listed`` (job id, listing entry with its order) that did not fail, each as
    an :class:`EarlierRefund` with the order keys it is known by: the listed one and every name the
    provider's reply gave the order (see refund_job)."""
    found: list[tuple[EarlierRefund, tuple[str, ...]]] = []
    for job, (_job_id, info) in zip(await _job_records(pool, listed), listed, strict=True):
        if job.progress == FAILED:
            continue
        refund = EarlierRefund(
            order=str(info.get("order_text")),
            amounts=str(info.get("amounts")),
            refund_no=str(job.record.get("refund_no") or info.get("refund_no")),
            succeeded=job.progress == DONE,
            batch=batch,
        )
        aliases = job.record.get("order_keys")
        names = [info["order"], *(aliases if isinstance(aliases, list) else ())]
        found.append((refund, tuple(dict.fromkeys(name for name in names if isinstance(name, str)))))
    return found


async def _job_records(pool: Any, members: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[JobRecord, ...]:
    """Each job's result (read in chunks), or pending."""
    from arq.constants import in_progress_key_prefix, result_key_prefix
    from arq.jobs import deserialize_result

    jobs: list[JobRecord] = []
    for start in range(0, len(members), _READ_CHUNK):
        chunk = members[start : start + _READ_CHUNK]
        results = await pool.mget([result_key_prefix + job_id for job_id, _ in chunk])
        running = await pool.mget([in_progress_key_prefix + job_id for job_id, _ in chunk])
        for (job_id, info), raw, in_progress in zip(chunk, results, running, strict=True):
            row = info.get("row")
            if raw is None:
                state = "running" if in_progress is not None else "queued"
                jobs.append(
                    JobRecord(job_id=job_id, row=row, progress=PENDING, record={"row": row, "status": state})
                )
                continue
            result = deserialize_result(raw, deserializer=loads)
            jobs.append(_finished(job_id, row, result.success, result.result, result.job_try))
    return tuple(jobs)


def _finished(job_id: str, row: int | None, success: bool, result: Any, tries: int) -> JobRecord:
    if success and isinstance(result, Mapping):
        status = result.get("status")
        progress = {"succeeded": DONE, "failed": FAILED, "invalid": FAILED}.get(str(status), UNKNOWN)
        return JobRecord(job_id=job_id, row=row, progress=progress, record=dict(result), tries=tries)
    # arq gave up on the job itself (a timeout, too many tries after crashes, expired in the
    # queue): the refund may or may not have been made — settle it by running the row again.
    record = {
        "row": row,
        "status": "unknown",
        "error_code": "JobFailed",
        "error_message": f"the job did not finish: {result}",
    }
    return JobRecord(job_id=job_id, row=row, progress=UNKNOWN, record=record, tries=tries)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
