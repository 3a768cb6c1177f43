"""Keeps the benchmark scripts from rotting: the cost-per-operation part runs and gives rows.

Only that the real code paths run (the canned replies verify, the clients return results) and
that a table comes out is asserted — never a timing.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import report
from benchmarks.cost import run_cost


def test_cost_per_operation_produces_rows() -> None:
    rows = run_cost(number=5, repeat=1)
    operations = [row.operation for row in rows]
    assert any(op.startswith("WeChat refund: client.refund()") for op in operations)
    assert any(op.startswith("PAYJS refund") for op in operations)
    assert any(op.startswith("eftPay refund") for op in operations)
    assert any(op.startswith("WeChat Pay v3 refund: client.refund()") for op in operations)
    # Every paykit row ran its code path (a client that failed to import or rejected its canned
    # reply would leave None or raise).
    assert all(row.paykit_us is not None for row in rows)
    # wechatpy is a test dependency: its rows ran too (and accepted the canned reply's signature).
    assert all(row.peer_us is not None for row in rows if row.peer.startswith("wechatpy"))
    table = report.cost_table(rows)
    assert table.count("\n") == len(rows) + 1
    assert "Library CPU per WeChat refund" in report.goals({"cost": rows})


def test_readme_results_block_is_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{report.START}\nold\n{report.END}\n\nfooter\n", encoding="utf-8")
    report.write_into(readme, f"{report.START}\nnew\n{report.END}")
    text = readme.read_text(encoding="utf-8")
    assert "new" in text
    assert "old" not in text
    assert text.startswith("intro")
    assert text.rstrip().endswith("footer")
