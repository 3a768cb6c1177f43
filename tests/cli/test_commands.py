"""``paykit demo``, single calls, the simulator group, and configuration loading."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from paykit_async.batch import BatchStatus
from paykit_async.cli.config import ConfigError, build_client, env_name, load_settings
from paykit_async.cli.demo import run_demo
from paykit_async.simulator import DEMO_PAYJS, SimulatorConfig

from .helpers import live_simulator, run_paykit, seed_wechat_orders


@pytest.mark.slow
def test_paykit_demo_exits_0_with_a_clean_ledger() -> None:
    result = run_paykit("demo", timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"duplicate payouts\s+0 ", result.stderr)
    assert "ledger check passed" in result.stderr
    assert "3,250" in result.stderr


@pytest.mark.anyio
async def test_the_demo_scenario_checks_the_ledger(anyio_backend: str) -> None:
    report = await run_demo(orders=60, concurrency=8, fault_rate=0.03, seed=3)
    assert report.ok
    assert report.duplicate_payouts == 0
    assert report.total == 195  # 60 orders each for v2, PAYJS and eftPay; 15 for v3
    assert [p.provider for p in report.providers] == ["wechatpay", "wechatpay-v3", "payjs", "eftpay"]
    assert (
        report.count(BatchStatus.SUCCEEDED)
        + report.count(BatchStatus.UNKNOWN)
        + report.count(BatchStatus.FAILED)
        == 195
    )
    assert sum(p.retries for p in report.providers) > 0


class _FirstOutcomeRewritten:
    """A ``refund_many`` batch whose outcome at index 0 is replaced by ``rewrite(outcome)`` (or
    left as it is when that returns None): a lie injected between the batch and the demo."""

    def __init__(self, batch: Any, rewrite: Any) -> None:
        self._batch = batch
        self._rewrite = rewrite

    async def __aenter__(self) -> Any:
        outcomes = await self._batch.__aenter__()

        async def rewritten() -> Any:
            async for outcome in outcomes:
                yield (self._rewrite(outcome) or outcome) if outcome.index == 0 else outcome

        return rewritten()

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._batch.__aexit__(*exc)


@pytest.mark.anyio
async def test_the_demo_ledger_check_catches_a_refund_reissued_under_a_new_number(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inject attack (a): the first refund of each provider loses its reply (executed, reported
    unknown), and the second pass over unknown refunds drops their refund numbers, so each is
    re-issued under a new one. The ledger then holds the first refund (paid) and perhaps the second
    (a partial refund is paid again); the report names only the second. The check passed: the
    first number is in no row, and no number was paid twice."""
    import attrs

    from paykit_async.batch import refund_many, refund_number_rule
    from paykit_async.cli import demo

    reissued: list[str] = []

    def lose(outcome: Any) -> Any:
        return attrs.evolve(outcome, status=BatchStatus.UNKNOWN)

    passes: set[int] = set()

    def reissuing(client: Any, requests: Any, **options: Any) -> Any:
        if id(client) not in passes:  # the first pass over this provider's requests
            passes.add(id(client))
            return _FirstOutcomeRewritten(refund_many(client, requests, **options), lose)
        # The second pass: re-issue under new numbers (where the client mints them).
        rule = refund_number_rule(client)
        assert rule is not None
        requests = list(requests)
        if rule.generated:
            reissued.extend(f"{client.provider}:{r[rule.field]}" for r in requests)
            requests = [{k: v for k, v in r.items() if k != rule.field} for r in requests]
        return refund_many(client, requests, **options)

    monkeypatch.setattr(demo, "refund_many", reissuing)
    report = await run_demo(orders=20, concurrency=4, fault_rate=0.0, seed=3)
    assert len(reissued) == 3  # PAYJS refunds an order by its id: no number to re-issue under
    assert not report.ok
    assert report.duplicate_payouts == 0  # what the check looked at: each number paid once
    assert sorted(report.unreported_in_ledger) == sorted(reissued)
    # WeChat Pay's first demo refund is partial: re-issued, the order was paid out twice.
    assert "wechatpay:DEMO00000000" in report.orders_paid_twice


@pytest.mark.anyio
async def test_the_demo_ledger_check_catches_a_success_the_ledger_lacks(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inject a lie: one PAYJS refund reported succeeded without being sent."""
    import attrs

    from paykit_async.batch import refund_many
    from paykit_async.cli import demo

    def lie(outcome: Any) -> Any:
        if outcome.refund_no:
            return attrs.evolve(outcome, status=BatchStatus.SUCCEEDED, refund_no="NEVERSENT")
        return None

    monkeypatch.setattr(
        demo, "refund_many", lambda *a, **k: _FirstOutcomeRewritten(refund_many(*a, **k), lie)
    )
    report = await run_demo(orders=20, concurrency=4, fault_rate=0.0, seed=3)
    assert not report.ok
    assert len(report.missing_in_ledger) == 4  # one per provider
    # The refund each lie replaced was paid, and no row reports it any more.
    assert len(report.unreported_in_ledger) == 4


def test_single_refund_query_and_close_commands(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        (row,) = seed_wechat_orders(live.simulator, 1)
        live.simulator.add_wechatpay_order("UNPAID1", 100, paid=False, created_at=0.0)
        config = live.config_file(tmp_path)
        refund = run_paykit(
            "refund", "-p", "wechatpay", "--config", config,
            f"out_trade_no={row['out_trade_no']}", f"total_fee={row['total_fee']}", "refund_fee=50",
            "out_refund_no=RCLI0001",
        )  # fmt: skip
        assert refund.returncode == 0, refund.stderr
        assert json.loads(refund.stdout)["out_refund_no"] == "RCLI0001"
        query = run_paykit("query", "-p", "wechatpay", "--config", config, "out_refund_no=RCLI0001")
        assert query.returncode == 0, query.stderr
        assert "RCLI0001" in query.stdout
        close = run_paykit("close", "-p", "wechatpay", "--config", config, "out_trade_no=UNPAID1")
        assert close.returncode == 0, close.stderr
        refused = run_paykit(
            "refund", "-p", "wechatpay", "--config", config,
            f"out_trade_no={row['out_trade_no']}", f"total_fee={row['total_fee']}", "refund_fee=999999",
        )  # fmt: skip
        # Refused before sending: bad input, exit status 2, one error line (after the refund number).
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1].startswith("paykit: error: ValidationError")
        assert "nothing was sent" in refused.stderr
        declined = run_paykit(
            "refund", "-p", "wechatpay", "--config", config,
            "out_trade_no=NOSUCHORDER", "total_fee=100", "refund_fee=100",
        )  # fmt: skip
        assert declined.returncode == 1, declined.stderr
        assert "ProviderError" in declined.stderr
        bad_field = run_paykit("query", "-p", "wechatpay", "--config", config, "colour=red")
        assert bad_field.returncode == 2
        no_close = run_paykit("close", "-p", "eftpay", "--config", config, "out_trade_no=X")
        assert no_close.returncode == 2
        assert "eftPay has no close-order call" in no_close.stderr
        snapshot = live.simulator.snapshot()
    assert snapshot.refund("wechatpay", "RCLI0001").amount == 50
    assert snapshot.duplicate_payouts == 0


def test_the_simulator_group_is_attached() -> None:
    result = run_paykit("simulator", "serve", "--help")
    assert result.returncode == 0
    assert "--auto-orders" in result.stdout


def test_settings_merge_file_and_environment_and_hide_secrets(tmp_path: Path) -> None:
    config = tmp_path / "paykit.toml"
    config.write_text('[payjs]\nmchid = "1500000001"\nkey = "from-file"\n', encoding="utf-8")
    settings = load_settings("payjs", config, environ={env_name("payjs", "key"): DEMO_PAYJS.key})
    assert settings.values == {"mchid": "1500000001", "key": DEMO_PAYJS.key}
    assert DEMO_PAYJS.key not in repr(settings)
    client = build_client(settings)
    assert type(client).__name__ == "PayJSClient"
    assert env_name("wechatpay", "api_key") == "PAYKIT_WECHATPAY_API_KEY"
    with pytest.raises(ConfigError, match="missing secret"):
        load_settings("eftpay", None, environ={env_name("eftpay", "user_confirm_key"): "K1"})
    with pytest.raises(ConfigError, match="unknown provider"):
        load_settings("stripe", None, environ={})


def test_python_dash_m_paykit_async_is_the_paykit_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "paykit_async", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "refunds" in done.stdout
    assert "demo" in done.stdout


def test_paykit_without_the_cli_extra_says_how_to_install_it_in_one_line(tmp_path: Path) -> None:
    # A site directory whose `click` cannot be imported stands in for an install without the extra.
    blocker = tmp_path / "click.py"
    blocker.write_text("raise ModuleNotFoundError('No module named click', name='click')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "paykit_async", "--help"], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        'paykit: error: the paykit command needs its extra: pip install "paykit_async[cli]" (missing: click)'
    ]
