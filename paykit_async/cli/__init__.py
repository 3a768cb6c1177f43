"""The ``paykit`` command (extra ``cli``): the demo, crash-safe CSV refund batches, single calls.

This package is the command line only; the library never imports it. :func:`main` is the
console-script entry point and also runs as ``python -m paykit_async`` and
``python -m paykit_async.cli``. Without the ``cli`` extra it says how to install it in one line.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

_MISSING_EXTRA = (
    'paykit: error: the paykit command needs its extra: pip install "paykit_async[cli]" (missing: {name})'
)


def main() -> None:
    """Console-script entry point: run the command, or explain in one line how to install it."""
    try:
        from .commands import main as run
    except ModuleNotFoundError as error:
        if error.name in _CLI_DEPENDENCIES:
            sys.stderr.write(_MISSING_EXTRA.format(name=error.name) + "\n")
            sys.exit(2)
        raise
    run()


_CLI_DEPENDENCIES = frozenset({"click", "rich", "tomli"})
