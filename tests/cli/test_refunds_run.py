"""``paykit refunds run`` as a subprocess against the simulator on a real local port."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from paykit_async.simulator import (
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    LedgerSnapshot,
    SimulatorConfig,
)

from .helpers import (
    FAULTS,
    LiveSimulator,
    live_simulator,
    paykit_command,
    read_results,
    run_paykit,
    seed_wechat_orders,
    write_csv,
)

FAST_RETRIES = ("--retry-delay", "0.01", "--retry-attempts", "5")


def _run(live: LiveSimulator, csv_file: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    config = live.config_file(csv_file.parent)
    return run_paykit(
        "refunds", "run", csv_file, "--provider", "wechatpay", "--config", config, "--out", out,
        "--concurrency", "24", *FAST_RETRIES, *extra,
    )  # fmt: skip


def _assert_each_row_refunded_once(
    snapshot: LedgerSnapshot, rows: list[dict[str, Any]], results: list[dict[str, Any]]
) -> None:
    assert snapshot.duplicate_payouts == 0
    # One refund per order, of the row's amount: no row was refunded under two numbers.
    for row in rows:
        order = snapshot.order("wechatpay", row["out_trade_no"])
        assert order.payouts == 1, row
        assert order.refunded == row["refund_fee"], row
    assert len(snapshot.refunds) == len(rows)
    by_row = {r["row"]: r for r in results}
    assert sorted(by_row) == list(range(1, len(rows) + 1))
    for number, row in enumerate(rows, start=1):
        line = by_row[number]
        assert line["status"] == "succeeded", line
        refund = snapshot.refund("wechatpay", line["refund_no"])
        assert refund.order_no == row["out_trade_no"]
        assert refund.executions == 1
        assert line["provider_refund_id"]


@pytest.mark.slow
def test_a_thousand_rows_through_faults_are_refunded_exactly_once(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0, faults=FAULTS)) as live:
        rows = seed_wechat_orders(live.simulator, 1000)
        csv_file = write_csv(tmp_path / "refunds.csv", rows)
        out = tmp_path / "results.jsonl"
        first = _run(live, csv_file, out)
        assert first.returncode in (0, 1), first.stderr
        results = read_results(out)
        assert len(results) == 1000
        statuses = {r["status"] for r in results}
        assert statuses <= {"succeeded", "unknown"}, first.stderr
        assert sum(r["attempts"] > 1 for r in results if r["attempts"]) > 0  # the faults did bite
        # Whatever was left unknown is settled by running the same command again.
        runs = 1
        while first.returncode != 0 and runs < 4:
            first = _run(live, csv_file, out)
            runs += 1
        assert first.returncode == 0, first.stderr
        final = read_results(out)
        snapshot = live.simulator.snapshot()
    _assert_each_row_refunded_once(snapshot, rows, final)
    # Refund numbers never change between runs.
    first_numbers = {r["row"]: r["refund_no"] for r in results}
    assert {r["row"]: r["refund_no"] for r in final} == first_numbers
    assert "succeeded" in first.stderr  # the summary table


@pytest.mark.slow
def test_a_run_killed_with_sigkill_then_rerun_refunds_every_row_exactly_once(tmp_path: Path) -> None:
    # Some latency so the run is still going when it is killed; faults after the work too.
    faults = FaultPlan(
        seed=5,
        rules=(FaultRule(latency=0.02, latency_rate=1.0, drop_after=0.03, error_after=0.03, retry_after=0),),
    )
    with live_simulator(SimulatorConfig(completion_delay=0.0, faults=faults)) as live:
        rows = seed_wechat_orders(live.simulator, 1000)
        csv_file = write_csv(tmp_path / "refunds.csv", rows)
        config = live.config_file(tmp_path)
        out = tmp_path / "first.jsonl"
        process = subprocess.Popen(
            paykit_command(
                "refunds",
                "run",
                csv_file,
                "--provider",
                "wechatpay",
                "--config",
                config,
                "--out",
                out,
                "--concurrency",
                "16",
                *FAST_RETRIES,
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if out.exists() and len(out.read_bytes().splitlines()) >= 400:
                    break
                assert process.poll() is None, "the run ended before it could be killed"
                time.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        done_before_kill = len(read_results(out))
        assert 400 <= done_before_kill < 1000
        # Refunds were in flight at the kill: the provider has more than were reported.
        assert len(live.simulator.snapshot().refunds) >= done_before_kill

        rerun_out = tmp_path / "rerun.jsonl"
        rerun = _run(live, csv_file, rerun_out)
        runs = 1
        while rerun.returncode != 0 and runs < 4:
            rerun = _run(live, csv_file, rerun_out)
            runs += 1
        assert rerun.returncode == 0, rerun.stderr
        final = read_results(rerun_out)
        snapshot = live.simulator.snapshot()
    _assert_each_row_refunded_once(snapshot, rows, final)
    # Rows finished before the kill were replayed from the journal, not sent again.
    assert sum(r["replayed"] for r in final) >= done_before_kill


def test_malformed_rows_fail_alone_with_clear_messages(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = seed_wechat_orders(live.simulator, 6)
        csv_file = tmp_path / "refunds.csv"
        csv_file.write_text(
            "out_trade_no,total_fee,refund_fee\n"
            f"{rows[0]['out_trade_no']},{rows[0]['total_fee']},{rows[0]['refund_fee']}\n"
            f"{rows[1]['out_trade_no']},{rows[1]['total_fee']},ten\n"  # not a number
            f"{rows[2]['out_trade_no']},{rows[2]['total_fee']}\n"  # a cell short
            f"{rows[3]['out_trade_no']},,{rows[3]['refund_fee']}\n"  # total_fee missing
            f"{rows[4]['out_trade_no']},{rows[4]['total_fee']},{rows[4]['total_fee'] * 5}\n"  # too much
            f"{rows[5]['out_trade_no']},{rows[5]['total_fee']},{rows[5]['refund_fee']}\n",
            encoding="utf-8",
        )
        out = tmp_path / "results.jsonl"
        result = _run(live, csv_file, out)
        snapshot = live.simulator.snapshot()
    assert result.returncode == 1, result.stderr
    by_row = {r["row"]: r for r in read_results(out)}
    assert by_row[1]["status"] == "succeeded"
    assert by_row[6]["status"] == "succeeded"
    assert by_row[2]["status"] == "invalid"
    assert "row 2: refund_fee must be a whole number of fen, got 'ten'" in by_row[2]["error_message"]
    assert by_row[3]["status"] == "invalid"
    assert "row 3: 2 cell(s) for 3 column(s)" in by_row[3]["error_message"]
    assert by_row[4]["status"] == "invalid"
    assert "total_fee" in by_row[4]["error_message"]
    # Refused by the client (refund_fee > total_fee) before sending, or by the provider.
    assert by_row[5]["status"] in ("invalid", "failed")
    assert by_row[5]["error_message"]
    assert len(snapshot.refunds) == 2


def _bad_config_run(
    tmp_path: Path, config_text: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    csv_file = write_csv(tmp_path / "r.csv", [{"out_trade_no": "T1", "total_fee": 100, "refund_fee": 100}])
    config = tmp_path / "paykit.toml"
    config.write_text(config_text, encoding="utf-8")
    out = tmp_path / "o.jsonl"
    return run_paykit(
        "refunds", "run", csv_file, "--provider", "wechatpay", "--config", config, "--out", out, env=env
    )  # fmt: skip


SECRET = "TOPSECRETapikey0123456789abcdefXYZ"


@pytest.mark.parametrize(
    ("config_text", "expected"),
    [
        (f'[wechatpay]\nmch_id = "1900000109"\napi_key = "{SECRET}"\n', "missing appid"),
        (
            f'[wechatpay]\nappid = "wx1"\nmch_id = "19"\napi_key = "{SECRET}"\ncolour = "red"\n',
            "unknown key(s) colour",
        ),
        (f'[wechatpay]\nappid = "wx1"\napi_key = "{SECRET}\n', "not valid TOML"),
        (
            f'[wechatpay]\nappid = "wxd930ea5d5a258f4f"\nmch_id = "1900000109"\napi_key = "{SECRET}"\n'
            'base_url = "ftp://example.test"\n',
            "base_url",
        ),
        (
            f'[wechatpay]\nappid = "wxd930ea5d5a258f4f"\nmch_id = "1900000109"\napi_key = "{SECRET}"\n'
            'p12_file = "/nonexistent/apiclient_cert.p12"\n',
            "p12",
        ),
    ],
)
def test_a_bad_config_is_one_clear_line_and_exit_status_2(
    tmp_path: Path, config_text: str, expected: str
) -> None:
    result = _bad_config_run(tmp_path, config_text)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paykit: error: ")
    assert expected in lines[0]
    assert SECRET not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_and_an_unknown_column_are_usage_errors(tmp_path: Path) -> None:
    csv_file = write_csv(tmp_path / "r.csv", [{"out_trade_no": "T1", "colour": "red"}])
    unknown_column = run_paykit("refunds", "run", csv_file, "--provider", "wechatpay", "--dry-run")
    assert unknown_column.returncode == 2
    assert "unknown column(s) 'colour'" in unknown_column.stderr
    good_csv = write_csv(tmp_path / "g.csv", [{"out_trade_no": "T1", "total_fee": 1, "refund_fee": 1}])
    missing = run_paykit(
        "refunds", "run", good_csv, "--provider", "wechatpay", "--config", tmp_path / "nope.toml"
    )
    assert missing.returncode == 2
    assert "cannot read config file" in missing.stderr


def test_secrets_may_come_from_the_environment_and_dry_run_sends_nothing(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = seed_wechat_orders(live.simulator, 3)
        csv_file = write_csv(tmp_path / "refunds.csv", rows)
        config = live.config_file(tmp_path, api_key=None)  # type: ignore[arg-type]
        assert "api_key" not in config.read_text()
        env = {"PAYKIT_WECHATPAY_API_KEY": DEMO_WECHATPAY.api_key}
        without = run_paykit("refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--dry-run")
        assert without.returncode == 2
        assert "PAYKIT_WECHATPAY_API_KEY" in without.stderr
        dry = run_paykit(
            "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--dry-run", env=env
        )
        assert dry.returncode == 0, dry.stderr
        assert [line.count('"status": "ready"') for line in dry.stdout.splitlines()] == [1, 1, 1]
        assert live.simulator.requests() == ()
        assert not (tmp_path / "refunds.csv.journal.db").exists()
        real = run_paykit("refunds", "run", csv_file, "-p", "wechatpay", "--config", config, env=env)
        assert real.returncode == 0, real.stderr
        assert DEMO_WECHATPAY.api_key not in real.stdout + real.stderr
        assert len(live.simulator.snapshot().refunds) == 3
        # Results went to stdout; the journal sits next to the CSV by default.
        assert len(real.stdout.splitlines()) == 3
        assert (tmp_path / "refunds.csv.journal.db").exists()


def test_payjs_and_eftpay_batches_from_csv(tmp_path: Path) -> None:
    from decimal import Decimal

    from paykit_async.simulator import DEMO_EFTPAY

    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        payjs_rows, eftpay_rows = [], []
        for i in range(10):
            live.simulator.add_payjs_order(f"PJ{i:030d}", 300 + i)
            payjs_rows.append({"payjs_order_id": f"PJ{i:030d}"})
            live.simulator.add_eftpay_order(f"E{i:05d}", Decimal("12.34"))
            eftpay_rows.append(
                {
                    "paytype": "WeChat",
                    "payment_type": "WECHATCN",
                    "out_trade_no": f"E{i:05d}",
                    "transaction_amount": "5.10",
                    "total_fee": "12.34",
                }
            )
        config = tmp_path / "paykit.toml"
        config.write_text(
            f'[payjs]\nmchid = "{DEMO_PAYJS.mchid}"\nkey = "{DEMO_PAYJS.key}"\n'
            f'base_url = "{live.root}/payjs"\n'
            f'[eftpay]\nuser_confirm_key = "{DEMO_EFTPAY.user_confirm_key}"\n'
            f'secret = "{DEMO_EFTPAY.secret}"\nbase_url = "{live.root}/eftpay"\n',
            encoding="utf-8",
        )
        for provider, rows in (("payjs", payjs_rows), ("eftpay", eftpay_rows)):
            csv_file = write_csv(tmp_path / f"{provider}.csv", rows)
            out = tmp_path / f"{provider}.jsonl"
            result = run_paykit("refunds", "run", csv_file, "-p", provider, "--config", config, "--out", out)
            assert result.returncode == 0, result.stderr
            assert [r["status"] for r in read_results(out)] == ["succeeded"] * 10
            # eftPay's reply says where the refund is; PAYJS's says nothing more than accepted.
            statuses = {r["provider_status"] for r in read_results(out)}
            assert statuses == ({None} if provider == "payjs" else {"TRADE_REFUND"}), statuses
            again = run_paykit("refunds", "run", csv_file, "-p", provider, "--config", config, "--out", out)
            assert again.returncode == 0, again.stderr
            assert all(r["replayed"] for r in read_results(out))
        snapshot = live.simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert len(snapshot.refunds) == 20
    for i in range(10):
        assert snapshot.order("payjs", f"PJ{i:030d}").refunded == 300 + i
        assert snapshot.order("eftpay", f"E{i:05d}").refunded == 510


def test_a_digit_that_int_refuses_is_a_row_error_not_a_crash() -> None:
    """'3²' passes str.isdigit() but not int(): the row is invalid on its own (it crashed the
    whole command with a ValueError); full-width digits stay a number."""
    from paykit_async.batch import InvalidRequest
    from paykit_async.cli.rows import convert_row

    columns = ["out_trade_no", "total_fee", "refund_fee"]
    bad = convert_row("wechatpay", columns, ["A1", "1000", "3²"])
    assert isinstance(bad, InvalidRequest)
    assert bad.reason == "refund_fee must be a whole number of fen, got '3²'"
    assert convert_row("wechatpay", columns, ["A1", "１０００", "300"]) == {
        "out_trade_no": "A1",
        "total_fee": 1000,
        "refund_fee": 300,
    }
