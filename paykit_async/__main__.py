"""``python -m paykit_async``: the ``paykit`` command."""

from .cli import main

main()
