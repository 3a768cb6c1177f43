"""``paykit`` with ``--provider wechatpay-v3``: config keys are the constructor's keywords, the
merchant key and WeChat Pay public key are files, secrets may come from the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paykit_async import WeChatPayV3Client
from paykit_async.cli.config import ConfigError, build_client, env_name, load_settings
from paykit_async.simulator import Simulator, SimulatorConfig

from .helpers import live_simulator, read_results, run_paykit, write_csv


def _config(tmp_path: Path, simulator: Simulator, root: str, *, with_secret: bool = True) -> Path:
    keys = simulator.wechatpay_v3_keys()
    files = keys.write(tmp_path / "keys")
    lines = [
        "[wechatpay-v3]",
        f'mchid = "{keys.mchid}"',
        f'certificate_serial_no = "{keys.certificate_serial_no}"',
        f'private_key = "{files["private_key"]}"',
        f'wechatpay_public_key = "{files["wechatpay_public_key"]}"',
        f'wechatpay_public_key_id = "{keys.wechatpay_public_key_id}"',
        f'base_url = "{root}/wechatpay-v3"',
    ]
    if with_secret:
        lines.append(f'apiv3_key = "{keys.apiv3_key}"')
    path = tmp_path / "paykit.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_single_refund_query_and_close(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        live.simulator.add_wechatpay_v3_order("T1", 300)
        live.simulator.add_wechatpay_v3_order("UNPAID1", 100, paid=False, created_at=0.0)
        config = _config(tmp_path, live.simulator, live.root, with_secret=False)
        env = {env_name("wechatpay-v3", "apiv3_key"): live.simulator.wechatpay_v3_keys().apiv3_key}
        refund = run_paykit(
            "refund", "-p", "wechatpay-v3", "--config", config,
            "out_trade_no=T1", "total=300", "refund=120", "out_refund_no=RV3CLI1", "reason=退货",
            env=env,
        )  # fmt: skip
        assert refund.returncode == 0, refund.stderr
        reply = json.loads(refund.stdout)
        assert reply["out_refund_no"] == "RV3CLI1"
        assert reply["amount"]["refund"] == 120
        query = run_paykit(
            "query", "-p", "wechatpay-v3", "--config", config, "out_refund_no=RV3CLI1", env=env
        )
        assert query.returncode == 0, query.stderr
        assert json.loads(query.stdout)["status"] == "SUCCESS"
        close = run_paykit("close", "-p", "wechatpay-v3", "--config", config, "out_trade_no=UNPAID1", env=env)
        assert close.returncode == 0, close.stderr
        assert json.loads(close.stdout)["status_code"] == 204
        missing = run_paykit("query", "-p", "wechatpay-v3", "--config", config, "out_refund_no=NOPE")
        assert missing.returncode == 2
        assert "PAYKIT_WECHATPAY_V3_APIV3_KEY" in missing.stderr
        snapshot = live.simulator.snapshot()
    assert snapshot.refund("wechatpay-v3", "RV3CLI1").amount == 120
    assert snapshot.order("wechatpay-v3", "UNPAID1").closed


def test_refunds_run_from_csv(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = []
        for i in range(10):
            live.simulator.add_wechatpay_v3_order(f"V{i:05d}", 500 + i)
            rows.append({"out_trade_no": f"V{i:05d}", "total": 500 + i, "refund": 250, "reason": "活动取消"})
        config = _config(tmp_path, live.simulator, live.root)
        csv_file = write_csv(tmp_path / "v3.csv", rows)
        out = tmp_path / "v3.jsonl"
        result = run_paykit(
            "refunds", "run", csv_file, "-p", "wechatpay-v3", "--config", config, "--out", out
        )
        assert result.returncode == 0, result.stderr
        results = read_results(out)
        assert [r["status"] for r in results] == ["succeeded"] * 10
        assert all(r["provider_refund_id"] for r in results)
        # Accepted is not done: the provider's own state of each refund is in the results.
        assert {r["provider_status"] for r in results} <= {"PROCESSING", "SUCCESS"}, results
        again = run_paykit("refunds", "run", csv_file, "-p", "wechatpay-v3", "--config", config, "--out", out)
        assert again.returncode == 0, again.stderr
        assert all(r["replayed"] for r in read_results(out))
        snapshot = live.simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert len(snapshot.refunds) == 10
    assert all(snapshot.order("wechatpay-v3", f"V{i:05d}").refunded == 250 for i in range(10))


def test_settings_and_client(tmp_path: Path) -> None:
    sim = Simulator()
    config = _config(tmp_path, sim, "http://127.0.0.1:9")
    with config.open("a", encoding="utf-8") as handle:
        handle.write('sub_mchid = "1900000001"\nplatform_certificates = true\n')
    settings = load_settings("wechatpay-v3", config, environ={})
    secret = sim.wechatpay_v3_keys().apiv3_key
    assert secret not in repr(settings)
    client = build_client(settings)
    assert isinstance(client, WeChatPayV3Client)
    assert client.sub_mchid == "1900000001"
    assert client.mode == "public-key+platform-certificate"
    assert env_name("wechatpay-v3", "private_key") == "PAYKIT_WECHATPAY_V3_PRIVATE_KEY"
    # The key may come from the environment as PEM text instead of a file.
    pem = sim.wechatpay_v3_keys().private_key.decode()
    from_env = load_settings("wechatpay-v3", config, environ={env_name("wechatpay-v3", "private_key"): pem})
    assert isinstance(build_client(from_env), WeChatPayV3Client)
    broken = tmp_path / "broken.toml"
    broken.write_text(
        config.read_text(encoding="utf-8").replace(
            str(tmp_path / "keys" / "apiclient_key.pem"), "/no/such/key.pem"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="private_key") as caught:
        build_client(load_settings("wechatpay-v3", broken, environ={}))
    assert secret not in str(caught.value)
    flagged = tmp_path / "flag.toml"
    flagged.write_text(
        config.read_text(encoding="utf-8").replace(
            "platform_certificates = true", 'platform_certificates = "maybe"'
        )
    )
    with pytest.raises(ConfigError, match="true or false"):
        build_client(load_settings("wechatpay-v3", flagged, environ={}))
