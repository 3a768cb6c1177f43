"""``paykit refunds enqueue``, ``paykit refunds status`` and ``paykit worker``: batches on arq.

    paykit refunds enqueue FILE.csv --provider P --config paykit.toml --redis URL [--batch-id ID]
    paykit worker --config paykit.toml --redis URL [--concurrency N]      # any number, anywhere
    paykit refunds status --redis URL --batch-id ID [--out results.jsonl] [--wait]

A row is keyed exactly as ``paykit refunds run`` keys it — by its content and the batch id
(:func:`~paykit_async.batch.refund_key`), the same default batch id included — so its job id, its
idempotency key and its refund number are the same whichever command runs it, however often: a
CSV run through either path refunds each row once. These commands need the ``workers`` extra.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console
from rich.table import Table

from ..batch import InvalidRequest, order_of, refund_key
from ..errors import IdempotencyConflict, ValidationError
from ..redaction import check_redis_url, url_for_message
from .app import CONFIG_HELP, PROVIDER_CHOICE, cli, fail, json_default
from .config import ConfigError, build_client, load_settings
from .provider_check import CHECKED_PROVIDERS, ProviderRefunds, ask_provider, provider_refusal
from .refunds import DEFAULT_BATCH_ID, _Edits, _short, _Survey, refunds
from .rows import CsvRefunds, HeaderError

__all__ = ["refunds_enqueue", "refunds_status", "worker"]

_REDIS_HELP = "The Redis the workers share: redis://[:password@]host:port/db (or rediss://, unix://)."
_QUEUE_HELP = "The arq queue of the refund jobs."


def _workers_module() -> Any:
    """The workers integration, or one line naming the extra when its libraries are missing.

    ``paykit_async.workers`` imports ``arq`` only inside its functions, so the libraries are
    imported here, before anything is read or queued."""
    try:
        import arq  # noqa: F401
        import redis  # noqa: F401

        import paykit_async.workers as workers
    except ModuleNotFoundError as exc:
        fail(
            f'this command needs the workers extra: pip install "paykit_async[workers]" (missing: {exc.name})'
        )
    return workers


def _check_redis_url(url: str) -> None:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        fail("--redis must be a redis://, rediss:// or unix:// URL")
    try:
        check_redis_url(url, "--redis")
    except ValidationError as exc:
        fail(exc.message)


def _where(url: str) -> str:
    """A Redis URL without its password, for messages."""
    return url_for_message(url)


async def _connect(workers: Any, redis_url: str, queue: str) -> Any:
    try:
        return await workers.connect(redis_url, queue_name=queue)
    except Exception as exc:  # redis' connection errors, a bad URL
        fail(f"cannot reach Redis at {_where(redis_url)}: {exc}")


# --------------------------------------------------------------------------- enqueue


@refunds.command("enqueue")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--provider", "-p", type=PROVIDER_CHOICE, required=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option("--redis", "redis_url", required=True, help=_REDIS_HELP)
@click.option(
    "--batch-id",
    help="Scopes row identities, as for 'paykit refunds run' "
    f"[default: {DEFAULT_BATCH_ID!r}, the same as 'paykit refunds run'].",
)
@click.option("--queue", default="paykit:queue", show_default=True, help=_QUEUE_HELP)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="One JSON line per row: what was queued."
)
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="Queue again rows whose job ended without a success (refused, unknown), under the same "
    "refund number (after fixing a key, a balance); --no-retry-failed leaves them as they ended.",
)
@click.option(
    "--repeat-other-batches",
    is_flag=True,
    help="Queue rows whose order and amounts another --batch-id on this Redis has refunded (a second "
    "refund on purpose); without it they are refused and not queued.",
)
@click.option(
    "--check-provider",
    is_flag=True,
    help="Before queueing a row, ask the provider which refunds its order has (one refund query per "
    "order; WeChat Pay v2), as 'paykit refunds run --check-provider' does.",
)
def refunds_enqueue(
    csv_file: Path,
    provider: str,
    config_file: Path | None,
    redis_url: str,
    batch_id: str | None,
    queue: str,
    out: Path | None,
    retry_failed: bool,
    repeat_other_batches: bool,
    check_provider: bool,
) -> None:
    """Queue one refund job per row of FILE.csv for 'paykit worker' processes.

    Each row is checked as 'paykit refunds run' checks it (the client's own checks, ambiguous
    duplicates refused) and queued under its identity: queueing the same file again — or an edited
    one — adds the rows not queued before and, unless --no-retry-failed, queues again the rows whose
    job ended without a success; a succeeded row is never queued again. Follow the batch with
    'paykit refunds status'.
    Exit status 1 when some rows were not queued (see --out), 2 for a bad file or configuration.
    """
    _check_redis_url(redis_url)
    if batch_id is not None and not batch_id.strip():
        fail("--batch-id must not be empty")
    if check_provider and provider not in CHECKED_PROVIDERS:
        fail(
            f"--check-provider is for {', '.join(CHECKED_PROVIDERS)} only: the {provider} API cannot "
            "list the refunds of an order"
        )
    workers = _workers_module()
    rows = CsvRefunds(path=csv_file, provider=provider)
    batch = batch_id if batch_id is not None else DEFAULT_BATCH_ID
    try:
        rows.header()
        settings = load_settings(provider, config_file)
        client = build_client(settings)
        survey = _Survey.of(rows, client, batch)
    except (ConfigError, HeaderError) as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {csv_file}: {exc}")
    sink = sys.stdout if out is None else None
    if out is not None:
        try:
            sink = out.open("w", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
    assert sink is not None
    try:
        counts = anyio.run(
            lambda: _enqueue_rows(
                workers,
                client,
                rows,
                survey,
                batch,
                redis_url,
                queue,
                provider,
                sink,
                retry_failed=retry_failed,
                repeat_other_batches=repeat_other_batches,
                check_provider=check_provider,
            )
        )
    finally:
        if out is not None:
            sink.close()
    click.echo(
        f"batch {batch!r} on {queue} at {_where(redis_url)}: {counts['enqueued']} queued, "
        f"{counts['already_enqueued']} already queued, {counts['invalid']} not queued (invalid)",
        err=True,
    )
    sys.exit(0 if counts["invalid"] == 0 else 1)


async def _enqueue_rows(
    workers: Any,
    client: Any,
    rows: CsvRefunds,
    survey: _Survey,
    batch: str,
    redis_url: str,
    queue: str,
    provider: str,
    sink: Any,
    *,
    retry_failed: bool,
    repeat_other_batches: bool,
    check_provider: bool,
) -> dict[str, int]:
    counts = {"enqueued": 0, "already_enqueued": 0, "invalid": 0}
    pool = await _connect(workers, redis_url, queue)
    try:
        # The jobs of rows edited away since they were queued (an amount fixed after the refund).
        earlier, _keys = await workers.earlier_refunds(
            pool, batch, present=lambda key: _short(key) in survey.keys
        )
        # And the jobs of other batch ids: the same file queued again under a new batch id.
        other_batches, claimed = await workers.other_batch_refunds(pool, batch)
        edits = _Edits(earlier=earlier, other_batches=other_batches, claimed=claimed)
        async with client:
            listed = None
            if check_provider:
                listed = await ask_provider(client, rows, batch, claimed, concurrency=16, rate=None)
            for number, request in rows:
                line = await _enqueue_row(
                    workers,
                    pool,
                    client,
                    survey,
                    edits,
                    batch,
                    queue,
                    provider,
                    number,
                    request,
                    retry_failed=retry_failed,
                    repeat_other_batches=repeat_other_batches,
                    listed=listed,
                )
                counts[line["status"]] += 1
                sink.write(json.dumps(line, default=json_default, ensure_ascii=False) + "\n")
    finally:
        await pool.aclose()
    return counts


async def _enqueue_row(
    workers: Any,
    pool: Any,
    client: Any,
    survey: _Survey,
    edits: _Edits,
    batch: str,
    queue: str,
    provider: str,
    number: int,
    request: Mapping[str, Any] | InvalidRequest,
    *,
    retry_failed: bool,
    repeat_other_batches: bool,
    listed: Mapping[tuple[str, str], ProviderRefunds] | None = None,
) -> dict[str, Any]:
    if isinstance(request, InvalidRequest):
        return _invalid(number, request.code, request.reason)
    duplicate = survey.duplicate_of(client, request, batch, number)
    if duplicate is not None:
        return _invalid(number, "DuplicateRow", duplicate)
    edited = edits.refusal(client, request, batch, repeat_other_batches=repeat_other_batches) or (
        provider_refusal(client, request, batch, listed, claimed=edits.claimed, repeat=repeat_other_batches)
    )
    if edited is not None:
        return _invalid(number, IdempotencyConflict.__name__, edited)
    key = refund_key(client, request, batch_id=batch)
    try:
        operation = await client.validate_refund(**{**request, "idempotency_key": key})
    except ValidationError as error:
        return _invalid(number, "ValidationError", str(error))
    added = await workers.enqueue_refund(
        pool,
        provider=provider,
        request=request,
        batch_id=batch,
        key=key,
        row=number,
        queue_name=queue,
        retry_failed=retry_failed,
        order=order_of(client, request),
        refund_no=operation.refund_no,
    )
    return {
        "row": number,
        "status": "enqueued" if added else "already_enqueued",
        "refund_no": operation.refund_no,
        "job_id": workers.job_id_for(key),
    }


def _invalid(number: int, code: str, message: str) -> dict[str, Any]:
    """A row that was not queued, in the shape of a ``paykit refunds run`` row error."""
    return {
        "row": number,
        "status": "invalid",
        "error_code": code,
        "error_message": f"row {number}: {message}",
    }


# --------------------------------------------------------------------------- status


@refunds.command("status")
@click.option("--redis", "redis_url", required=True, help=_REDIS_HELP)
@click.option("--batch-id", default=DEFAULT_BATCH_ID, show_default=True, help="The batch given to enqueue.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Every row's result as JSON lines (the fields of 'paykit refunds run' results).",
)
@click.option("--wait", is_flag=True, help="Wait until no job is pending (Ctrl-C stops waiting).")
def refunds_status(redis_url: str, batch_id: str, out: Path | None, wait: bool) -> None:
    """Progress of a queued batch: done, failed, unknown and pending rows, and their results.

    Exit status 0 when every row succeeded, 1 when some failed, are unknown or still pending.
    """
    _check_redis_url(redis_url)
    workers = _workers_module()
    try:
        progress = anyio.run(lambda: _read_progress(workers, redis_url, batch_id, wait))
    except KeyboardInterrupt:
        fail("interrupted", status=130)
    if not progress.jobs:
        fail(f"no batch {batch_id!r} at {_where(redis_url)} (enqueue it first, or check --batch-id)")
    if out is not None:
        try:
            with out.open("w", encoding="utf-8") as sink:
                for job in progress.jobs:
                    # A row's line as 'paykit refunds run' writes it (order_keys: internal).
                    record = {k: v for k, v in job.record.items() if k != "order_keys"}
                    line = {**record, "progress": job.progress, "job_id": job.job_id}
                    sink.write(json.dumps(line, default=json_default, ensure_ascii=False) + "\n")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
    counts = progress.counts
    table = Table(title=f"batch {batch_id!r}", title_justify="left")
    table.add_column("progress")
    table.add_column("rows", justify="right")
    for name, count in counts.items():
        table.add_row(name, f"{count:,}")
    table.add_row("total", f"{len(progress.jobs):,}")
    Console().print(table)
    sys.exit(0 if progress.all_done else 1)


async def _read_progress(workers: Any, redis_url: str, batch_id: str, wait: bool) -> Any:
    pool = await _connect(workers, redis_url, "paykit:queue")
    try:
        while True:
            progress = await workers.batch_progress(pool, batch_id)
            if not wait or progress.finished or not progress.jobs:
                return progress
            await anyio.sleep(1.0)
    finally:
        await pool.aclose()


# --------------------------------------------------------------------------- worker


@cli.command("worker")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
@click.option("--redis", "redis_url", required=True, help=_REDIS_HELP)
@click.option(
    "--concurrency", "-c", default=16, show_default=True, help="Refunds this worker runs at a time."
)
@click.option("--queue", default="paykit:queue", show_default=True, help=_QUEUE_HELP)
@click.option(
    "--job-timeout",
    default=45,
    show_default=True,
    help="Seconds one job may take; a killed worker's jobs run again this + 10 s after they started.",
)
@click.option("--burst", is_flag=True, help="Stop once the queue is empty.")
@click.option("--quiet", "-q", is_flag=True, help="Log only problems, not every job.")
def worker(
    config_file: Path | None,
    redis_url: str,
    concurrency: int,
    queue: str,
    job_timeout: int,
    burst: bool,
    quiet: bool,
) -> None:
    """Run an arq worker that makes the queued refunds; start any number, on any number of machines.

    Every worker needs the same configuration (the merchants' keys) and the same Redis, which
    also holds the idempotency records and the rate-limit windows ([provider] rate_limit). Ctrl-C
    (or SIGTERM) lets running refunds finish for up to 10 s; a worker killed outright leaves its
    jobs to another worker, which resumes them under the same refund numbers about a minute later.
    """
    _check_redis_url(redis_url)
    if concurrency < 1:
        fail("--concurrency must be >= 1")
    workers = _workers_module()
    try:
        settings = workers.worker_settings(
            config_file,
            redis_url=redis_url,
            concurrency=concurrency,
            queue_name=queue,
            job_timeout=job_timeout,
        )
    except ConfigError as exc:
        fail(str(exc))
    logging.getLogger("arq").setLevel(logging.WARNING if quiet else logging.INFO)
    click.echo(
        f"paykit worker: {', '.join(settings.providers)} refunds from {queue} at {_where(redis_url)}, "
        f"{concurrency} at a time (Ctrl-C to stop)",
        err=True,
    )
    from arq.worker import create_worker

    arq_worker = create_worker(settings, burst=burst)
    started = time.monotonic()
    try:
        arq_worker.run()
    except Exception as exc:
        if isinstance(exc, OSError) or type(exc).__name__ in ("ConnectionError", "TimeoutError"):
            fail(f"cannot reach Redis at {_where(redis_url)}: {exc}")
        if type(exc).__module__.startswith("redis"):
            fail(f"Redis at {_where(redis_url)} failed: {exc}")
        raise
    click.echo(
        f"paykit worker stopped after {time.monotonic() - started:.0f} s: {arq_worker.jobs_complete} jobs "
        f"done, {arq_worker.jobs_retried} to be run again, {arq_worker.jobs_failed} failed",
        err=True,
    )
