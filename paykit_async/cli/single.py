"""``paykit refund``, ``paykit close`` and ``paykit query``: one call, its result as JSON.

FIELD=VALUE arguments are the keyword arguments of the client method behind the command
(:data:`METHODS`). They are checked against that method's signature before anything else —
missing, unknown, repeated or empty fields are one line naming them — and a refund number is
shown only when the refund is about to be sent: printed on stderr by a middleware at the first
attempt (so it is the number actually sent, also when a journal supplies a recorded one), and
carried in the JSON result or the unknown-outcome message.
"""

from __future__ import annotations

import inspect
import json
import re
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import click

from ..errors import IdempotencyStoreError, PaykitError, RefundOutcomeUnknown, ValidationError
from ..pipeline.core import Handler, Operation, Outcome
from .app import CONFIG_HELP, PROVIDER_CHOICE, as_json, cli, fail, json_default
from .config import ConfigError, build_client, load_settings
from .rows import convert_row

__all__ = ["METHODS", "close_command", "query_command", "refund_command"]

#: The client method each command calls, per provider (eftPay has no close-order call).
METHODS: Mapping[str, Mapping[str, str]] = {
    "refund": {"wechatpay": "refund", "wechatpay-v3": "refund", "payjs": "refund", "eftpay": "refund"},
    "close": {"wechatpay": "close_order", "wechatpay-v3": "close_order", "payjs": "close"},
    "query": {
        "wechatpay": "query_refund",
        "wechatpay-v3": "query_refund",
        "payjs": "check",
        "eftpay": "query",
    },
}
#: Set by options, never FIELD=VALUE.
_NOT_FIELDS = frozenset({"self", "idempotency_key"})


def _single_call_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.argument("fields", nargs=-1, metavar="FIELD=VALUE...")(func)
    func = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP
    )(func)
    return click.option("--provider", "-p", type=PROVIDER_CHOICE, required=True)(func)


@cli.command("refund")
@_single_call_options
@click.option("--idempotency-key", help="Reuse the refund number recorded under this key (needs --journal).")
@click.option(
    "--journal", type=click.Path(dir_okay=False, path_type=Path), help="SQLite idempotency journal."
)
def refund_command(
    provider: str,
    config_file: Path | None,
    fields: tuple[str, ...],
    idempotency_key: str | None,
    journal: Path | None,
) -> None:
    """Refund one order: FIELD=VALUE are the provider's refund() fields.

    \b
    paykit refund -p wechatpay --config paykit.toml out_trade_no=T1 total_fee=100 refund_fee=100
    paykit refund -p wechatpay-v3 --config paykit.toml out_trade_no=T1 total=100 refund=100
    paykit refund -p payjs --config paykit.toml payjs_order_id=2019...
    """
    request = _request("refund", provider, fields)
    if idempotency_key and journal is None:
        fail("--idempotency-key needs --journal (where the key's refund number is recorded)")
    if idempotency_key:
        request["idempotency_key"] = idempotency_key
    _single_call("refund", provider, config_file, request, journal=journal)


@cli.command("close")
@_single_call_options
def close_command(provider: str, config_file: Path | None, fields: tuple[str, ...]) -> None:
    """Close an unpaid order: WeChat Pay out_trade_no=..., PAYJS payjs_order_id=..."""
    if provider not in METHODS["close"]:
        fail("eftPay has no close-order call")
    _single_call("close", provider, config_file, _request("close", provider, fields))


@cli.command("query")
@_single_call_options
def query_command(provider: str, config_file: Path | None, fields: tuple[str, ...]) -> None:
    """Query a refund or order: WeChat Pay refund query (out_refund_no=... | refund_id=... |
    out_trade_no=... | transaction_id=...; v3: out_refund_no=...), PAYJS check (payjs_order_id=...),
    eftPay query (out_trade_no=... paytype=... payment_type=... [refund_no=...])."""
    _single_call("query", provider, config_file, _request("query", provider, fields, ints=("offset",)))


@attrs.frozen(kw_only=True)
class _Signature:
    """The FIELD=VALUE names a client method takes: required ones and optional ones, in order."""

    title: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @classmethod
    def of(cls, command: str, provider: str) -> _Signature:
        method = getattr(_client_class(provider), METHODS[command][provider])
        params = [p for p in inspect.signature(method).parameters.values() if p.name not in _NOT_FIELDS]
        return cls(
            title=f"paykit {command} -p {provider}",
            required=tuple(p.name for p in params if p.default is p.empty),
            optional=tuple(p.name for p in params if p.default is not p.empty),
        )

    def takes(self) -> str:
        """What the command accepts, for error messages."""
        text = f"{self.title} takes {', '.join(self.required)}" if self.required else f"{self.title} takes"
        if self.optional:
            text += f"{' and optionally' if self.required else ''} {', '.join(self.optional)}"
        return text

    def problem(self, names: list[str]) -> str | None:
        """Why ``names`` cannot be the method's keyword arguments, or None."""
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            return f"{_plural('field', repeated)} given more than once: {', '.join(repeated)}"
        unknown = [n for n in names if n not in self.required and n not in self.optional]
        if unknown:
            return f"unknown {_plural('field', unknown)}: {', '.join(unknown)} ({self.takes()})"
        missing = [n for n in self.required if n not in names]
        if missing:
            return f"missing {_plural('field', missing)}: {', '.join(missing)} ({self.takes()})"
        if not names:
            return f"no FIELD=VALUE given ({self.takes()})"
        return None


def _plural(word: str, items: list[str]) -> str:
    return word if len(items) == 1 else word + "s"


def _client_class(provider: str) -> type[Any]:
    from ..providers.eftpay import EftPayClient
    from ..providers.payjs import PayJSClient
    from ..providers.wechatpay import WeChatPayClient
    from ..providers.wechatpay_v3 import WeChatPayV3Client

    classes: dict[str, type[Any]] = {
        "wechatpay": WeChatPayClient,
        "wechatpay-v3": WeChatPayV3Client,
        "payjs": PayJSClient,
        "eftpay": EftPayClient,
    }
    return classes[provider]


def _request(
    command: str, provider: str, pairs: tuple[str, ...], ints: tuple[str, ...] = ()
) -> dict[str, Any]:
    """FIELD=VALUE arguments as the method's keyword arguments; one error line when they do not fit."""
    columns: list[str] = []
    cells: list[str] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"expected FIELD=VALUE, got {pair!r}")
        columns.append(name)
        cells.append(value)
    signature = _Signature.of(command, provider)
    problem = signature.problem(columns)
    if problem:
        fail(problem)
    empty = [name for name, value in zip(columns, cells, strict=True) if not value.strip()]
    if empty:
        fail(f"no value for {', '.join(empty)} (leave a field out instead of giving it empty)")
    converted = convert_row(provider, columns, cells, 1)
    if not isinstance(converted, Mapping):
        fail(re.sub(r"^row \d+: ", "", converted.reason))
    result = dict(converted)
    for name in ints:
        if name in result:
            if not str(result[name]).isdigit():
                fail(f"{name} must be a whole number")
            result[name] = int(result[name])
    return result


def _announce_refund_number(request: Mapping[str, Any]) -> Callable[[Operation, Handler], Awaitable[Outcome]]:
    """A middleware printing the refund number at the first attempt, unless the caller gave it.

    User middlewares run after validation and after the idempotency layer fixed the number, so
    the line appears only for a request that is about to be sent, with the number it carries.
    """
    announced = False

    async def announce(operation: Operation, call_next: Handler) -> Outcome:
        nonlocal announced
        field = operation.refund_no_field
        if not announced and field is not None and operation.refund_no != request.get(field):
            announced = True
            click.echo(f"refund number: {operation.refund_no}", err=True)
        return await call_next(operation)

    return announce


def _single_call(
    command: str,
    provider: str,
    config_file: Path | None,
    request: Mapping[str, Any],
    *,
    journal: Path | None = None,
) -> None:
    try:
        settings = load_settings(provider, config_file)
    except ConfigError as exc:
        fail(str(exc))

    async def run() -> Any:
        store = None
        if journal is not None:
            from ..pipeline.stores.sqlite import SQLiteStore

            store = SQLiteStore(journal)
        try:
            try:
                client = build_client(
                    settings, idempotency_store=store, middleware=[_announce_refund_number(request)]
                )
            except ConfigError as exc:
                fail(str(exc))
            async with client:
                return await getattr(client, METHODS[command][provider])(**request)
        finally:
            if store is not None:
                await store.aclose()

    try:
        result = anyio.run(run)
    except RefundOutcomeUnknown as exc:
        fail(f"outcome unknown for refund {exc.refund_no}: {exc.message}", status=1)
    except ValidationError as exc:
        fail(f"{type(exc).__name__}: {exc} (nothing was sent)")
    except IdempotencyStoreError as exc:
        fail(f"cannot use the journal: {exc.message} (nothing was sent)")
    except PaykitError as exc:
        fail(f"{type(exc).__name__}: {exc}", status=1)
    except sqlite3.Error as exc:
        fail(f"cannot use the journal {journal}: {exc}")
    click.echo(json.dumps(as_json(result), default=json_default, ensure_ascii=False, indent=2))
