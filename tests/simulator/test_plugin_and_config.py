"""The users' pytest fixture and the TOML configuration file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from paykit_async.errors import ValidationError
from paykit_async.providers.wechatpay import WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY, Simulator, SimulatorConfig, load_config
from paykit_async.simulator.pytest_plugin import paykit_simulator, paykit_simulator_config  # noqa: F401

pytestmark = pytest.mark.anyio


async def test_the_fixture_gives_an_in_process_simulator(paykit_simulator: Simulator) -> None:  # noqa: F811
    async with WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=paykit_simulator.base_url("wechatpay"),
        transport=paykit_simulator.transport(),
    ) as client:
        result = await client.refund(out_trade_no="T1", total_fee=100, refund_fee=100, out_refund_no="R1")
    assert result.refund_fee == 100
    snapshot = paykit_simulator.snapshot()
    assert snapshot.refund("wechatpay", "R1").state == "SUCCESS"
    assert snapshot.duplicate_payouts == 0


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "simulator.toml"
    path.write_text(
        """
[wechatpay]
appid = "wx0000000000000001"
mch_id = "1230000109"
api_key = "KEY"
balance = 10000

[payjs]
mchid = "m1"
key = "payjs-key"

[eftpay]
user_confirm_key = "S1"
secret = "s"
balance = "12.50"

[simulator]
auto_orders = true
refund_outcome = "change"
notify_schedule = [0, 1, 2]

[faults]
seed = 5
[[faults.rules]]
provider = "payjs"
rate_limited = 0.5
""".replace("KEY", "k" * 32),
        encoding="utf-8",
    )
    config = load_config(path, completion_delay=0.0)
    assert config.wechatpay.mch_id == "1230000109"
    assert config.wechatpay.balance == 10000
    assert config.eftpay.balance == Decimal("12.50")
    assert config.payjs.key == "payjs-key"
    assert config.refund_outcome == "change"
    assert config.notify_schedule == (0.0, 1.0, 2.0)
    assert config.completion_delay == 0.0
    assert config.faults.rules[0].rate_limited == 0.5
    assert not config.uses_demo_credentials
    assert "payjs-key" not in repr(config)
    assert Simulator(config).balance("eftpay") == 1250


def test_bad_config_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[wechatpay\n", encoding="utf-8")
    with pytest.raises(ValidationError):
        load_config(broken)
    with pytest.raises(ValidationError):
        load_config(tmp_path / "missing.toml")
    wrong_key = tmp_path / "wrong.toml"
    wrong_key.write_text('[payjs]\nmchid = "1"\nkey = "k"\nextra = 1\n', encoding="utf-8")
    with pytest.raises(ValidationError):
        load_config(wrong_key)
    with pytest.raises(ValidationError):
        SimulatorConfig(refund_outcome="maybe")
