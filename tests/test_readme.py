"""README code stays true: every Python block parses, and the simulator example runs as written."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_has_an_example_per_provider_and_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert 'pip install ".[cli]" && paykit demo' in text
    assert 'pip install -e ".[test]" && python -m pytest' in text
    for name in ("WeChatPayClient(", "PayJSClient(", "EftPayClient("):
        assert any(name in block for block in BLOCKS), name


def test_every_python_block_parses() -> None:
    assert len(BLOCKS) >= 8
    for block in BLOCKS:
        ast.parse(block)


def test_the_simulator_example_runs_as_written(tmp_path: Path) -> None:
    (example,) = [block for block in BLOCKS if "Simulator(SimulatorConfig(" in block]
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SUCCESS", "0"]
