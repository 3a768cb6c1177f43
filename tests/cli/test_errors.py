"""The ``paykit`` command never shows a traceback: every error is one line on stderr, exit status 2.

A traceback appears only with the global ``--debug`` flag, for unexpected errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from paykit_async.simulator import SimulatorConfig

from .helpers import live_simulator, run_paykit, seed_wechat_orders


def assert_one_error_line(done: subprocess.CompletedProcess[str], *parts: str, status: int = 2) -> str:
    """The command failed with ``status`` and exactly one ``paykit: error:`` line holding ``parts``."""
    assert done.returncode == status, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    (line,) = lines
    assert line.startswith("paykit: error: "), line
    assert "Traceback" not in done.stderr
    for part in parts:
        assert part in line, (part, line)
    return line


@pytest.mark.parametrize(
    ("args", "parts"),
    [
        (["bogus"], ["No such command 'bogus'", "(see 'paykit --help')"]),
        (["demo", "--orders", "many"], ["'many' is not a valid integer", "(see 'paykit demo --help')"]),
        (["demo", "--colour"], ["No such option '--colour'"]),
        (["refunds", "run"], ["Missing argument 'CSV_FILE'"]),
        (["refunds", "run", "no-such.csv", "-p", "wechatpay"], ["no-such.csv", "does not exist"]),
        (["refund", "-p", "stripe", "x=1"], ["'stripe' is not one of"]),
        (["simulator", "serve", "--port", "70000"], ["70000 is not in the range"]),
    ],
)
def test_usage_errors_are_one_line(args: list[str], parts: list[str]) -> None:
    done = run_paykit(*args)
    assert_one_error_line(done, *parts)
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ('[wechatpay]\nappid = "wx1"\ncolour = "red"\n', ["unknown key(s) colour in [wechatpay]"]),
        ("[wechatpay\n", ["is not valid TOML", "line 1"]),
        (b"[payjs]\nkey = '\xff'\n", ["is not UTF-8 text"]),
        ('[payjs]\nmchid = "1"\n', ["[payjs] is missing key (or PAYKIT_PAYJS_KEY)"]),
    ],
)
def test_config_errors_are_one_line(tmp_path: Path, content: str | bytes, parts: list[str]) -> None:
    config = tmp_path / "paykit.toml"
    if isinstance(content, bytes):
        config.write_bytes(content)
    else:
        config.write_text(content, encoding="utf-8")
    provider = "payjs" if "payjs" in str(content) else "wechatpay"
    field = "payjs_order_id=P1" if provider == "payjs" else "out_refund_no=R1"
    done = run_paykit("query", "-p", provider, "--config", config, field)
    assert_one_error_line(done, *parts)


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    done = run_paykit("query", "-p", "payjs", "--config", missing, "payjs_order_id=P1")
    assert_one_error_line(done, "cannot read config file", "nope.toml")
    batch = tmp_path / "refunds.csv"
    batch.write_text("payjs_order_id\nP1\n", encoding="utf-8")
    done = run_paykit("refunds", "run", batch, "-p", "payjs", "--config", missing)
    assert_one_error_line(done, "cannot read config file")


def test_an_unusable_journal_is_one_line(tmp_path: Path) -> None:
    env = {"PAYKIT_PAYJS_MCHID": "1", "PAYKIT_PAYJS_KEY": "k"}
    journal = tmp_path / "no-such-dir" / "j.db"
    single = run_paykit(
        "refund", "-p", "payjs", "payjs_order_id=P1", "--journal", journal, "--idempotency-key", "k", env=env
    )
    assert_one_error_line(single, "cannot use the journal", str(journal), "unable to open database file")
    batch = tmp_path / "refunds.csv"
    batch.write_text("payjs_order_id\nP1\n", encoding="utf-8")
    done = run_paykit("refunds", "run", batch, "-p", "payjs", "--journal", journal, env=env)
    assert_one_error_line(done, "journal", "No such file or directory")


def test_a_csv_without_a_header_is_one_line(tmp_path: Path) -> None:
    batch = tmp_path / "refunds.csv"
    batch.write_text("", encoding="utf-8")
    done = run_paykit(
        "refunds", "run", batch, "-p", "payjs", env={"PAYKIT_PAYJS_MCHID": "1", "PAYKIT_PAYJS_KEY": "k"}
    )
    assert_one_error_line(done, "no header row")


#: ``paykit ARGS`` with a demo that fails unexpectedly (a stand-in for any bug in a command). Run in
#: its own interpreter: the command configures process-wide logging.
BROKEN_DEMO = """
import sys
import paykit_async.cli.demo as demo

async def broken_demo(**_options):
    raise RuntimeError("the demo broke")

demo.run_demo = broken_demo
from paykit_async.cli.commands import main
main(sys.argv[1:])
"""


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback() -> None:
    plain = subprocess.run(
        [sys.executable, "-c", BROKEN_DEMO, "demo", "--orders", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plain.returncode == 2
    assert plain.stderr.splitlines()[-1] == (
        "paykit: error: RuntimeError: the demo broke (paykit --debug ... shows the traceback)"
    )
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(
        [sys.executable, "-c", BROKEN_DEMO, "--debug", "demo", "--orders", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.splitlines()[-1] == "RuntimeError: the demo broke"


def test_plain_paykit_shows_the_help() -> None:
    done = run_paykit()
    assert "Usage: paykit" in done.stdout + done.stderr
    assert "--debug" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- single operations: fields first


def test_a_missing_refund_field_is_named_before_any_refund_number() -> None:
    # No configuration at all: the fields are checked first, against WeChatPayClient.refund.
    done = run_paykit("refund", "-p", "wechatpay", "total_fee=100")
    line = assert_one_error_line(done, "missing field: refund_fee")
    assert "refund number" not in done.stderr
    assert "keyword-only argument" not in line
    assert "paykit refund -p wechatpay takes total_fee, refund_fee and optionally out_trade_no" in line


def test_unknown_and_repeated_fields_are_named() -> None:
    unknown = run_paykit("refund", "-p", "wechatpay", "total_fee=1", "refund_fee=1", "colour=red", "size=L")
    assert_one_error_line(unknown, "unknown fields: colour, size")
    assert "unexpected keyword argument" not in unknown.stderr
    twice = run_paykit("query", "-p", "payjs", "payjs_order_id=P1", "payjs_order_id=P2")
    assert_one_error_line(twice, "field given more than once: payjs_order_id")
    eft = run_paykit("query", "-p", "eftpay", "out_trade_no=T1")
    assert_one_error_line(eft, "missing fields: paytype, payment_type")
    malformed = run_paykit("refund", "-p", "payjs", "payjs_order_id")
    assert_one_error_line(malformed, "expected FIELD=VALUE, got 'payjs_order_id'")
    empty = run_paykit("refund", "-p", "payjs", "payjs_order_id=")
    assert_one_error_line(empty, "no value for payjs_order_id")
    not_a_number = run_paykit("refund", "-p", "wechatpay", "total_fee=1x", "refund_fee=1", "out_trade_no=T")
    assert_one_error_line(not_a_number, "total_fee must be a whole number of fen, got '1x'")
    bad_offset = run_paykit("query", "-p", "wechatpay", "out_trade_no=T", "offset=two")
    assert_one_error_line(bad_offset, "offset must be a whole number")


def test_close_and_query_without_fields_say_what_they_take() -> None:
    close = run_paykit("close", "-p", "wechatpay")
    assert_one_error_line(close, "missing field: out_trade_no (paykit close -p wechatpay takes out_trade_no)")
    assert "empty row" not in close.stderr
    payjs_close = run_paykit("close", "-p", "payjs")
    assert_one_error_line(payjs_close, "missing field: payjs_order_id")
    query = run_paykit("query", "-p", "wechatpay")
    assert_one_error_line(
        query,
        "no FIELD=VALUE given (paykit query -p wechatpay takes "
        "out_refund_no, refund_id, transaction_id, out_trade_no, offset)",
    )
    no_close = run_paykit("close", "-p", "eftpay", "out_trade_no=X")
    assert_one_error_line(no_close, "eftPay has no close-order call")


def test_the_refund_number_is_shown_only_for_a_request_about_to_be_sent(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        (row,) = seed_wechat_orders(live.simulator, 1)
        config = live.config_file(tmp_path)
        order = [f"out_trade_no={row['out_trade_no']}", f"total_fee={row['total_fee']}"]
        # Invalid amounts: refused before sending, and no refund number was ever shown.
        refused = run_paykit("refund", "-p", "wechatpay", "--config", config, *order, "refund_fee=999999")
        assert_one_error_line(refused, "ValidationError", "must not exceed total_fee", "(nothing was sent)")
        # A valid refund: the number on stderr once, the same number in the JSON result.
        journal = tmp_path / "single.db"
        keyed = ["--journal", journal, "--idempotency-key", "order-1-refund"]
        first = run_paykit("refund", "-p", "wechatpay", "--config", config, *keyed, *order, "refund_fee=10")
        assert first.returncode == 0, first.stderr
        (announced,) = [line for line in first.stderr.splitlines() if line.startswith("refund number: ")]
        number = announced.removeprefix("refund number: ")
        assert json.loads(first.stdout)["out_refund_no"] == number
        # The same key again: the recorded result is replayed under the recorded number.
        again = run_paykit("refund", "-p", "wechatpay", "--config", config, *keyed, *order, "refund_fee=10")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["out_refund_no"] == number
        assert "refund number: " not in again.stderr or f"refund number: {number}" in again.stderr
        # A number the caller chose is not echoed: they know it.
        chosen = run_paykit(
            "refund", "-p", "wechatpay", "--config", config, *order, "refund_fee=5", "out_refund_no=RMINE1"
        )
        assert chosen.returncode == 0, chosen.stderr
        assert "refund number" not in chosen.stderr
        snapshot = live.simulator.snapshot()
    assert snapshot.refund("wechatpay", number).amount == 10
    assert snapshot.refund("wechatpay", "RMINE1").amount == 5
    assert snapshot.duplicate_payouts == 0
