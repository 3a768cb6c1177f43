"""The ``paykit`` click group and what its commands share: failing in one line, progress, JSON.

    paykit demo                                    thousands of refunds against the in-process simulator
    paykit refunds run FILE.csv --provider P --config paykit.toml [--journal J.db] [--out R.jsonl]
    paykit refund|close|query --provider P --config paykit.toml FIELD=VALUE ...
    paykit simulator serve                         the simulator on a local port

Exit status: 0 success; 1 some refunds did not succeed (or a single call failed); 2 bad usage,
configuration or input file. Every error is one line on stderr (``paykit: error: ...``); the
global ``--debug`` flag adds the traceback of unexpected ones. Secrets are never printed.
"""

from __future__ import annotations

import decimal
import enum
import logging
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import attrs
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from .config import PROVIDERS

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found,unused-ignore]

__all__ = [
    "CONFIG_HELP",
    "PROVIDER_CHOICE",
    "PaykitGroup",
    "as_json",
    "cli",
    "fail",
    "json_default",
    "one_line",
    "progress_bar",
]

PROVIDER_CHOICE = click.Choice(PROVIDERS)
CONFIG_HELP = (
    "TOML file with a [wechatpay], [wechatpay-v3], [payjs] or [eftpay] section whose keys are the client's "
    "keywords. Any key may come from PAYKIT_<PROVIDER>_<KEY> instead (e.g. PAYKIT_WECHATPAY_API_KEY)."
)


def fail(message: str, status: int = 2) -> NoReturn:
    """One clear line on stderr and the exit status."""
    click.echo(f"paykit: error: {one_line(message)}", err=True)
    sys.exit(status)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of blanks folded into single spaces."""
    return " ".join(text.split())


class PaykitGroup(click.Group):
    """The ``paykit`` group: an unexpected exception in a command is one line, not a traceback.

    Errors the commands foresee already end in :func:`fail`; this is the net under them (a bug, an
    unforeseen OS error). ``paykit --debug ...`` lets the exception through with its traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            fail(f"{_describe(exc)} (paykit --debug ... shows the traceback)")


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the one exception inside nested single-member exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@click.group(cls=PaykitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log retries and settlements to stderr.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def cli(verbose: bool, debug: bool) -> None:
    """Refunds for WeChat Pay v2, PAYJS and eftPay — exactly once, concurrently, from the shell."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("paykit_async").setLevel(logging.INFO if verbose else logging.CRITICAL)


def progress_bar(console: Console) -> Progress:
    """The progress bar of long commands: counts, share, rate, elapsed time and ETA."""
    return Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        refresh_per_second=8,
    )


class _RateColumn(TextColumn):
    """Refunds per second."""

    def __init__(self) -> None:
        super().__init__("", justify="right")

    def render(self, task: Any) -> Any:
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "    -/s", style="cyan")


def as_json(result: Any) -> Any:
    """A typed result as plain data for ``json.dumps``."""
    if attrs.has(type(result)):
        return attrs.asdict(result, recurse=True)
    return result


def json_default(value: object) -> object:
    """``json.dumps`` fallback: Decimal as text, enums by value, attrs classes and sets as data."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if attrs.has(type(value)):
        return attrs.asdict(value)  # type: ignore[arg-type]
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
