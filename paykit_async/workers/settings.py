"""``worker_settings()``: an arq ``WorkerSettings`` class for paykit's refund jobs.

Timing, which decides what happens when a worker dies (arq keeps a running job's id under an
``in-progress`` key that expires ``job_timeout + 10`` seconds after the job started; until then no
other worker takes the job, and the job stays in the queue):

- a refund call ends by itself within :data:`REFUND_DEADLINE` (the retry policy's deadline bounds
  every attempt, wait, rate-limit turn and settle query);
- arq's :data:`JOB_TIMEOUT` is longer, so arq never cuts a refund off — and short, so that a
  killed worker's jobs run again on another worker :data:`JOB_TIMEOUT` + 10 seconds after they
  started (55 s), not after arq's default of 300 + 10;
- the idempotency claim a refund holds in Redis lasts :data:`IDEMPOTENCY_LEASE` (the job
  timeout): longer than the refund call, shorter than the in-progress key, so the job's next run
  finds the claim expired and resumes the refund under its number at once instead of waiting
  for a dead worker.

Job results are kept :data:`KEEP_RESULTS` (30 days, as long as the idempotency records): while a
success is kept, enqueueing the same row again adds nothing; a refusal or an unknown outcome may
be queued again, and the worker resends it under the same refund number. Jobs and results are JSON in Redis
(arq's default is pickle, which would run code from whoever can write to the Redis).
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ValidationError
from .jobs import JOB_NAME, MAX_TRIES, STATE_KEY, WorkerState, refund_job

__all__ = [
    "IDEMPOTENCY_LEASE",
    "JOB_TIMEOUT",
    "KEEP_RESULTS",
    "QUEUE_NAME",
    "REFUND_DEADLINE",
    "dumps",
    "loads",
    "redis_settings",
    "worker_settings",
]

#: The arq queue of paykit refund jobs (its own, so no other arq worker takes them).
QUEUE_NAME = "paykit:queue"
#: Seconds one refund call may take, its retries, waits and settle query included.
REFUND_DEADLINE = 30.0
#: arq's limit for one job, in seconds.
JOB_TIMEOUT = 45
#: Seconds an idempotency claim stays exclusive (the job timeout).
IDEMPOTENCY_LEASE = 45.0
#: Seconds a job's result is kept.
KEEP_RESULTS = 30 * 24 * 3600
#: Seconds a job may wait in the queue before arq gives up on it (workers down for a week).
JOB_EXPIRES = 7 * 24 * 3600
#: Seconds between a worker's looks at the queue. arq starts new jobs only when it looks, so a
#: worker runs at most ``concurrency / POLL_DELAY`` short jobs a second (arq's default of 0.5 s
#: would cap 16 at a time to 32 refunds/s).
POLL_DELAY = 0.05
#: Seconds a stopping worker (SIGINT, SIGTERM) lets its running jobs finish before cancelling
#: them (a cancelled job is run again by another worker, under the same refund number).
SHUTDOWN_WAIT = 10


def dumps(value: Any) -> bytes:
    """arq's job and result serializer: JSON, never pickle."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def loads(data: bytes) -> Any:
    """arq's job and result deserializer."""
    return json.loads(data)


def redis_settings(redis_url: str) -> Any:
    """arq's ``RedisSettings`` for ``redis_url`` (``redis://[:password@]host:port/db``)."""
    from arq.connections import RedisSettings

    from ..redaction import check_redis_url, url_for_message

    check_redis_url(redis_url, "redis_url")  # a password that the parser would split and quote
    try:
        return RedisSettings.from_dsn(redis_url)
    except (ValueError, TypeError) as error:
        unusable = type(error).__name__
    # arq's parser quotes the URL's parts (a password among them) in its messages: raised outside
    # the except block, so its error stays out of the chain.
    raise ValidationError(f"cannot use {url_for_message(redis_url)} ({unusable})", field="redis_url")


def worker_settings(
    config_file: str | os.PathLike[str] | None,
    *,
    redis_url: str,
    concurrency: int = 16,
    queue_name: str = QUEUE_NAME,
    job_timeout: int = JOB_TIMEOUT,
    environ: dict[str, str] | None = None,
) -> type:
    """A ``WorkerSettings`` class for ``arq`` (or ``arq.worker.run_worker``).

    Each worker process creates, once at startup, a client for every provider that
    ``config_file`` (the ``paykit`` command's TOML, plus ``PAYKIT_*`` environment variables)
    configures — with a :class:`~paykit_async.pipeline.stores.RedisStore` in ``redis_url`` for
    idempotency and the section's ``rate_limit`` shared through the same Redis — and closes them
    at shutdown. ``concurrency`` is how many refunds one worker runs at a time. The
    configuration is checked here, before any worker starts: a
    :class:`~paykit_async.cli.config.ConfigError` says what is wrong.

    ``job_timeout`` (seconds) is arq's limit per job; a killed worker's jobs run again
    ``job_timeout + 10`` seconds after they started. The refund deadline and the idempotency
    lease follow it (module documentation); it must leave a refund at least 5 seconds.
    """
    from arq.worker import func

    from ..cli.config import ConfigError, build_client, configured_providers, load_settings

    if not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError("concurrency must be a whole number >= 1")
    if not isinstance(job_timeout, int) or job_timeout < 10:
        raise ConfigError("job_timeout must be a whole number of seconds >= 10")
    try:
        arq_redis = redis_settings(redis_url)
    except ValidationError as error:
        raise ConfigError(error.message) from None
    providers = configured_providers(config_file, environ)
    if not providers:
        raise ConfigError("the configuration has no provider section ([wechatpay], [payjs], ...)")
    settings = {name: load_settings(name, config_file, environ) for name in providers}
    # The refund ends well within the job; its claim expires before arq runs the job again.
    deadline = max(5.0, min(REFUND_DEADLINE, job_timeout - 15.0))
    lease = float(job_timeout)

    def make_client(provider_settings: Any, store: Any) -> Any:
        from ..batch import count_attempts
        from ..pipeline.retry import RetryPolicy

        return build_client(
            provider_settings,
            idempotency_store=store,
            middleware=[count_attempts],
            max_connections=max(concurrency, 10),
            retry=RetryPolicy(deadline=deadline),
            rate_limit_storage=redis_url,
            idempotency_lease=lease,
            # A job runs again only when its outcome was not final or the row was queued again
            # after a refusal: resend under the same number rather than replay the refusal.
            idempotency_retry_failed=True,
        )

    from ..pipeline.stores.memory import MemoryStore

    for provider_settings in settings.values():
        make_client(provider_settings, MemoryStore())  # a ConfigError now, not in every worker

    async def on_startup(ctx: dict[str, Any]) -> None:
        from ..pipeline.stores.redis import RedisStore

        store = RedisStore(redis_url)
        clients = {
            name: make_client(provider_settings, store) for name, provider_settings in settings.items()
        }
        ctx[STATE_KEY] = WorkerState(clients=clients, closers=(*clients.values(), store))

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        state = ctx.pop(STATE_KEY, None)
        if isinstance(state, WorkerState):
            for closer in state.closers:
                await closer.aclose()

    job = func(refund_job, name=JOB_NAME, timeout=job_timeout, keep_result=KEEP_RESULTS, max_tries=MAX_TRIES)
    return type(
        "WorkerSettings",
        (),
        {
            "__doc__": f"paykit refund workers on {queue_name!r} for {', '.join(providers)}.",
            "functions": [job],
            "redis_settings": arq_redis,
            "queue_name": queue_name,
            "max_jobs": concurrency,
            "job_timeout": job_timeout,
            "keep_result": KEEP_RESULTS,
            "max_tries": MAX_TRIES,
            "on_startup": on_startup,
            "on_shutdown": on_shutdown,
            "job_serializer": dumps,
            "job_deserializer": loads,
            "expires_extra_ms": JOB_EXPIRES * 1000,
            "job_completion_wait": SHUTDOWN_WAIT,
            "poll_delay": POLL_DELAY,
            "providers": providers,
        },
    )
