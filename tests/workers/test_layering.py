"""Layering: the library and the simulator never import the workers integration or its extras."""

from __future__ import annotations

import subprocess
import sys


def test_nothing_below_the_integrations_imports_workers_arq_or_limits() -> None:
    code = (
        "import sys, paykit_async, paykit_async.simulator, paykit_async.pipeline; "
        "bad = sorted(m for m in sys.modules if m.split('.')[:2] == ['paykit_async', 'workers'] "
        "or m.split('.')[0] in ('arq', 'limits')); "
        "print(','.join(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_client_with_a_rate_limit_imports_limits_only_when_it_sends() -> None:
    code = (
        "import sys; from paykit_async import PayJSClient; "
        "c = PayJSClient('1', 'k', rate_limit=5); "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('limits', 'arq'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
