"""The ``paykit`` command's click commands: the demo, crash-safe CSV refund batches, single calls.

    paykit demo                                    thousands of refunds against the in-process simulator
    paykit refunds run FILE.csv --provider P --config paykit.toml [--journal J.db] [--out R.jsonl]
    paykit refund|close|query --provider P --config paykit.toml FIELD=VALUE ...
    paykit simulator serve                         the simulator on a local port

Exit status: 0 success; 1 some refunds did not succeed (or a single call failed); 2 bad usage,
configuration or input file. Secrets are never printed.
"""

from __future__ import annotations

import contextlib
import decimal
import enum
import json
import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NoReturn

import anyio
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
from rich.table import Table

from ..batch import (
    BatchOutcome,
    BatchStatus,
    count_attempts,
    refund_many,
    refund_number_rule,
)
from ..errors import PaykitError, RefundOutcomeUnknown, ValidationError
from ..pipeline.retry import RetryPolicy
from .config import PROVIDERS, ConfigError, ProviderSettings, build_client, env_name, load_settings
from .rows import CsvRefunds, HeaderError, convert_row

__all__ = ["cli", "main"]

_PROVIDER = click.Choice(PROVIDERS)
_CONFIG_HELP = (
    "TOML file with a [wechatpay], [payjs] or [eftpay] section whose keys are the client's "
    "keywords. Any key may come from PAYKIT_<PROVIDER>_<KEY> instead (e.g. PAYKIT_WECHATPAY_API_KEY)."
)


def _fail(message: str, status: int = 2) -> NoReturn:
    """One clear line on stderr and the exit status."""
    click.echo(f"paykit: error: {message}", err=True)
    sys.exit(status)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log retries and settlements to stderr.")
def cli(verbose: bool) -> None:
    """Refunds for WeChat Pay v2, PAYJS and eftPay — exactly once, concurrently, from the shell."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("paykit_async").setLevel(logging.INFO if verbose else logging.CRITICAL)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="paykit")


# --------------------------------------------------------------------------- demo


@cli.command()
@click.option("--orders", default=1000, show_default=True, help="Paid orders per provider.")
@click.option("--concurrency", default=32, show_default=True, help="Refunds in flight per provider.")
@click.option(
    "--fault-rate", default=0.02, show_default=True, help="Share of requests meeting each of 9 fault kinds."
)
@click.option("--seed", default=2024, show_default=True, help="Seed of the fault injector.")
def demo(orders: int, concurrency: int, fault_rate: float, seed: int) -> None:
    """Refund thousands of orders through the in-process simulator, with faults; no setup needed.

    Exits 0 only when the simulator's ledger shows every refund exactly once: no duplicate
    payouts, nothing reported succeeded that the ledger lacks, no ledger refund reported failed.
    """
    from .demo import PROVIDERS as DEMO_PROVIDERS
    from .demo import run_demo

    if orders < 1 or concurrency < 1 or not 0 <= fault_rate <= 1 / 9:
        _fail("--orders and --concurrency must be >= 1 and --fault-rate between 0 and 0.111")
    console = Console(stderr=True)
    console.print(
        f"[bold]paykit demo[/]: {orders * 3:,} refunds across WeChat Pay, PAYJS and eftPay through the "
        f"in-process simulator; {fault_rate:.0%} of requests meet each of 9 fault kinds "
        "(dropped connections, 5xx, rate limits, busy codes, lost and badly signed replies)."
    )
    with _progress(console) as progress:
        tasks = {p: progress.add_task(p, total=orders) for p in DEMO_PROVIDERS}

        def advance(provider: str, outcome: BatchOutcome) -> None:
            progress.advance(tasks[provider])

        report = anyio.run(
            lambda: run_demo(
                orders=orders, concurrency=concurrency, fault_rate=fault_rate, seed=seed, progress=advance
            )
        )
    table = Table(title="Refunds", title_justify="left")
    for column in ("provider", "succeeded", "failed", "unknown", "retries", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for p in report.providers:
        table.add_row(
            p.provider,
            f"{p.counts.get(BatchStatus.SUCCEEDED, 0):,}",
            f"{p.counts.get(BatchStatus.FAILED, 0):,}",
            f"{p.counts.get(BatchStatus.UNKNOWN, 0):,}",
            f"{p.retries:,}",
            f"{p.percentile(0.5) * 1000:.1f}",
            f"{p.percentile(0.99) * 1000:.1f}",
        )
    console.print(table)
    latencies = report.latencies
    from .demo import _percentile

    summary = Table.grid(padding=(0, 2))
    summary.add_row("refunds", f"{report.total:,} in {report.elapsed:.1f} s ({report.throughput:,.0f}/s)")
    summary.add_row(
        "latency",
        f"p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, p99 {_percentile(latencies, 0.99) * 1000:.1f} ms",
    )
    summary.add_row(
        "retries", f"{sum(p.retries for p in report.providers):,} (same refund numbers, same amounts)"
    )
    summary.add_row(
        "unknown re-sent", f"{sum(p.settled_on_rerun for p in report.providers):,} settled on a second pass"
    )
    colour = "green" if report.duplicate_payouts == 0 else "red"
    summary.add_row(
        "duplicate payouts", f"[{colour}]{report.duplicate_payouts}[/] (from the simulator's ledger)"
    )
    summary.add_row("succeeded, not in ledger", str(len(report.missing_in_ledger)))
    summary.add_row("failed, but in ledger", str(len(report.failed_but_in_ledger)))
    console.print(summary)
    if report.ok:
        console.print("[bold green]ledger check passed[/]: every refund paid at most once, as reported.")
        return
    for problem in [*report.missing_in_ledger, *report.failed_but_in_ledger][:10]:
        console.print(f"[red]ledger mismatch[/]: {problem}")
    _fail("ledger invariants violated", status=1)


# --------------------------------------------------------------------------- refunds run


@cli.group()
def refunds() -> None:
    """Batches of refunds."""


@refunds.command("run")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--provider", "-p", type=_PROVIDER, required=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=_CONFIG_HELP)
@click.option(
    "--journal",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite journal of refund numbers and outcomes [default: FILE.csv.journal.db].",
)
@click.option("--batch-id", help="Names this batch in the journal [default: the CSV file's absolute path].")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Results as JSON lines [default: stdout]."
)
@click.option("--concurrency", "-c", default=16, show_default=True, help="Refunds in flight.")
@click.option("--rate", "-r", type=float, help="At most this many requests per second (WeChat: about 150).")
@click.option("--retry-attempts", default=4, show_default=True, help="Requests per refund at most.")
@click.option(
    "--retry-delay",
    default=0.5,
    show_default=True,
    help="First retry wait in seconds (doubles, capped at 8).",
)
@click.option("--dry-run", is_flag=True, help="Check the file and the configuration; send nothing.")
def refunds_run(
    csv_file: Path,
    provider: str,
    config_file: Path | None,
    journal: Path | None,
    batch_id: str | None,
    out: Path | None,
    concurrency: int,
    rate: float | None,
    retry_attempts: int,
    retry_delay: float,
    dry_run: bool,
) -> None:
    """Refund every row of FILE.csv, exactly once, resumable after a crash.

    The header names the provider's refund() fields, e.g. ``out_trade_no,total_fee,refund_fee``
    (WeChat Pay), ``payjs_order_id`` (PAYJS), ``paytype,payment_type,out_trade_no,
    transaction_amount,total_fee`` (eftPay). Before a row is sent its refund number is recorded
    in the journal under the key <batch id>:row<N>; running the same command again — after a
    crash, kill -9 or Ctrl-C — replays finished rows from the journal, re-sends unfinished ones
    with their recorded numbers (settling unknown outcomes by query) and never refunds a row twice.
    A malformed row fails on its own with a message in the results; the others proceed.
    """
    if concurrency < 1:
        _fail("--concurrency must be >= 1")
    if rate is not None and not rate > 0:
        _fail("--rate must be > 0")
    if retry_attempts < 1 or not retry_delay >= 0:
        _fail("--retry-attempts must be >= 1 and --retry-delay >= 0")
    retry = RetryPolicy(attempts=retry_attempts, initial_delay=retry_delay, max_delay=max(8.0, retry_delay))
    rows = CsvRefunds(path=csv_file, provider=provider)
    try:
        rows.header()
        settings = load_settings(provider, config_file)
    except (ConfigError, HeaderError) as exc:
        _fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {csv_file}: {exc}")
    journal_path = journal if journal is not None else csv_file.with_name(csv_file.name + ".journal.db")
    batch = batch_id if batch_id is not None else f"csv:{csv_file.resolve()}"
    with _output(out) as sink:
        if dry_run:
            status = _dry_run(settings, rows, sink)
        else:
            with _journal_lock(journal_path):
                try:
                    status = anyio.run(
                        lambda: _run_batch(
                            settings, rows, sink, journal_path, batch, concurrency, rate, retry
                        )
                    )
                except KeyboardInterrupt:
                    _fail(
                        f"interrupted; every started row is in the journal {journal_path}: "
                        "run the same command again to resume",
                        status=130,
                    )
    sys.exit(status)


async def _run_batch(
    settings: ProviderSettings,
    rows: CsvRefunds,
    sink: IO[str],
    journal_path: Path,
    batch: str,
    concurrency: int,
    rate: float | None,
    retry: RetryPolicy,
) -> int:
    from ..pipeline.stores.sqlite import SQLiteStore

    store = SQLiteStore(journal_path)
    try:
        client = build_client(
            settings,
            idempotency_store=store,
            middleware=[count_attempts],
            max_connections=max(concurrency, 10),
            retry=retry,
        )
    except ConfigError as exc:
        await store.aclose()
        _fail(str(exc))
    console = Console(stderr=True)
    counts: dict[str, int] = {status.value: 0 for status in BatchStatus}
    replayed = 0

    def key_for(index: int, request: Mapping[str, Any]) -> str:
        return f"{batch}:row{index + 1}"

    async def take_over_stale_claim(index: int, request: Mapping[str, Any], refund_no: str | None) -> None:
        # We hold the journal lock, so a live claim in it belongs to a run that died: free it now
        # instead of waiting for its lease to run out. Its refund number is kept and re-sent.
        record = await store.get(key_for(index, request))
        if record is not None and record.owner and record.state.value == "in_flight":
            await store.release(record.key, owner=record.owner)

    total = rows.count()
    try:
        async with client:
            with _progress(console) as progress:
                task = progress.add_task(settings.provider, total=total)
                batch_run = refund_many(
                    client,
                    (request for _, request in rows),
                    concurrency=concurrency,
                    rate=rate,
                    idempotency_key=key_for,
                    on_start=take_over_stale_claim,
                )
                async with batch_run as outcomes:
                    async for outcome in outcomes:
                        counts[outcome.status.value] += 1
                        line = _result_line(outcome)
                        replayed += line["replayed"]
                        sink.write(json.dumps(line, default=_json_default) + "\n")
                        sink.flush()
                        progress.advance(task)
    finally:
        await store.aclose()
    summary = Table(title=f"{settings.provider} refunds from {rows.path.name}", title_justify="left")
    summary.add_column("status")
    summary.add_column("rows", justify="right")
    for name, count in counts.items():
        summary.add_row(name, f"{count:,}")
    summary.add_row("(of them replayed from the journal)", f"{replayed:,}")
    console.print(summary)
    console.print(f"journal: {journal_path}")
    return 0 if counts["succeeded"] == total else 1


def _dry_run(settings: ProviderSettings, rows: CsvRefunds, sink: IO[str]) -> int:
    try:
        client = build_client(settings)
    except ConfigError as exc:
        _fail(str(exc))
    rule = refund_number_rule(client)
    checker = _FieldCheck.of(client)
    bad = 0
    for number, request in rows:
        line: dict[str, Any] = {"row": number}
        if not isinstance(request, Mapping):
            line.update(status="invalid", error_message=request.reason)
        else:
            problem = checker(request)
            if problem:
                line.update(status="invalid", error_message=f"row {number}: {problem}")
            else:
                line.update(status="ready", request=dict(request))
                if rule is not None and rule.generated and not request.get(rule.field):
                    line["refund_no"] = "(assigned and journalled when the batch runs)"
        bad += line["status"] != "ready"
        sink.write(json.dumps(line, default=_json_default) + "\n")
    click.echo(f"dry run: {bad} invalid row(s); nothing was sent", err=True)
    return 0 if bad == 0 else 1


@attrs.frozen(kw_only=True)
class _FieldCheck:
    """Checks a request's fields against the client's refund() keywords, without sending."""

    accepted: frozenset[str]
    required: frozenset[str]

    @classmethod
    def of(cls, client: Any) -> _FieldCheck:
        import inspect

        params = [
            p for p in inspect.signature(client.refund).parameters.values() if p.name != "idempotency_key"
        ]
        return cls(
            accepted=frozenset(p.name for p in params),
            required=frozenset(p.name for p in params if p.default is p.empty),
        )

    def __call__(self, request: Mapping[str, Any]) -> str | None:
        missing = sorted(self.required - set(request))
        if missing:
            return f"missing field(s) {', '.join(missing)}"
        unknown = sorted(set(request) - self.accepted)
        return f"unknown field(s) {', '.join(unknown)}" if unknown else None


def _result_line(outcome: BatchOutcome) -> dict[str, Any]:
    result = outcome.result
    provider_refund_id = None
    for name in ("refund_id", "transaction_id"):
        provider_refund_id = getattr(result, name, None)
        if provider_refund_id:
            break
    return {
        "row": outcome.index + 1,
        "status": outcome.status.value,
        "refund_no": outcome.refund_no,
        "provider_refund_id": provider_refund_id,
        "error_code": outcome.error_code,
        "error_message": outcome.error_message,
        "attempts": outcome.attempts,
        # Replayed from the journal: the provider was not called (count_attempts counted 0).
        "replayed": outcome.ok and (bool(getattr(result, "replayed", False)) or outcome.attempts == 0),
        "settled_by_query": bool(getattr(result, "settled_by_query", False)),
    }


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        yield sys.stdout
        return
    try:
        handle = out.open("w", encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror}")
    with handle:
        yield handle


@contextlib.contextmanager
def _journal_lock(journal: Path) -> Iterator[None]:
    """One run per journal at a time (POSIX ``flock``; released by the OS if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no cross-run lock
        yield
        return
    try:
        handle = open(str(journal) + ".lock", "a+b")  # noqa: SIM115 - held for the whole run
    except OSError as exc:
        _fail(f"cannot open the journal lock next to {journal}: {exc.strerror}")
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            _fail(f"another paykit run is using the journal {journal}")
        yield


def _progress(console: Console) -> Progress:
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


# --------------------------------------------------------------------------- single calls


def _single_call_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.argument("fields", nargs=-1, metavar="FIELD=VALUE...")(func)
    func = click.option(
        "--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=_CONFIG_HELP
    )(func)
    return click.option("--provider", "-p", type=_PROVIDER, required=True)(func)


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
    paykit refund -p payjs --config paykit.toml payjs_order_id=2019...
    """
    request = _fields(provider, fields)
    if idempotency_key and journal is None:
        _fail("--idempotency-key needs --journal (where the key's refund number is recorded)")
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
        _fail("eftPay has no close-order call")

    async def call(client: Any) -> Any:
        if provider == "wechatpay":
            return await client.close_order(**request)
        return await client.close(**request)

    _single_call(provider, config_file, call)


@cli.command("query")
@_single_call_options
def query_command(provider: str, config_file: Path | None, fields: tuple[str, ...]) -> None:
    """Query a refund or order: WeChat Pay refund query (out_refund_no=... | refund_id=... |
    out_trade_no=... | transaction_id=...), PAYJS check (payjs_order_id=...), eftPay query
    (out_trade_no=... paytype=... payment_type=... [refund_no=...])."""
    request = _fields(provider, fields, ints=("offset",))

    async def call(client: Any) -> Any:
        if provider == "wechatpay":
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
            _fail(f"expected FIELD=VALUE, got {pair!r}")
        columns.append(name.strip())
        cells.append(value)
    converted = convert_row(provider, columns, cells, 1)
    if not isinstance(converted, Mapping):
        _fail(converted.reason.removeprefix("row 1: "))
    result = dict(converted)
    for name in ints:
        if name in result:
            if not str(result[name]).isdigit():
                _fail(f"{name} must be a whole number")
            result[name] = int(result[name])
    return result


def _single_call(
    provider: str, config_file: Path | None, call: Callable[[Any], Any], *, journal: Path | None = None
) -> None:
    try:
        settings = load_settings(provider, config_file)
    except ConfigError as exc:
        _fail(str(exc))

    async def run() -> Any:
        store = None
        if journal is not None:
            from ..pipeline.stores.sqlite import SQLiteStore

            store = SQLiteStore(journal)
        try:
            try:
                client = build_client(settings, idempotency_store=store)
            except ConfigError as exc:
                _fail(str(exc))
            async with client:
                return await call(client)
        finally:
            if store is not None:
                await store.aclose()

    try:
        result = anyio.run(run)
    except RefundOutcomeUnknown as exc:
        _fail(f"outcome unknown for refund {exc.refund_no}: {exc.message}", status=1)
    except ValidationError as exc:
        _fail(f"{type(exc).__name__}: {exc} (nothing was sent)")
    except PaykitError as exc:
        _fail(f"{type(exc).__name__}: {exc}", status=1)
    except TypeError as exc:
        # Wrong or missing FIELD=VALUE names for this call.
        _fail(str(exc).replace("'", ""))
    click.echo(json.dumps(_as_json(result), default=_json_default, ensure_ascii=False, indent=2))


def _as_json(result: Any) -> Any:
    if attrs.has(type(result)):
        return attrs.asdict(result, recurse=True)
    return result


def _json_default(value: object) -> object:
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


# --------------------------------------------------------------------------- simulator


def _attach_simulator() -> None:
    try:
        from ..simulator.cli import simulator
    except ImportError:

        @cli.group("simulator")
        def simulator_missing() -> None:
            """The local provider simulator (needs: pip install "paykit_async[simulator]")."""
            _fail('the simulator needs uvicorn: pip install "paykit_async[simulator]"')

        return
    cli.add_command(simulator)


_attach_simulator()

#: Environment variable names, for the documentation and ``--help`` readers.
ENVIRONMENT = {p: env_name(p, "<KEY>") for p in PROVIDERS}
