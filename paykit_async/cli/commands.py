"""The whole ``paykit`` command: the group from :mod:`.app` with every command registered."""

from __future__ import annotations

import sys

import click

from . import demo_command, refunds, single, workers
from .app import cli, fail, one_line
from .config import PROVIDERS, env_name

__all__ = ["cli", "main"]

# Imported for their side effect: each module registers its commands on ``cli``.
_COMMAND_MODULES = (demo_command, refunds, single, workers)


_NO_ARGS_IS_HELP: type[click.UsageError] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(args: list[str] | None = None) -> None:
    """Console-script entry point: runs the command and exits with its status.

    Click's own errors (unknown command or option, a bad value, a missing file) and the
    simulator's become one ``paykit: error:`` line with exit status 2 instead of click's
    three-line usage report; Ctrl-C outside a command's own handling exits 130.
    """
    try:
        status = cli.main(args, prog_name="paykit", standalone_mode=False)
    except _NO_ARGS_IS_HELP as exc:  # plain `paykit`: the help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(one_line(exc.format_message()).rstrip(".") + hint, status=exc.exit_code)
    except click.ClickException as exc:
        fail(exc.format_message(), status=exc.exit_code)
    except click.Abort:
        fail("interrupted", status=130)
    sys.exit(status if isinstance(status, int) else 0)


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
