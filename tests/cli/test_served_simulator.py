"""Black box: ``paykit refunds run`` against a ``paykit simulator serve`` process.

The ledger is read the way a merchant would read WeChat's: a refund query per order, which lists
every refund of the order with its number and amount.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from paykit_async import WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY

from .helpers import read_results, run_paykit, served_simulator, write_csv


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``paykit simulator serve --auto-orders`` on a free port; its root URL."""
    with served_simulator(tmp_path, "[simulator]\ncompletion_delay = 0\n") as root:
        yield root


def _refunds_of(root: str, orders: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Each order's refunds (number, amount), as WeChat's refund query lists them."""

    async def query() -> dict[str, list[tuple[str, int]]]:
        found: dict[str, list[tuple[str, int]]] = {}
        async with WeChatPayClient(
            DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, DEMO_WECHATPAY.api_key, base_url=f"{root}/wechatpay"
        ) as client:
            for order in orders:
                result = await client.query_refund(out_trade_no=order)
                found[order] = [(r.out_refund_no, r.refund_fee or 0) for r in result.refunds]
        return found

    return anyio.run(query)


def test_edits_and_a_lost_journal_against_a_served_simulator(tmp_path: Path, served: str) -> None:
    config = tmp_path / "paykit.toml"
    config.write_text(
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{served}/wechatpay"\n',
        encoding="utf-8",
    )
    rows = [{"out_trade_no": f"S{i}", "total_fee": 1000 + i, "refund_fee": 300 + i} for i in range(6)]
    csv_file = tmp_path / "served.csv"

    def run(name: str) -> None:
        result = run_paykit(
            "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", tmp_path / name
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    write_csv(csv_file, rows[1:4])
    run("one.jsonl")
    final = [rows[0], rows[3], rows[1], rows[4], rows[5]]  # S0 inserted, S2 deleted, S4-S5 added
    random.Random(5).shuffle(final)
    write_csv(csv_file, final)
    run("two.jsonl")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{csv_file}.journal.db{suffix}").unlink(missing_ok=True)
    run("three.jsonl")
    numbers = {r["row"]: r["refund_no"] for r in read_results(tmp_path / "three.jsonl")}
    refunds = _refunds_of(served, [row["out_trade_no"] for row in rows])
    expected = {row["out_trade_no"]: row["refund_fee"] for row in [*final, rows[2]]}
    for order, listed in refunds.items():
        amounts = [amount for _, amount in listed]
        assert amounts == ([expected[order]] if order in expected else []), (order, listed)
    for number, row in enumerate(final, start=1):
        assert refunds[row["out_trade_no"]] == [(numbers[number], row["refund_fee"])]


def _config(tmp_path: Path, root: str) -> Path:
    config = tmp_path / "paykit.toml"
    config.write_text(
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{root}/wechatpay"\n',
        encoding="utf-8",
    )
    return config


def _by_order(path: Path, rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The results lines of ``rows`` (as written to the CSV), by order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for line in read_results(path):
        found.setdefault(rows[line["row"] - 1]["out_trade_no"], []).append(line)
    return found


def test_an_amount_edited_after_the_run_is_refused_until_the_row_is_restored(
    tmp_path: Path, served: str
) -> None:
    config = _config(tmp_path, served)
    csv_file = tmp_path / "refunds.csv"

    def run(name: str, rows: list[dict[str, Any]], *options: str) -> dict[str, list[dict[str, Any]]]:
        write_csv(csv_file, rows)
        out = tmp_path / name
        result = run_paykit(
            "refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out, *options
        )  # fmt: skip
        assert result.returncode in (0, 1), result.stderr
        return _by_order(out, rows)

    original = [
        {"out_trade_no": "A005", "total_fee": 1000, "refund_fee": 200},
        {"out_trade_no": "A006", "total_fee": 1000, "refund_fee": 400},
        {"out_trade_no": "A007", "total_fee": 1000, "refund_fee": 500},
    ]
    first = run("first.jsonl", original)
    assert all(lines[0]["status"] == "succeeded" for lines in first.values())
    numbers = {order: lines[0]["refund_no"] for order, lines in first.items()}
    # The typo fixed (A006: 400 -> 300), A005 deleted, a second partial refund of A007 added.
    edited = [
        {"out_trade_no": "A007", "total_fee": 1000, "refund_fee": 500},
        {"out_trade_no": "A006", "total_fee": 1000, "refund_fee": 300},
        {"out_trade_no": "A007", "total_fee": 1000, "refund_fee": 100},
    ]
    for name, options, others in (("dry.jsonl", ("--dry-run",), "ready"), ("second.jsonl", (), "succeeded")):
        results = run(name, edited, *options)
        (refused,) = results["A006"]
        assert refused["status"] == "invalid", refused
        assert refused["error_code"] == "IdempotencyConflict"
        message = refused["error_message"]
        assert message.startswith("row 2: order out_trade_no=A006 was already refunded")
        assert f"refund number {numbers['A006']} (total_fee=1000, refund_fee=400: succeeded)" in message
        assert "Restore the original row" in message
        assert "idempotency_key column" in message
        assert refused["attempts"] == 0
        assert [line["status"] for line in results["A007"]] == [others, others]
    refunds = _refunds_of(served, ["A005", "A006", "A007"])
    assert refunds["A005"] == [(numbers["A005"], 200)]
    assert refunds["A006"] == [(numbers["A006"], 400)]  # only the original refund: nothing sent for 300
    assert sorted(amount for _, amount in refunds["A007"]) == [100, 500]  # two partial refunds of one file
    # The original row restored: replayed from the journal, nothing new at the provider.
    restored = run("third.jsonl", [original[1]])
    (line,) = restored["A006"]
    assert (line["status"], line["refund_no"], line["replayed"], line["attempts"]) == (
        "succeeded",
        numbers["A006"],
        True,
        0,
    )
    assert _refunds_of(served, ["A006"])["A006"] == [(numbers["A006"], 400)]


def test_an_edited_amount_with_its_own_idempotency_key_is_a_second_partial_refund(
    tmp_path: Path, served: str
) -> None:
    config = _config(tmp_path, served)
    csv_file = tmp_path / "refunds.csv"

    def run(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        write_csv(csv_file, rows)
        out = tmp_path / name
        result = run_paykit("refunds", "run", csv_file, "-p", "wechatpay", "--config", config, "--out", out)
        assert result.returncode in (0, 1), result.stderr
        (line,) = read_results(out)
        return line

    first = run("first.jsonl", [{"out_trade_no": "B006", "total_fee": 1000, "refund_fee": 400}])
    assert first["status"] == "succeeded"
    # As if the run had died with the refund at the provider: its outcome unknown in the journal.
    with contextlib.closing(sqlite3.connect(f"{csv_file}.journal.db")) as db, db:
        db.execute("UPDATE paykit_idempotency SET state = 'in_flight', result = NULL")
    refused = run("second.jsonl", [{"out_trade_no": "B006", "total_fee": 1000, "refund_fee": 300}])
    assert refused["error_code"] == "IdempotencyConflict"
    assert (
        f"{first['refund_no']} (total_fee=1000, refund_fee=400: outcome unknown" in refused["error_message"]
    )
    assert _refunds_of(served, ["B006"])["B006"] == [(first["refund_no"], 400)]
    keyed = {"out_trade_no": "B006", "total_fee": 1000, "refund_fee": 300, "idempotency_key": "B006-second"}
    second = run("third.jsonl", [keyed])
    assert second["status"] == "succeeded", second
    assert second["refund_no"] != first["refund_no"]
    assert _refunds_of(served, ["B006"])["B006"] == [(first["refund_no"], 400), (second["refund_no"], 300)]
