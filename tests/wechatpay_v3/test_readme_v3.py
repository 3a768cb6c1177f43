"""The README's WeChat Pay v3 examples run as written (against the simulator) and print what their
comments say."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    if "WeChatPayV3Client(" in block and "notification_app" not in block  # the v3 section's own
]


def test_there_are_v3_examples() -> None:
    assert len(BLOCKS) == 2


@pytest.mark.parametrize(
    ("index", "expected"),
    [(0, ["SUCCESS 100 300", "True", "204"]), (1, ["REFUND.SUCCESS R1 SUCCESS"])],
)
def test_the_v3_example_runs_as_written(tmp_path: Path, index: int, expected: list[str]) -> None:
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected
