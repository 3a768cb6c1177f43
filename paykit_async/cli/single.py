"""``paykit refund``, ``paykit close`` and ``paykit query``: one call, its result as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import click

from ..batch import refund_number_rule
from ..errors import PaykitError, RefundOutcomeUnknown, ValidationError
from .app import CONFIG_HELP, PROVIDER_CHOICE, as_json, cli, fail, json_default
from .config import ConfigError, build_client, load_settings
from .rows import convert_row

__all__ = ["close_command", "query_command", "refund_command"]


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
    request = _fields(provider, fields)
    if idempotency_key and journal is None:
        fail("--idempotency-key needs --journal (where the key's refund number is recorded)")
    rule = None

    async def call(client: Any) -> Any:
        nonlocal rule
        rule = refund_number_rule(client)
        args = dict(request)
        if rule is not None:
            args = dict(rule.fix(args)[0])
            if rule.generated and not request.get(rule.field):
                click.echo(f"refund number: {args[rule.field]}", err=True)
        if idempotency_key:
            args["idempotency_key"] = idempotency_key
        return await client.refund(**args)

    _single_call(provider, config_file, call, journal=journal)


@cli.command("close")
@_single_call_options
def close_command(provider: str, config_file: Path | None, fields: tuple[str, ...]) -> None:
    """Close an unpaid order: WeChat Pay out_trade_no=..., PAYJS payjs_order_id=..."""
    request = _fields(provider, fields)
    if provider == "eftpay":
        fail("eftPay has no close-order call")

    async def call(client: Any) -> Any:
        if provider in ("wechatpay", "wechatpay-v3"):
            return await client.close_order(**request)
        return await client.close(**request)

    _single_call(provider, config_file, call)


@cli.command("query")
@_single_call_options
def query_command(provider: str, config_file: Path | None, fields: tuple[str, ...]) -> None:
    """Query a refund or order: WeChat Pay refund query (out_refund_no=... | refund_id=... |
    out_trade_no=... | transaction_id=...; v3: out_refund_no=...), PAYJS check
    (payjs_order_id=...), eftPay query (out_trade_no=... paytype=... payment_type=... [refund_no=...])."""
    request = _fields(provider, fields, ints=("offset",))

    async def call(client: Any) -> Any:
        if provider in ("wechatpay", "wechatpay-v3"):
            return await client.query_refund(**request)
        if provider == "payjs":
            return await client.check(**request)
        return await client.query(**request)

    _single_call(provider, config_file, call)


def _fields(provider: str, pairs: tuple[str, ...], ints: tuple[str, ...] = ()) -> dict[str, Any]:
    columns: list[str] = []
    cells: list[str] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"expected FIELD=VALUE, got {pair!r}")
        columns.append(name.strip())
        cells.append(value)
    converted = convert_row(provider, columns, cells, 1)
    if not isinstance(converted, Mapping):
        fail(converted.reason.removeprefix("row 1: "))
    result = dict(converted)
    for name in ints:
        if name in result:
            if not str(result[name]).isdigit():
                fail(f"{name} must be a whole number")
            result[name] = int(result[name])
    return result


def _single_call(
    provider: str, config_file: Path | None, call: Callable[[Any], Any], *, journal: Path | None = None
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
                client = build_client(settings, idempotency_store=store)
            except ConfigError as exc:
                fail(str(exc))
            async with client:
                return await call(client)
        finally:
            if store is not None:
                await store.aclose()

    try:
        result = anyio.run(run)
    except RefundOutcomeUnknown as exc:
        fail(f"outcome unknown for refund {exc.refund_no}: {exc.message}", status=1)
    except ValidationError as exc:
        fail(f"{type(exc).__name__}: {exc} (nothing was sent)")
    except PaykitError as exc:
        fail(f"{type(exc).__name__}: {exc}", status=1)
    except TypeError as exc:
        # Wrong or missing FIELD=VALUE names for this call.
        fail(str(exc).replace("'", ""))
    click.echo(json.dumps(as_json(result), default=json_default, ensure_ascii=False, indent=2))
