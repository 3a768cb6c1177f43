"""``paykit refunds run``: a CSV of refunds, exactly once, resumable after a crash."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import anyio
import attrs
import click
from rich.console import Console
from rich.table import Table

from ..batch import BatchOutcome, BatchStatus, count_attempts, refund_many, refund_number_rule
from ..pipeline.retry import RetryPolicy
from .app import CONFIG_HELP, PROVIDER_CHOICE, cli, fail, json_default, progress_bar
from .config import ConfigError, ProviderSettings, build_client, load_settings
from .rows import CsvRefunds, HeaderError

__all__ = ["refunds"]


@cli.group()
def refunds() -> None:
    """Batches of refunds."""


@refunds.command("run")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--provider", "-p", type=PROVIDER_CHOICE, required=True)
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path), help=CONFIG_HELP)
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
        fail("--concurrency must be >= 1")
    if rate is not None and not rate > 0:
        fail("--rate must be > 0")
    if retry_attempts < 1 or not retry_delay >= 0:
        fail("--retry-attempts must be >= 1 and --retry-delay >= 0")
    retry = RetryPolicy(attempts=retry_attempts, initial_delay=retry_delay, max_delay=max(8.0, retry_delay))
    rows = CsvRefunds(path=csv_file, provider=provider)
    try:
        rows.header()
        settings = load_settings(provider, config_file)
    except (ConfigError, HeaderError) as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {csv_file}: {exc}")
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
                    fail(
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
        fail(str(exc))
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
            with progress_bar(console) as progress:
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
                        sink.write(json.dumps(line, default=json_default) + "\n")
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
        fail(str(exc))
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
        sink.write(json.dumps(line, default=json_default) + "\n")
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
        fail(f"cannot write {out}: {exc.strerror}")
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
        fail(f"cannot open the journal lock next to {journal}: {exc.strerror}")
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fail(f"another paykit run is using the journal {journal}")
        yield
