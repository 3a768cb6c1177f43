"""Black box: ``paykit refunds run`` against a ``paykit simulator serve`` process.

The ledger is read the way a merchant would read WeChat's: a refund query per order, which lists
every refund of the order with its number and amount.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

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
