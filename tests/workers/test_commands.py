"""``paykit refunds enqueue``, ``refunds status`` and ``worker``: keys, idempotent enqueueing, errors.

A row's job id and refund number come from the same identity as ``paykit refunds run`` gives it
(content + batch id), so both paths refund a row under one number; bad input is one line, exit 2,
and no message shows a Redis password.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from paykit_async.simulator import DEMO_WECHATPAY, SimulatorConfig

from ..cli.helpers import (
    LiveSimulator,
    live_simulator,
    read_results,
    run_paykit,
    seed_wechat_orders,
    served_simulator,
    write_csv,
)
from ..cli.test_errors import assert_one_error_line
from ..cli.test_served_simulator import _refunds_of

ROWS = [{"out_trade_no": f"Q{i}", "total_fee": 1000 + i, "refund_fee": 100 + i} for i in range(5)]


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "paykit.toml"
    path.write_text(
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "http://127.0.0.1:9/wechatpay"\n{extra}',
        encoding="utf-8",
    )
    return path


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_enqueue_keys_rows_as_refunds_run_does_and_adds_nothing_the_second_time(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    rows = [*ROWS, ROWS[1], {"out_trade_no": "Q9", "total_fee": "x", "refund_fee": 1}]
    csv_file = write_csv(tmp_path / "batch.csv", rows)
    config = _config(tmp_path)
    batch = f"{redis_prefix}same"

    def enqueue(out: str) -> list[dict[str, object]]:
        done = run_paykit(
            "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", config,
            "--redis", redis_url, "--batch-id", batch, "--out", tmp_path / out,
        )  # fmt: skip
        assert done.returncode == 1, done.stderr  # rows 2, 6 (duplicates) and 7 (malformed)
        return read_results(tmp_path / out)

    first, second = enqueue("one.jsonl"), enqueue("two.jsonl")
    enqueued, invalid = "enqueued", "invalid"
    assert [r["status"] for r in first] == [enqueued, invalid, enqueued, enqueued, enqueued, invalid, invalid]
    assert [r["status"] for r in second] == [
        "already_enqueued" if r["status"] == "enqueued" else r["status"] for r in first
    ]
    assert first[1]["error_code"] == first[5]["error_code"] == "DuplicateRow"
    assert first[6]["error_message"] == "row 7: total_fee must be a whole number of fen, got 'x'"
    # `paykit refunds run --dry-run` assigns the very same refund numbers (and refuses the same rows).
    dry = run_paykit(
        "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--batch-id", batch,
        "--dry-run", "--out", tmp_path / "dry.jsonl",
    )  # fmt: skip
    assert dry.returncode == 1, dry.stderr
    planned = {r["row"]: r.get("refund_no") for r in read_results(tmp_path / "dry.jsonl")}
    for line in first:
        if line["status"] == "enqueued":
            assert line["refund_no"] == planned[line["row"]]
        else:
            assert line["error_message"] == next(
                r["error_message"] for r in read_results(tmp_path / "dry.jsonl") if r["row"] == line["row"]
            )
    status = run_paykit("refunds", "status", "--redis", redis_url, "--batch-id", batch)
    assert status.returncode == 1  # four rows, all still pending (no worker runs here)
    assert "pending" in status.stdout
    assert "4" in status.stdout


def test_errors_are_one_line_and_never_show_the_redis_password(tmp_path: Path, redis_url: str) -> None:
    csv_file = write_csv(tmp_path / "batch.csv", ROWS)
    config = _config(tmp_path)
    unreachable = f"redis://:hunter2secret@127.0.0.1:{_closed_port()}/0"
    done = run_paykit(
        "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", config, "--redis", unreachable
    )
    line = assert_one_error_line(done, "cannot reach Redis at redis://127.0.0.1:")
    assert "hunter2secret" not in done.stderr + done.stdout
    assert "hunter2secret" not in line
    done = run_paykit(
        "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", config, "--redis", "http://x"
    )
    assert_one_error_line(done, "--redis must be a redis://")
    done = run_paykit(
        "refunds",
        "enqueue",
        csv_file,
        "-p",
        "wechatpay",
        "--config",
        tmp_path / "none.toml",
        "--redis",
        redis_url,
    )
    assert_one_error_line(done, "cannot read config file")
    done = run_paykit("refunds", "status", "--redis", redis_url, "--batch-id", "never-enqueued")
    assert_one_error_line(done, "no batch 'never-enqueued'")
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    done = run_paykit("worker", "--config", empty, "--redis", redis_url)
    assert_one_error_line(done, "no provider section")
    done = run_paykit("worker", "--config", _config(tmp_path, "rate_limit = 0\n"), "--redis", redis_url)
    assert_one_error_line(done, "rate_limit must be a positive whole number")
    done = run_paykit("worker", "--config", config, "--redis", redis_url, "--job-timeout", "3")
    assert_one_error_line(done, "job_timeout")


def test_rows_refused_for_a_wrong_key_are_sent_again_once_it_is_fixed_and_each_order_paid_once(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Operator: enqueue, the workers have a wrong api_key (WeChat refuses: 签名错误, nothing
    done), fix it, enqueue the same file again. The refused rows must be queued again under their
    refund numbers — not stay failed until the operator reaches for a new --batch-id, which would
    give every row a new number and refund the rows that had succeeded a second time."""
    with live_simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0)) as live:
        rows = seed_wechat_orders(live.simulator, 4, prefix="FIX")
        csv_file = write_csv(tmp_path / "batch.csv", rows[:3])
        good = live.config_file(tmp_path)
        (tmp_path / "bad").mkdir()
        bad = live.config_file(tmp_path / "bad", api_key="wrongwrongwrongwrongwrongwrong00")
        batch, queue = f"{redis_prefix}fix", f"{redis_prefix}queue"

        def enqueue(out: str, *options: str) -> list[str]:
            done = run_paykit(
                "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", good, "--redis", redis_url,
                "--batch-id", batch, "--queue", queue, "--out", tmp_path / out, *options,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            return [line["status"] for line in read_results(tmp_path / out)]

        def work(config: Path) -> None:
            done = run_paykit("worker", "--config", config, "--redis", redis_url, "--queue", queue, "--burst")
            assert done.returncode == 0, done.stderr

        def status(out: str) -> tuple[int, list[dict[str, object]]]:
            done = run_paykit(
                "refunds", "status", "--redis", redis_url, "--batch-id", batch, "--out", tmp_path / out
            )  # fmt: skip
            return done.returncode, read_results(tmp_path / out)

        assert enqueue("q1.jsonl") == ["enqueued"] * 3
        numbers = [line["refund_no"] for line in read_results(tmp_path / "q1.jsonl")]
        work(bad)
        code, results = status("s1.jsonl")
        assert code == 1
        assert [(r["status"], r["error_code"]) for r in results] == [("failed", "FAIL")] * 3
        assert not live.simulator.snapshot().refunds
        # --no-retry-failed leaves the refusals as they ended.
        assert enqueue("q2.jsonl", "--no-retry-failed") == ["already_enqueued"] * 3
        # The key is fixed, a row added: every row that has not succeeded is queued again.
        write_csv(csv_file, rows)
        assert enqueue("q3.jsonl") == ["enqueued"] * 4
        work(good)
        code, results = status("s2.jsonl")
        assert code == 0, results
        assert [r["status"] for r in results] == ["succeeded"] * 4
        assert [r["refund_no"] for r in results][:3] == numbers
        # A succeeded row is never queued again.
        assert enqueue("q4.jsonl") == ["already_enqueued"] * 4
        work(good)
        snapshot = live.simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    for row, result in zip(rows, results, strict=True):
        order = snapshot.order("wechatpay", str(row["out_trade_no"]))
        assert (order.payouts, order.refunded) == (1, row["refund_fee"])
        assert snapshot.refund("wechatpay", str(result["refund_no"])).order_no == row["out_trade_no"]


def _queue_commands(
    tmp_path: Path, csv_file: Path, config: Path, redis_url: str, batch: str, queue: str
) -> tuple[Callable[..., list[dict[str, object]]], Callable[[], None]]:
    """``enqueue(out, rows)`` (write the CSV, ``paykit refunds enqueue`` it, read its ``--out``) and
    ``work()`` (one ``paykit worker --burst``) for one batch on one queue."""

    def enqueue(out: str, rows: list[dict[str, object]], *extra: str) -> list[dict[str, object]]:
        write_csv(csv_file, rows)
        done = run_paykit(
            "refunds", "enqueue", csv_file, "-p", "wechatpay", "--config", config, "--redis", redis_url,
            "--batch-id", batch, "--queue", queue, "--out", tmp_path / out, *extra,
        )  # fmt: skip
        assert done.returncode in (0, 1), done.stderr
        return read_results(tmp_path / out)

    def work() -> None:
        done = run_paykit("worker", "--config", config, "--redis", redis_url, "--queue", queue, "--burst")
        assert done.returncode == 0, done.stderr

    return enqueue, work


def test_an_amount_edited_after_its_job_ran_is_not_queued_again(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Operator: enqueue, the workers refund, a typo is fixed in the CSV (A006: 400 -> 300) and
    the file enqueued again. The edited row must not be queued (the order would be paid 400 + 300);
    restoring the row adds nothing."""
    with live_simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0)) as live:
        original = [
            {"out_trade_no": "E005", "total_fee": 1000, "refund_fee": 200},
            {"out_trade_no": "E006", "total_fee": 1000, "refund_fee": 400},
        ]
        csv_file = tmp_path / "batch.csv"
        config = live.config_file(tmp_path)
        batch, queue = f"{redis_prefix}edit", f"{redis_prefix}queue"

        enqueue, work = _queue_commands(tmp_path, csv_file, config, redis_url, batch, queue)

        first = enqueue("q1.jsonl", original)
        assert [line["status"] for line in first] == ["enqueued"] * 2
        work()
        edited = [original[0], {**original[1], "refund_fee": 300}]
        second = enqueue("q2.jsonl", edited)
        assert second[0]["status"] == "already_enqueued"
        assert (second[1]["status"], second[1]["error_code"]) == ("invalid", "IdempotencyConflict")
        message = str(second[1]["error_message"])
        assert message.startswith("row 2: order out_trade_no=E006 was already refunded")
        assert f"refund number {first[1]['refund_no']} (total_fee=1000, refund_fee=400: succeeded)" in message
        work()
        assert [line["status"] for line in enqueue("q3.jsonl", original)] == ["already_enqueued"] * 2
        work()
        snapshot = live.simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    for row in original:
        order = snapshot.order("wechatpay", str(row["out_trade_no"]))
        assert (order.payouts, order.refunded) == (1, row["refund_fee"])


def _refund_then_rename(
    live: LiveSimulator, tmp_path: Path, redis_url: str, redis_prefix: str, batch: str, order: str, fee: int
) -> tuple[Callable[..., list[dict[str, object]]], Callable[[], None], list[dict[str, object]]]:
    """Order ``order`` (1000 fen, with a transaction_id) refunded ``fee`` through the queue under
    ``batch``, by out_trade_no; returns the queue commands and the same row naming the order by its
    transaction_id instead."""
    transaction_id = f"42{int(order[1:]):026d}"
    live.simulator.add_wechatpay_order(order, 1000, transaction_id=transaction_id)
    config = live.config_file(tmp_path)
    enqueue, work = _queue_commands(
        tmp_path, tmp_path / "batch.csv", config, redis_url, batch, f"{redis_prefix}queue"
    )
    original: list[dict[str, object]] = [{"out_trade_no": order, "total_fee": 1000, "refund_fee": fee}]
    assert [line["status"] for line in enqueue("q1.jsonl", original)] == ["enqueued"]
    work()
    return enqueue, work, [{"transaction_id": transaction_id, "total_fee": 1000, "refund_fee": fee}]


def test_an_order_renamed_by_its_transaction_id_is_not_queued_again(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Operator: enqueue by out_trade_no, the workers refund, then the next export names the same
    orders by WeChat's transaction_id and is enqueued too. Another identity, so another derived
    refund number: the renamed rows must be refused (the reply of each job named both ids), not
    queued to refund the orders a second time."""
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        batch = f"{redis_prefix}rename"
        enqueue, work, renamed = _refund_then_rename(
            live, tmp_path, redis_url, redis_prefix, batch, "T005", 200
        )
        second = enqueue("q2.jsonl", renamed)
        assert (second[0]["status"], second[0]["error_code"]) == ("invalid", "IdempotencyConflict"), second
        work()
        snapshot = live.simulator.snapshot()
    assert snapshot.duplicate_payouts == 0
    order = snapshot.order("wechatpay", "T005")
    assert (order.payouts, order.refunded) == (1, 200)


#: Fields only ``paykit refunds status --out`` writes: the job's progress and arq job id.
QUEUE_ONLY_FIELDS = ("progress", "job_id")


def test_a_csv_through_the_queue_gives_the_results_of_refunds_run(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Operator: the same CSV (successes, a duplicate row, a malformed row) through
    ``paykit refunds run`` and through ``enqueue`` + ``worker --burst`` + ``status --out``, against
    one served simulator. Each row's result must be the same record either way (the queue path
    reports the rows it did not queue in ``enqueue --out``), and each order is refunded once."""
    rows = [
        {"out_trade_no": "W1", "total_fee": 1000, "refund_fee": 100},
        {"out_trade_no": "W2", "total_fee": 2000, "refund_fee": 200},
        {"out_trade_no": "W1", "total_fee": 1000, "refund_fee": 100},  # row 3: rows 1 and 3 are one refund
        {"out_trade_no": "W3", "total_fee": "x", "refund_fee": 1},  # row 4: malformed
        {"out_trade_no": "W4", "total_fee": 4000, "refund_fee": 400},
        {"out_trade_no": "W5", "total_fee": 5000, "refund_fee": 500},
        {"out_trade_no": "W6", "total_fee": 60000, "refund_fee": 20000},  # row 7: beyond the balance
    ]
    sent, refunded = (2, 5, 6, 7), (2, 5, 6)
    csv_file = write_csv(tmp_path / "batch.csv", rows)
    batch, queue = f"{redis_prefix}both", f"{redis_prefix}queue"
    simulator = (
        f'[simulator]\ncompletion_delay = 0\n[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\n'
        f'mch_id = "{DEMO_WECHATPAY.mch_id}"\napi_key = "{DEMO_WECHATPAY.api_key}"\nbalance = 10000\n'
    )
    with served_simulator(tmp_path, simulator) as root:
        config = _config(tmp_path)
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace("http://127.0.0.1:9", root), encoding="utf-8")
        common = ("-p", "wechatpay", "--config", config, "--batch-id", batch)
        done = run_paykit("refunds", "run", csv_file, *common, "--out", tmp_path / "run.jsonl")
        assert done.returncode == 1, done.stderr  # rows 1 and 3 (duplicates), 4 and 7
        queued = run_paykit(
            "refunds", "enqueue", csv_file, *common, "--redis", redis_url, "--queue", queue,
            "--out", tmp_path / "queued.jsonl",
        )  # fmt: skip
        assert queued.returncode == 1, queued.stderr
        worked = run_paykit("worker", "--config", config, "--redis", redis_url, "--queue", queue, "--burst")
        assert worked.returncode == 0, worked.stderr
        status = run_paykit(
            "refunds", "status", "--redis", redis_url, "--batch-id", batch, "--out", tmp_path / "status.jsonl"
        )
        assert status.returncode == 1, status.stdout + status.stderr  # row 7
        ledger = _refunds_of(root, [str(rows[number - 1]["out_trade_no"]) for number in refunded])
    ran = {line["row"]: line for line in read_results(tmp_path / "run.jsonl")}
    assert sorted(ran) == list(range(1, len(rows) + 1))
    assert all(ran[row]["status"] == "succeeded" for row in refunded)
    assert (ran[7]["status"], ran[7]["error_code"], ran[7]["attempts"]) == ("failed", "NOTENOUGH", 1)
    assert str(ran[7]["error_message"]).startswith("row 7: ")
    refused = [(ran[row]["status"], ran[row]["error_code"]) for row in (1, 3, 4)]
    assert refused == [("invalid", "DuplicateRow")] * 2 + [("invalid", "ValidationError")]
    worked_out = read_results(tmp_path / "status.jsonl")
    assert [line["progress"] for line in worked_out] == ["done"] * 3 + ["failed"]
    records = {
        line["row"]: {k: v for k, v in line.items() if k not in QUEUE_ONLY_FIELDS} for line in worked_out
    }
    assert records == {row: ran[row] for row in sent}
    not_queued = [line for line in read_results(tmp_path / "queued.jsonl") if line["status"] == "invalid"]
    assert [line["row"] for line in not_queued] == [1, 3, 4]
    for line in not_queued:  # the fields of a row error that enqueue writes, as refunds run writes them
        assert line == {key: ran[line["row"]][key] for key in line}
    # Each order refunded once, under the refund number both paths gave its row.
    assert ledger == {
        row["out_trade_no"]: [(ran[number]["refund_no"], row["refund_fee"])]
        for number, row in enumerate(rows, start=1)
        if number in refunded
    }


@pytest.mark.parametrize(
    "command",
    [
        ("refunds", "enqueue", "{csv}", "-p", "wechatpay", "--config", "{config}", "--redis", "{redis}"),
        ("refunds", "status", "--redis", "{redis}"),
        ("worker", "--config", "{config}", "--redis", "{redis}", "--burst"),
    ],
    ids=["enqueue", "status", "worker"],
)
def test_without_the_workers_extra_each_command_names_it_in_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # A site directory whose `arq` cannot be imported stands in for an install without the extra;
    # paykit_async.workers imports arq only inside its functions, so the command must look first.
    (tmp_path / "arq.py").write_text("raise ModuleNotFoundError('No module named arq', name='arq')\n")
    values = {
        "csv": str(write_csv(tmp_path / "batch.csv", ROWS)),
        "config": str(_config(tmp_path)),
        "redis": f"redis://127.0.0.1:{_closed_port()}/0",
    }
    done = run_paykit(*(part.format(**values) for part in command), env={"PYTHONPATH": str(tmp_path)})
    assert_one_error_line(done, 'pip install "paykit_async[workers]"', "(missing: arq)")


def test_the_same_file_queued_under_a_new_batch_id_is_not_queued_again(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """Operator: a script queues the file under ``--batch-id <today>``; run again the next day it
    queues the same file under a new batch id — another identity, another derived number. The
    other batch's listing says the order was refunded with these amounts: refused, unless a second
    refund is meant (``--repeat-other-batches``)."""
    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        live.simulator.add_wechatpay_order("T006", 1000)
        rows = [{"out_trade_no": "T006", "total_fee": 1000, "refund_fee": 300}]
        csv_file = tmp_path / "batch.csv"
        config = live.config_file(tmp_path)
        queue = f"{redis_prefix}queue"
        commands = {
            day: _queue_commands(tmp_path, csv_file, config, redis_url, f"{redis_prefix}{day}", queue)
            for day in ("2026-11-26", "2026-11-27")
        }
        enqueue, work = commands["2026-11-26"]
        assert [line["status"] for line in enqueue("q1.jsonl", rows)] == ["enqueued"]
        work()
        enqueue, work = commands["2026-11-27"]
        second = enqueue("q2.jsonl", rows)
        assert (second[0]["status"], second[0]["error_code"]) == ("invalid", "IdempotencyConflict"), second
        assert f"'{redis_prefix}2026-11-26'" in str(second[0]["error_message"])
        work()
        assert live.simulator.snapshot().order("wechatpay", "T006").payouts == 1
        # Meant: the flag queues it, and queueing the same batch again then adds nothing.
        meant = enqueue("q3.jsonl", rows, "--repeat-other-batches")
        assert [line["status"] for line in meant] == ["enqueued"], meant
        work()
        assert [line["status"] for line in enqueue("q4.jsonl", rows)] == ["already_enqueued"]
        snapshot = live.simulator.snapshot()
    order = snapshot.order("wechatpay", "T006")
    assert (order.payouts, order.refunded) == (2, 600)


def test_check_provider_refuses_to_queue_a_repeat_the_listings_no_longer_show(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """The first batch's listing is gone (expired after KEEP_RESULTS, or another Redis) and the
    file now names the order by transaction_id: nothing in Redis links the row to the refund made.
    ``--check-provider`` asks WeChat: the row is refused, not queued."""
    import redis

    with live_simulator(SimulatorConfig(completion_delay=0.0)) as live:
        batch = f"{redis_prefix}lost"
        enqueue, work, renamed = _refund_then_rename(
            live, tmp_path, redis_url, redis_prefix, batch, "T007", 250
        )
        with redis.Redis.from_url(redis_url) as connection:
            connection.delete(f"paykit:batch:{batch}")
        again = enqueue("q2.jsonl", renamed, "--check-provider")
        assert (again[0]["status"], again[0]["error_code"]) == ("invalid", "IdempotencyConflict"), again
        assert "already lists a refund" in str(again[0]["error_message"])
        work()
        snapshot = live.simulator.snapshot()
    order = snapshot.order("wechatpay", "T007")
    assert (order.payouts, order.refunded) == (1, 250)
