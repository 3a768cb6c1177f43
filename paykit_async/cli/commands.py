"""The whole ``paykit`` command: the group from :mod:`.app` with every command registered."""

from __future__ import annotations

from . import demo_command, refunds, single
from .app import cli, fail
from .config import PROVIDERS, env_name

__all__ = ["cli", "main"]

# Imported for their side effect: each module registers its commands on ``cli``.
_COMMAND_MODULES = (demo_command, refunds, single)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="paykit")


def _attach_simulator() -> None:
    try:
        from ..simulator.cli import simulator
    except ImportError:

        @cli.group("simulator")
        def simulator_missing() -> None:
            """The local provider simulator (needs: pip install "paykit_async[simulator]")."""
            fail('the simulator needs uvicorn: pip install "paykit_async[simulator]"')

        return
    cli.add_command(simulator)


_attach_simulator()

#: Environment variable names, for the documentation and ``--help`` readers.
ENVIRONMENT = {p: env_name(p, "<KEY>") for p in PROVIDERS}
