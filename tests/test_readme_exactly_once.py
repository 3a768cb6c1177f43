"""The README's exactly-once example runs as written and shows what it says: one number, one payout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_lost_store_example_runs_as_written(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    (example,) = [block for block in blocks if "derived_refund_no(" in block]
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "1"]


def test_the_model_is_explained_in_one_place() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count("### The exactly-once model, in one place") == 1
    section = text.split("### The exactly-once model, in one place", 1)[1].split("\n## ", 1)[0]
    for part in (
        "What the provider guarantees",
        "What the refund-number derivation guarantees",
        "What the store adds",
        "What an operator may safely do",
    ):
        assert part in section, part
