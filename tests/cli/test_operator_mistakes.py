"""``paykit refunds run`` through what operators do: edit and re-run, lose the journal, start a
second run by mistake, fix a wrong key, dry-run first.

Each test runs the real command (a subprocess) against the simulator served as
``paykit simulator serve`` serves it, and judges by the simulator's LEDGER — never by the exit
status alone: every order is refunded exactly as the final CSV says, none under two numbers.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from paykit_async import derive_refund_no
from paykit_async.cli.refunds import DEFAULT_BATCH_ID
from paykit_async.simulator import DEMO_WECHATPAY, FaultPlan, FaultRule, LedgerSnapshot, SimulatorConfig

from .helpers import LiveSimulator, live_simulator, paykit_command, read_results, run_paykit, write_csv

FAST = ("--retry-delay", "0.01", "--concurrency", "8")


def _orders(live: LiveSimulator, count: int, prefix: str = "K") -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        total = 1000 + 10 * i
        live.simulator.add_wechatpay_order(f"{prefix}{i}", total)
        rows.append({"out_trade_no": f"{prefix}{i}", "total_fee": total, "refund_fee": total // 4})
    return rows


def _run(
    live: LiveSimulator, csv_file: Path, out: Path, *extra: str | Path, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    config = config if config is not None else live.config_file(csv_file.parent)
    return run_paykit(
        "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out, *FAST, *extra
    )  # fmt: skip


def _assert_refunded_as(snapshot: LedgerSnapshot, expected: dict[str, int]) -> None:
    """The ledger holds exactly ``expected`` (order → amount), one payout per order."""
    assert snapshot.duplicate_payouts == 0
    refunded = {order: view.refunded for (_, order), view in snapshot.orders.items() if view.refunded}
    assert refunded == expected
    for order in expected:
        assert snapshot.order("wechatpay", order).payouts == 1, order
    numbers_per_order: dict[str, set[str]] = {}
    for (_, number), refund in snapshot.refunds.items():
        numbers_per_order.setdefault(refund.order_no, set()).add(number)
        assert refund.executions == 1
    assert all(len(numbers) == 1 for numbers in numbers_per_order.values()), numbers_per_order


def _expected(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {row["out_trade_no"]: row["refund_fee"] for row in rows}


def test_insert_delete_and_shuffle_rows_then_rerun(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 8)
        csv_file = write_csv(tmp_path / "edit.csv", rows[1:4])  # K1, K2, K3
        first = _run(live, csv_file, tmp_path / "first.jsonl")
        assert first.returncode == 0, first.stderr
        # The finding: K0 inserted at the top used to shift every row's journal key.
        edited = [rows[0], *rows[1:4]]
        write_csv(csv_file, edited)
        second = _run(live, csv_file, tmp_path / "second.jsonl")
        assert second.returncode == 0, second.stderr
        # Then K2 deleted, K5..K7 appended, everything shuffled.
        final = [rows[0], rows[1], rows[3], *rows[5:8]]
        random.Random(3).shuffle(final)
        write_csv(csv_file, final)
        third = _run(live, csv_file, tmp_path / "third.jsonl")
        assert third.returncode == 0, third.stderr
        snapshot = live.simulator.snapshot()
    # Every row of every version refunded once; K2 (deleted after it ran) once too, K4 never.
    _assert_refunded_as(snapshot, _expected([*final, rows[2]]))
    results = read_results(tmp_path / "third.jsonl")
    assert sorted(r["row"] for r in results) == list(range(1, len(final) + 1))
    by_order = {final[r["row"] - 1]["out_trade_no"]: r for r in results}
    assert all(r["status"] == "succeeded" for r in results)
    assert {order for order, r in by_order.items() if r["replayed"]} == {"K0", "K1", "K3"}
    first_csv = rows[1:4]
    first_numbers = {
        first_csv[r["row"] - 1]["out_trade_no"]: r["refund_no"]
        for r in read_results(tmp_path / "first.jsonl")
    }
    for order in ("K1", "K3"):
        assert by_order[order]["refund_no"] == first_numbers[order]


def _delete_journal(csv_file: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{csv_file}.journal.db{suffix}").unlink(missing_ok=True)


def test_delete_or_restore_the_journal_copy_the_csv_then_rerun(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 30)
        csv_file = write_csv(tmp_path / "batch.csv", rows)
        config = live.config_file(tmp_path)
        first = _run(live, csv_file, tmp_path / "first.jsonl", config=config)
        assert first.returncode == 0, first.stderr
        numbers = {r["row"]: r["refund_no"] for r in read_results(tmp_path / "first.jsonl")}
        # 1. The journal is deleted: every row goes out again under the same number.
        _delete_journal(csv_file)
        again = _run(live, csv_file, tmp_path / "again.jsonl", config=config)
        assert again.returncode == 0, again.stderr
        again_results = read_results(tmp_path / "again.jsonl")
        assert {r["row"]: r["refund_no"] for r in again_results} == numbers
        assert not any(r["replayed"] for r in again_results)  # really sent, and deduped by WeChat
        # 2. An empty journal restored from before the run.
        journal = Path(f"{csv_file}.journal.db")
        _delete_journal(csv_file)
        sqlite3.connect(journal).close()
        restored = _run(live, csv_file, tmp_path / "restored.jsonl", config=config)
        assert restored.returncode == 0, restored.stderr
        # 3. The CSV copied elsewhere, renamed, run from another directory with a fresh journal.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        copy = Path(shutil.copyfile(csv_file, elsewhere / "copy-of-batch.csv"))
        moved = subprocess.run(
            paykit_command(
                "refunds", "run", copy.name, "-p", "wechatpay", "--config", config,
                "--out", "copy.jsonl", *FAST,
            ),
            cwd=elsewhere, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert moved.returncode == 0, moved.stderr
        assert {r["row"]: r["refund_no"] for r in read_results(elsewhere / "copy.jsonl")} == numbers
        snapshot = live.simulator.snapshot()
        sent = [r for r in live.simulator.requests() if r.endpoint == "refund"]
    assert len(sent) == 4 * len(rows)
    _assert_refunded_as(snapshot, _expected(rows))
    # The documented derivation: a row's number follows from its identity alone.
    row = rows[0]
    key = f"{DEFAULT_BATCH_ID}:{_identity(row['out_trade_no'], row['total_fee'], row['refund_fee'])}"
    assert numbers[1] == derive_refund_no(provider="wechatpay", merchant=DEMO_WECHATPAY.mch_id, key=key)


def test_a_second_run_is_refused_and_leaves_the_first_runs_results_intact(tmp_path: Path) -> None:
    slow = FaultPlan(seed=1, rules=(FaultRule(latency=0.03, latency_rate=1.0),))
    with live_simulator(SimulatorConfig(completion_delay=0.0, faults=slow)) as live:
        rows = _orders(live, 120)
        csv_file = write_csv(tmp_path / "big.csv", rows)
        config = live.config_file(tmp_path)
        out = tmp_path / "results.jsonl"
        first = subprocess.Popen(
            paykit_command(
                "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out,
                "--concurrency", "4",
            ),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not (out.exists() and out.read_bytes().count(b"\n") >= 10):
                assert first.poll() is None, "the first run ended too early"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            # While the second run starts and is refused, the first must still be running, however
            # slowly this machine starts a process: slow the simulator right down until then (110
            # rows at 4 in flight and 0.5 s each leave the first run at least 13 s).
            live.simulator.set_faults(FaultPlan(seed=1, rules=(FaultRule(latency=0.5, latency_rate=1.0),)))
            second = _run(live, csv_file, out, config=config)
            assert first.poll() is None, "the first run must still be running"
            live.simulator.set_faults(FaultPlan())
        finally:
            _, first_stderr = first.communicate(timeout=120)
        snapshot = live.simulator.snapshot()
    assert second.returncode == 2
    assert "another paykit run is using the journal" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, first_stderr
    data = out.read_bytes()
    assert b"\x00" not in data
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 120
    results = [json.loads(line) for line in lines]
    assert sorted(r["row"] for r in results) == list(range(1, 121))
    assert {r["status"] for r in results} == {"succeeded"}
    _assert_refunded_as(snapshot, _expected(rows))


def test_a_refused_run_touches_no_file(tmp_path: Path) -> None:
    import fcntl

    csv_file = write_csv(tmp_path / "r.csv", [{"out_trade_no": "T1", "total_fee": 100, "refund_fee": 100}])
    config = tmp_path / "paykit.toml"
    config.write_text(
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "http://127.0.0.1:9"\n',
        encoding="utf-8",
    )
    out = tmp_path / "results.jsonl"
    out.write_text('{"row": 1, "status": "succeeded"}\n', encoding="utf-8")
    with open(f"{csv_file}.journal.db.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "another run"
        before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
        refused = run_paykit("refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out)
    assert refused.returncode == 2
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before
    assert out.read_text(encoding="utf-8") == '{"row": 1, "status": "succeeded"}\n'
    assert not Path(f"{csv_file}.journal.db").exists()


def test_wrong_key_then_fixed_key(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 12)
        csv_file = write_csv(tmp_path / "batch.csv", rows)
        (tmp_path / "wrong").mkdir()
        wrong = live.config_file(tmp_path / "wrong", api_key="0123456789abcdef0123456789abcdef")
        fixed = live.config_file(tmp_path)
        refused = _run(live, csv_file, tmp_path / "refused.jsonl", config=wrong)
        assert refused.returncode == 1
        refused_results = read_results(tmp_path / "refused.jsonl")
        assert {r["status"] for r in refused_results} == {"failed"}
        line = refused_results[0]
        assert line["error_code"] == "FAIL"
        assert line["error_message"] == f"row {line['row']}: 签名错误"
        assert "\\u" not in (tmp_path / "refused.jsonl").read_text(encoding="utf-8")
        sent_before = len(live.simulator.requests())
        # With --no-retry-failed the recorded refusal is replayed: nothing is sent.
        kept = _run(live, csv_file, tmp_path / "kept.jsonl", "--no-retry-failed", config=fixed)
        assert kept.returncode == 1
        kept_results = read_results(tmp_path / "kept.jsonl")
        assert {(r["status"], r["attempts"], r["replayed"]) for r in kept_results} == {("failed", 0, True)}
        assert len(live.simulator.requests()) == sent_before
        # The default: refused rows are sent again, under the same refund numbers.
        retried = _run(live, csv_file, tmp_path / "retried.jsonl", config=fixed)
        assert retried.returncode == 0, retried.stderr
        retried_results = read_results(tmp_path / "retried.jsonl")
        snapshot = live.simulator.snapshot()
    assert {r["status"] for r in retried_results} == {"succeeded"}
    assert all(r["attempts"] >= 1 and not r["replayed"] for r in retried_results)
    assert {r["row"]: r["refund_no"] for r in retried_results} == {
        r["row"]: r["refund_no"] for r in refused_results
    }
    _assert_refunded_as(snapshot, _expected(rows))


def test_dry_run_reports_exactly_what_the_real_run_reports(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 9)
        csv_file = tmp_path / "mixed.csv"
        lines = ["out_trade_no,total_fee,refund_fee,refund_desc"]
        for i, row in enumerate(rows):
            total, fee = row["total_fee"], row["refund_fee"]
            if i == 1:
                fee = total + 1  # more than the order: the client refuses it before sending
            if i == 2:
                fee = "ten"  # not a number
            if i == 3:
                total = ""  # missing
            desc = "活动取消" if i == 4 else ("x" * 81 if i == 5 else "")  # refund_desc too long at 81
            lines.append(f"{row['out_trade_no']},{total},{fee},{desc}")
        lines.append(f"{rows[6]['out_trade_no']},{rows[6]['total_fee']}")  # a cell short
        lines.append("")  # a trailing blank line is ignored
        csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        dry = _run(live, csv_file, tmp_path / "dry.jsonl", "--dry-run")
        assert live.simulator.requests() == ()
        real = _run(live, csv_file, tmp_path / "real.jsonl")
        snapshot = live.simulator.snapshot()
    assert dry.returncode == 1
    assert real.returncode == 1
    dry_lines = {r["row"]: r for r in read_results(tmp_path / "dry.jsonl")}
    real_lines = {r["row"]: r for r in read_results(tmp_path / "real.jsonl")}
    assert sorted(dry_lines) == sorted(real_lines) == list(range(1, 11))

    def invalid(lines: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        return {
            n: {k: v for k, v in r.items() if k != "request"}
            for n, r in lines.items()
            if r["status"] == "invalid"
        }

    assert invalid(dry_lines) == invalid(real_lines)
    assert sorted(invalid(real_lines)) == [2, 3, 4, 6, 10]
    for number, line in invalid(real_lines).items():
        assert line["error_message"].startswith(f"row {number}: ")
        assert line["error_code"]
    assert "refund_fee: must not exceed total_fee" in real_lines[2]["error_message"]
    assert real_lines[2]["refund_no"]  # refused by the client's checks: its number exists
    assert real_lines[3]["refund_no"] is None  # malformed: no request, no number
    assert "refund_desc" in real_lines[6]["error_message"]
    assert {dry_lines[n]["status"] for n in (1, 5, 7, 8, 9)} == {"ready"}
    assert {n: dry_lines[n]["refund_no"] for n in (1, 5, 7, 8, 9)} == {
        n: real_lines[n]["refund_no"] for n in (1, 5, 7, 8, 9)
    }
    assert dry_lines[5]["request"]["refund_desc"] == "活动取消"
    _assert_refunded_as(snapshot, _expected([rows[i] for i in (0, 4, 6, 7, 8)]))


def test_duplicate_rows_are_refused_until_told_apart(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 3)
        csv_file = write_csv(tmp_path / "dups.csv", [rows[0], rows[1], rows[0], rows[2]])
        out = tmp_path / "dups.jsonl"
        result = _run(live, csv_file, out)
        assert result.returncode == 1
        lines = {r["row"]: r for r in read_results(out)}
        assert {n: lines[n]["status"] for n in lines} == {
            1: "invalid",
            2: "succeeded",
            3: "invalid",
            4: "succeeded",
        }
        assert lines[1]["error_code"] == lines[3]["error_code"] == "DuplicateRow"
        assert "row 1: the same refund as row(s) 3" in lines[1]["error_message"]
        assert "idempotency_key" in lines[3]["error_message"]
        assert not any(r.fields.get("out_trade_no") == "K0" for r in live.simulator.requests())
        # Two genuine partial refunds of K0: an idempotency_key column tells them apart.
        tagged = [
            {**rows[0], "idempotency_key": "first half"},
            rows[1],
            {**rows[0], "idempotency_key": "second half"},
        ]
        write_csv(csv_file, tagged, header=["out_trade_no", "total_fee", "refund_fee", "idempotency_key"])
        again = _run(live, csv_file, out)
        assert again.returncode == 0, again.stderr
        snapshot = live.simulator.snapshot()
    assert snapshot.order("wechatpay", "K0").payouts == 2
    assert snapshot.order("wechatpay", "K0").refunded == 2 * rows[0]["refund_fee"]
    assert snapshot.order("wechatpay", "K1").payouts == 1
    assert snapshot.duplicate_payouts == 0


def test_blank_lines_utf8_and_one_error_shape_on_stdout(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 3)
        csv_file = tmp_path / "blank.csv"
        csv_file.write_text(
            "out_trade_no,total_fee,refund_fee,refund_desc\n"
            f"{rows[0]['out_trade_no']},{rows[0]['total_fee']},{rows[0]['refund_fee']},活动取消\n"
            "\n"
            f"{rows[1]['out_trade_no']},{rows[1]['total_fee']},{rows[1]['total_fee'] * 2},退款\n"
            " , , , \n"
            f"{rows[2]['out_trade_no']},{rows[2]['total_fee']},{rows[2]['refund_fee']},\n"
            "\n\n",
            encoding="utf-8",
        )
        config = live.config_file(tmp_path)
        result = run_paykit("refunds", "run", csv_file, "-p", "wechatpay", "--config", config, *FAST)
    assert result.returncode == 1, result.stderr
    assert "\\u" not in result.stdout
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["row"] for r in lines) == [1, 3, 5]  # rows count the file's records
    by_row = {r["row"]: r for r in lines}
    assert by_row[1]["status"] == by_row[5]["status"] == "succeeded"
    assert by_row[3]["status"] == "invalid"
    assert by_row[3]["error_code"] == "ValidationError"
    assert by_row[3]["error_message"].startswith("row 3: refund_fee: must not exceed total_fee")
    assert by_row[3]["refund_no"] == derive_refund_no(
        provider="wechatpay",
        merchant=DEMO_WECHATPAY.mch_id,
        key=f"{DEFAULT_BATCH_ID}:"
        + _identity(rows[1]["out_trade_no"], rows[1]["total_fee"], rows[1]["total_fee"] * 2),
    )


def _identity(order: str, total: int, fee: int) -> str:
    from paykit_async import WeChatPayClient

    rule = WeChatPayClient.refund_number_rule
    return rule.identity_of(
        {"out_trade_no": order, "total_fee": total, "refund_fee": fee}, merchant=DEMO_WECHATPAY.mch_id
    )


def test_an_unusable_or_old_journal_is_one_line_and_nothing_is_sent(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = _orders(live, 2)
        csv_file = write_csv(tmp_path / "j.csv", rows)
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "garbage.db"
        journal.write_bytes(b"garbage" * 1000)
        garbage = _run(live, csv_file, out, "--journal", journal)
        old = tmp_path / "old.db"
        with sqlite3.connect(old) as db:
            db.execute(
                "CREATE TABLE paykit_idempotency (key TEXT PRIMARY KEY, refund_no TEXT NOT NULL,"
                " fingerprint TEXT NOT NULL, state TEXT NOT NULL, owner TEXT NOT NULL DEFAULT '',"
                " lease_expires REAL NOT NULL DEFAULT 0, result TEXT, created_at REAL NOT NULL,"
                " updated_at REAL NOT NULL)"
            )
            db.execute(
                "INSERT INTO paykit_idempotency VALUES (?, 'R1', 'f', 'succeeded', '', 0, NULL, 0, 0)",
                (f"csv:{csv_file}:row1",),
            )
        legacy = _run(live, csv_file, out, "--journal", old)
        sent = live.simulator.requests()
    for result, expected in ((garbage, "not an SQLite database"), (legacy, "paykit 0.1")):
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
    assert not out.exists()
    assert sent == ()


def test_a_tls_misconfiguration_is_reported_once_with_its_fix(tmp_path: Path) -> None:
    from paykit_async.simulator import Simulator
    from paykit_async.simulator.serve import ensure_tls_material, serve_in_thread

    material = ensure_tls_material(tmp_path / "simtls")
    simulator = Simulator(SimulatorConfig(completion_delay=0.0))
    simulator.add_wechatpay_order("T1", 100)
    csv_file = write_csv(tmp_path / "tls.csv", [{"out_trade_no": "T1", "total_fee": 100, "refund_fee": 100}])
    with serve_in_thread(simulator, tls=material) as root:
        config = tmp_path / "paykit.toml"
        config.write_text(
            f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
            f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{root}/wechatpay"\n'
            f'cert_file = "{material.client_cert_file}"\nkey_file = "{material.client_key_file}"\n',
            encoding="utf-8",
        )
        out = tmp_path / "tls.jsonl"
        result = run_paykit(
            "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out,
            "--retry-delay", "0",
        )  # fmt: skip
        assert simulator.requests() == ()
    assert result.returncode == 1
    (line,) = read_results(out)
    assert line["status"] == "failed"  # certainly not sent: nothing to settle
    assert line["attempts"] == 1  # not retried
    assert line["error_code"] == "TransportError"
    assert "certificate verify failed" in line["error_message"]
    assert "ca_file=" in line["error_message"]


def test_a_changed_description_of_a_finished_row_is_refused_not_refunded_again(tmp_path: Path) -> None:
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        rows = [{**row, "refund_desc": "event cancelled"} for row in _orders(live, 2)]
        csv_file = write_csv(tmp_path / "desc.csv", rows)
        assert _run(live, csv_file, tmp_path / "first.jsonl").returncode == 0
        rows[1]["refund_desc"] = "event cancelled (rain)"
        write_csv(csv_file, rows)
        again = _run(live, csv_file, tmp_path / "again.jsonl")
        snapshot = live.simulator.snapshot()
    assert again.returncode == 1
    by_row = {line["row"]: line for line in read_results(tmp_path / "again.jsonl")}
    assert by_row[1]["status"] == "succeeded"
    assert by_row[2]["status"] == "invalid"
    assert by_row[2]["error_code"] == "IdempotencyConflict"
    assert "succeeded" in by_row[2]["error_message"]
    assert "restore them" in by_row[2]["error_message"]
    _assert_refunded_as(snapshot, {row["out_trade_no"]: row["refund_fee"] for row in rows})


def _transaction_id(prefix: str, i: int) -> str:
    return f"42{ord(prefix):08d}{i:018d}"


def _orders_with_transaction_ids(live: LiveSimulator, prefix: str) -> list[dict[str, Any]]:
    """Three orders with WeChat transaction ids (:func:`_transaction_id`) and their rows by out_trade_no."""
    rows = []
    for i in range(3):
        live.simulator.add_wechatpay_order(
            f"{prefix}{i}", 1000 + i, transaction_id=_transaction_id(prefix, i)
        )
        rows.append({"out_trade_no": f"{prefix}{i}", "total_fee": 1000 + i, "refund_fee": 300 + i})
    return rows


def test_an_order_renamed_by_its_transaction_id_is_not_refunded_again(tmp_path: Path) -> None:
    """The operator's next export names the orders by WeChat's transaction_id instead of
    out_trade_no: the same refunds, under another identity (so another derived number). The
    journal holds the first refunds' replies, which name both: the renamed rows are refused — in
    the dry run too — and the ledger keeps one payout per order."""
    with live_simulator(SimulatorConfig(completion_delay=0)) as live:
        rows = _orders_with_transaction_ids(live, "N")
        csv_file = write_csv(tmp_path / "renamed.csv", rows)
        first = _run(live, csv_file, tmp_path / "one.jsonl")
        assert first.returncode == 0, first.stderr
        renamed = [
            {"transaction_id": _transaction_id("N", i), **{k: v for k, v in r.items() if k != "out_trade_no"}}
            for i, r in enumerate(rows)
        ]
        write_csv(csv_file, renamed)
        for name, extra in (("dry.jsonl", ("--dry-run",)), ("two.jsonl", ())):
            again = _run(live, csv_file, tmp_path / name, *extra)
            assert again.returncode == 1, again.stderr
            results = read_results(tmp_path / name)
            assert [r["status"] for r in results] == ["invalid"] * 3, results
            assert all(r["error_code"] == "IdempotencyConflict" for r in results), results
        _assert_refunded_as(live.simulator.snapshot(), _expected(rows))


def test_the_same_file_under_a_new_batch_id_is_not_refunded_again(tmp_path: Path) -> None:
    """A script that passes ``--batch-id $(date +%F)`` runs yesterday's file again today: under the
    new batch id every row is another identity (another derived number). The journal holds the
    first batch's refunds by order and amounts, so the rows are refused — in the dry run too, and
    also when the file names the orders by transaction_id — until the operator says a second refund
    is meant (``--repeat-other-batches``); a third run of that second batch then replays it."""
    with live_simulator(SimulatorConfig(completion_delay=0)) as live:
        rows = _orders_with_transaction_ids(live, "B")
        csv_file = write_csv(tmp_path / "event.csv", rows)
        first = _run(live, csv_file, tmp_path / "one.jsonl", "--batch-id", "2026-11-26")
        assert first.returncode == 0, first.stderr
        renamed = [
            {"transaction_id": _transaction_id("B", i), **{k: v for k, v in r.items() if k != "out_trade_no"}}
            for i, r in enumerate(rows)
        ]
        for name, extra, written in (
            ("dry.jsonl", ("--dry-run",), rows),
            ("two.jsonl", (), rows),
            ("renamed.jsonl", (), renamed),
        ):
            write_csv(csv_file, written)
            again = _run(live, csv_file, tmp_path / name, "--batch-id", "2026-11-27", *extra)
            assert again.returncode == 1, again.stderr
            results = read_results(tmp_path / name)
            assert [r["status"] for r in results] == ["invalid"] * 3, results
            assert all(r["error_code"] == "IdempotencyConflict" for r in results), results
            assert all("'2026-11-26'" in r["error_message"] for r in results), results
            assert all("--repeat-other-batches" in r["error_message"] for r in results), results
        _assert_refunded_as(live.simulator.snapshot(), _expected(rows))
        # A partial refund of another amount under another batch id is not a repeat.
        write_csv(csv_file, [{**rows[0], "refund_fee": 100}])
        other = _run(live, csv_file, tmp_path / "other.jsonl", "--batch-id", "2026-11-27")
        assert other.returncode == 0, other.stderr
        # Meant: a second refund of the same amount of B0.
        write_csv(csv_file, [rows[0]])
        meant = _run(
            live, csv_file, tmp_path / "meant.jsonl", "--batch-id", "second", "--repeat-other-batches"
        )
        assert meant.returncode == 0, meant.stderr
        replay = _run(live, csv_file, tmp_path / "replay.jsonl", "--batch-id", "second")
        assert replay.returncode == 0, replay.stderr
        assert read_results(tmp_path / "replay.jsonl")[0]["replayed"] is True
        snapshot = live.simulator.snapshot()
    assert snapshot.order("wechatpay", "B0").refunded == 300 + 100 + 300
    assert snapshot.order("wechatpay", "B0").payouts == 3
    assert snapshot.order("wechatpay", "B1").payouts == 1
    assert snapshot.order("wechatpay", "B2").payouts == 1


def test_check_provider_refuses_a_renamed_row_after_the_journal_was_lost(tmp_path: Path) -> None:
    """The journal is lost *and* the next export names the orders by transaction_id (or the file
    runs under a new batch id): nothing local links the rows to the refunds made. With
    ``--check-provider`` one refund query per order finds them: rows whose order already has a
    refund of the same amount under another number are refused — in the dry run too — while a
    row of this content (same number) and a refund of another amount go out."""
    with live_simulator(SimulatorConfig(completion_delay=0)) as live:
        rows = _orders_with_transaction_ids(live, "C")
        csv_file = write_csv(tmp_path / "lost.csv", rows)
        first = _run(live, csv_file, tmp_path / "one.jsonl")
        assert first.returncode == 0, first.stderr
        assert "holds no refund yet" in first.stderr  # says how to check when the journal is new
        assert "--check-provider" in first.stderr
        assert "holds no refund yet" not in _run(live, csv_file, tmp_path / "replay.jsonl").stderr
        _delete_journal(csv_file)
        renamed = [
            {"transaction_id": _transaction_id("C", i), **{k: v for k, v in r.items() if k != "out_trade_no"}}
            for i, r in enumerate(rows)
        ]
        for name, written, extra in (
            ("dry.jsonl", renamed, ("--dry-run",)),
            ("renamed.jsonl", renamed, ()),
            ("new-batch.jsonl", rows, ("--batch-id", "again")),
        ):
            write_csv(csv_file, written)
            again = _run(live, csv_file, tmp_path / name, "--check-provider", *extra)
            assert again.returncode == 1, again.stderr
            results = read_results(tmp_path / name)
            assert [r["status"] for r in results] == ["invalid"] * 3, results
            assert all(r["error_code"] == "IdempotencyConflict" for r in results), results
            assert all("already lists a refund" in r["error_message"] for r in results), results
            # A journal whose every row was refused still knows no refund: the advice is repeated.
            batch_id = extra if "--batch-id" in extra else ()
            unchecked = _run(live, csv_file, tmp_path / "unchecked.jsonl", "--dry-run", *batch_id)
            assert "holds no refund yet" in unchecked.stderr
            _delete_journal(csv_file)
        _assert_refunded_as(live.simulator.snapshot(), _expected(rows))
        # The same content (the same derived number) and another amount of an order go out.
        write_csv(csv_file, [rows[0], {**rows[1], "refund_fee": 100}])
        same = _run(live, csv_file, tmp_path / "same.jsonl", "--check-provider")
        assert same.returncode == 0, same.stderr
        snapshot = live.simulator.snapshot()
    assert snapshot.order("wechatpay", "C0").payouts == 1
    assert snapshot.order("wechatpay", "C1").refunded == 301 + 100


def test_check_provider_is_refused_for_a_provider_that_cannot_list_refunds(tmp_path: Path) -> None:
    csv_file = write_csv(
        tmp_path / "e.csv", [{"out_trade_no": "E1", "transaction_amount": "1", "total_fee": "2"}]
    )
    done = run_paykit("refunds", "run", csv_file, "-p", "eftpay", "--check-provider")
    assert done.returncode == 2
    assert "--check-provider is for wechatpay only" in done.stderr
