"""The examples in ``examples/`` run as their comments say, and leave the repository as it was."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def listing(directory: Path) -> set[str]:
    paths = directory.rglob("*")
    return {str(path.relative_to(directory)) for path in paths if "__pycache__" not in path.parts}


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_csv_batch_run_sh_replays_the_second_run_and_leaves_no_files(tmp_path: Path) -> None:
    here = EXAMPLES / "csv_batch"
    before_here, before_root = listing(here), set(os.listdir(ROOT))
    # `paykit` from this interpreter's environment, as after `pip install ".[cli,simulator]"`.
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYKIT_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", TMPDIR=str(tmp_path), COLUMNS="120")
    done = subprocess.run(
        ["sh", str(here / "run.sh")], cwd=here, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_row = {line["row"]: line for line in results}
    assert sorted(by_row) == [1, 2, 3, 4]
    for row in (1, 2, 3):
        assert by_row[row]["status"] == "succeeded"
        assert by_row[row]["replayed"] is True  # the second run sent nothing again
    assert by_row[4]["status"] == "invalid"
    assert "twelve" in by_row[4]["error_message"]
    assert listing(here) == before_here
    assert set(os.listdir(ROOT)) == before_root
    assert os.listdir(tmp_path) == []  # its temporary directory is gone too


def test_refund_many_simulator_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "refund_many_simulator.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "{'succeeded': 500}" in done.stdout
    assert "duplicate payouts in the ledger: 0" in done.stdout
