"""The refund job and the worker settings, in process: what a job returns, when it runs again.

The job is called as arq calls it (``ctx``, then the enqueued arguments) with a worker state
holding a client on the in-process simulator; the worker processes themselves are in
``test_many_workers.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from arq.worker import Retry, create_worker

from paykit_async import RetryPolicy, WeChatPayClient
from paykit_async.batch import count_attempts, refund_key
from paykit_async.cli.config import ConfigError
from paykit_async.pipeline.stores import MemoryStore
from paykit_async.simulator import DEMO_WECHATPAY, FaultPlan, FaultRule, Simulator, SimulatorConfig
from paykit_async.workers import (
    JOB_NAME,
    JOB_TIMEOUT,
    MAX_TRIES,
    QUEUE_NAME,
    WorkerState,
    job_id_for,
    refund_job,
    worker_settings,
)
from paykit_async.workers.settings import dumps, loads

pytestmark = pytest.mark.anyio

REQUEST = {"out_trade_no": "J1", "total_fee": 300, "refund_fee": 100}


def _client(sim: Simulator, *, mch_id: str = DEMO_WECHATPAY.mch_id, **options: Any) -> WeChatPayClient:
    return WeChatPayClient(
        DEMO_WECHATPAY.appid,
        mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
        idempotency_store=MemoryStore(),
        middleware=[count_attempts],
        **options,
    )


def _ctx(client: Any, job_try: int = 1) -> dict[str, Any]:
    return {"paykit": WorkerState(clients={"wechatpay": client}), "job_try": job_try}


async def _run(client: Any, job_try: int = 1, request: dict[str, Any] = REQUEST) -> dict[str, Any]:
    key = refund_key(client, request, batch_id="b1")
    return await refund_job(_ctx(client, job_try), "wechatpay", dict(request), batch_id="b1", key=key, row=7)


async def test_a_job_refunds_under_the_rows_key_and_a_second_run_replays(anyio_backend: str) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    async with _client(sim) as client:
        first = await _run(client)
        again = await _run(client)
        expected_no = client.derived_refund_no(refund_key(client, REQUEST, batch_id="b1"))
    assert first["status"] == "succeeded"
    assert first["row"] == 7
    assert first["refund_no"] == expected_no
    assert first["attempts"] == 1
    assert first["provider_refund_id"]
    assert again["status"] == "succeeded"
    assert again["replayed"] is True
    assert again["refund_no"] == expected_no
    assert len(sim.snapshot().refunds) == 1
    assert loads(dumps(first)) == first  # what arq stores (JSON)


async def test_an_unknown_outcome_runs_again_later_and_the_last_try_reports_it(anyio_backend: str) -> None:
    faults = FaultPlan(
        rules=(
            FaultRule(endpoint="refund", drop_after=1.0),
            FaultRule(endpoint="refundquery", server_error=1.0),
        )
    )
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, faults=faults))
    async with _client(sim, retry=RetryPolicy(attempts=2, initial_delay=0.0, deadline=5)) as client:
        with pytest.raises(Retry) as retry:
            await _run(client, job_try=1)
        assert retry.value.defer_score == 5000
        last = await _run(client, job_try=MAX_TRIES)
    assert last["status"] == "unknown"
    assert last["refund_no"] == client.derived_refund_no(refund_key(client, REQUEST, batch_id="b1"))
    # Every attempt of every try went out under the one refund number; the refund exists once.
    numbers = {r.fields["out_refund_no"] for r in sim.requests() if r.endpoint == "refund"}
    assert numbers == {last["refund_no"]}
    assert sim.snapshot().duplicate_payouts == 0


async def test_a_definite_refusal_is_final(anyio_backend: str) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=False, completion_delay=0.0))
    async with _client(sim) as client:
        record = await _run(client, job_try=1)
    assert record["status"] == "failed"
    assert record["error_code"] == "ORDERNOTEXIST"


async def test_a_worker_without_the_provider_or_with_another_merchant_sends_nothing(
    anyio_backend: str,
) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    async with _client(sim) as client, _client(sim, mch_id="1900000999") as other:
        key = refund_key(client, REQUEST, batch_id="b1")
        missing = await refund_job(_ctx(client), "payjs", {"payjs_order_id": "P1"}, batch_id="b1", key="x")
        mismatch = await refund_job(_ctx(other), "wechatpay", dict(REQUEST), batch_id="b1", key=key)
    assert missing["status"] == mismatch["status"] == "failed"
    assert missing["error_code"] == mismatch["error_code"] == "WorkerConfigError"
    assert "merchant differs" in mismatch["error_message"]
    assert sim.requests() == ()


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "paykit.toml"
    path.write_text(body, encoding="utf-8")
    return path


WECHAT = f"""
[wechatpay]
appid = "{DEMO_WECHATPAY.appid}"
mch_id = "{DEMO_WECHATPAY.mch_id}"
api_key = "{DEMO_WECHATPAY.api_key}"
base_url = "http://127.0.0.1:9/wechatpay"
rate_limit = 150
"""


def test_worker_settings_are_arq_settings_tuned_for_refund_jobs(tmp_path: Path) -> None:
    settings = worker_settings(_config(tmp_path, WECHAT), redis_url="redis://127.0.0.1:9/0", environ={})
    assert settings.providers == ("wechatpay",)
    assert settings.queue_name == QUEUE_NAME
    assert settings.job_timeout == JOB_TIMEOUT == 45
    assert settings.job_serializer is dumps
    worker = create_worker(settings, handle_signals=False)
    assert list(worker.functions) == [JOB_NAME]
    # A killed worker's job is taken again when its in-progress key expires: within a minute.
    assert worker.in_progress_timeout_s == 55
    assert worker.max_jobs == 16
    assert worker.poll_delay_s == 0.05  # arq starts jobs only when it polls: 16 / 0.05 s at most
    assert worker._job_completion_wait == 10  # SIGINT/SIGTERM: running refunds get 10 s to finish
    assert worker.keep_result_s == 30 * 24 * 3600  # enqueueing a row again adds nothing meanwhile
    assert job_id_for("b:1") == "paykit:b:1"


@pytest.mark.parametrize(
    ("body", "options", "message"),
    [
        ("", {}, "no provider section"),
        ('[wechatpay]\nappid = "wx"\n', {}, "[wechatpay] is missing mch_id"),
        (WECHAT.replace("rate_limit = 150", "rate_limit = 0"), {}, "rate_limit must be a positive"),
        (WECHAT + "rate_limit_margin = 1.5\n", {}, "rate_limit_margin must be between 0 and 1"),
        (WECHAT, {"job_timeout": 5}, "job_timeout"),
        (WECHAT, {"concurrency": 0}, "concurrency"),
    ],
)
def test_worker_settings_refuse_a_bad_configuration_before_any_worker_starts(
    tmp_path: Path, body: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        worker_settings(_config(tmp_path, body), redis_url="redis://127.0.0.1:9/0", environ={}, **options)
    assert message in str(error.value)
