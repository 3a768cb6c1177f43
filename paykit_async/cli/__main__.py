"""``python -m paykit_async.cli``: the ``paykit`` command."""

from . import main

main()
