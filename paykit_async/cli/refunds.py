"""``paykit refunds run``: a CSV of refunds, exactly once, whatever the operator does next.

A row's refund is identified by its content — provider, merchant, order identifiers, amounts and
an explicit refund number or ``idempotency_key`` — never by its position, and its refund number is
derived from that identity. So the CSV may be edited and run again, the journal lost, a run killed:
each refund reaches the provider under one number, and the provider's own dedupe keeps it single.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import attrs
import click
from rich.console import Console
from rich.table import Table

from ..batch import (
    BatchOutcome,
    BatchStatus,
    EarlierRefund,
    InvalidRequest,
    count_attempts,
    edited_row_refusal,
    order_aliases,
    order_of,
    refund_key,
    refund_many,
    repeated_row_refusal,
)
from ..errors import IdempotencyConflict, PaykitError
from ..pipeline.retry import RetryPolicy
from ..pipeline.stores.base import RecordedOutcome, RecordState, load_result
from .app import CONFIG_HELP, PROVIDER_CHOICE, cli, fail, json_default, progress_bar
from .config import ConfigError, ProviderSettings, build_client, load_settings
from .provider_check import (
    CHECKED_PROVIDERS,
    ProviderRefunds,
    ask_provider,
    provider_refusal,
)
from .rows import CsvRefunds, HeaderError

__all__ = ["DEFAULT_BATCH_ID", "refunds"]

#: The batch id when none is given: a row's content alone identifies its refund, in any file.
DEFAULT_BATCH_ID = "csv"


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
@click.option(
    "--batch-id",
    help="Scopes row identities: the same row under another batch id is another refund (one the "
    "journal shows refunded under another batch id is refused, see --repeat-other-batches) "
    f"[default: {DEFAULT_BATCH_ID!r} — a row's content alone identifies it, whatever the file].",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Results as JSON lines [default: stdout]."
)
@click.option("--concurrency", "-c", default=16, show_default=True, help="Refunds in flight.")
@click.option(
    "--rate", "-r", type=float, help="At most this many requests sent per second (WeChat: about 150)."
)
@click.option("--retry-attempts", default=4, show_default=True, help="Requests per refund at most.")
@click.option(
    "--retry-delay",
    default=0.5,
    show_default=True,
    help="First retry wait in seconds (doubles, capped at 8).",
)
@click.option(
    "--deadline", default=60.0, show_default=True, help="Seconds one refund may take, settling included."
)
@click.option(
    "--retry-failed/--no-retry-failed",
    default=True,
    show_default=True,
    help="Send rows the provider refused before again, under the same refund number "
    "(after fixing a key, a balance); --no-retry-failed reports the old refusal.",
)
@click.option(
    "--repeat-other-batches",
    is_flag=True,
    help="Send rows whose order and amounts the journal shows refunded under another --batch-id "
    "(a second refund on purpose); without it they are refused and nothing is sent for them.",
)
@click.option(
    "--check-provider",
    is_flag=True,
    help="Before a row's first send, ask the provider which refunds its order has (one refund query per "
    "order; WeChat Pay v2): a refund of the same amount under another number — after a lost journal, "
    "an order renamed by its other identifier — refuses the row. The dry run asks too (read-only).",
)
@click.option("--dry-run", is_flag=True, help="Run every check the real run makes; send nothing.")
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
    deadline: float,
    retry_failed: bool,
    repeat_other_batches: bool,
    check_provider: bool,
    dry_run: bool,
) -> None:
    """Refund every row of FILE.csv, exactly once, resumable after a crash.

    The header names the provider's refund() fields, e.g. ``out_trade_no,total_fee,refund_fee``
    (WeChat Pay), ``payjs_order_id`` (PAYJS), ``paytype,payment_type,out_trade_no,
    transaction_amount,total_fee`` (eftPay). A row's refund is identified by its content (order,
    amounts, an explicit refund number or idempotency_key column) and its refund number derived
    from it; the journal records each number before the row is sent. Running the command again —
    after a crash, kill -9, Ctrl-C, an edit of the file or a lost journal — replays finished rows,
    re-sends unfinished ones under the same numbers and never refunds a row twice. Two rows with
    the same identity are refused as ambiguous, and so is a row whose amount was edited after its
    order was refunded (the journal names that refund). A malformed row fails on its own; the
    others proceed.
    """
    if concurrency < 1:
        fail("--concurrency must be >= 1")
    if rate is not None and not rate > 0:
        fail("--rate must be > 0")
    if retry_attempts < 1 or not retry_delay >= 0:
        fail("--retry-attempts must be >= 1 and --retry-delay >= 0")
    if not deadline > 0:
        fail("--deadline must be > 0")
    if batch_id is not None and not batch_id.strip():
        fail("--batch-id must not be empty")
    if check_provider and provider not in CHECKED_PROVIDERS:
        fail(
            f"--check-provider is for {', '.join(CHECKED_PROVIDERS)} only: the {provider} API cannot "
            "list the refunds of an order"
        )
    retry = RetryPolicy(
        attempts=retry_attempts,
        initial_delay=retry_delay,
        max_delay=max(8.0, retry_delay),
        deadline=deadline,
    )
    rows = CsvRefunds(path=csv_file, provider=provider)
    try:
        rows.header()
        settings = load_settings(provider, config_file)
        identity_client = build_client(settings)
    except (ConfigError, HeaderError) as exc:
        fail(str(exc))
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {csv_file}: {exc}")
    batch = batch_id if batch_id is not None else DEFAULT_BATCH_ID
    try:
        survey = _Survey.of(rows, identity_client, batch)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {csv_file}: {exc}")
    job = _Job(
        settings=settings,
        rows=rows,
        survey=survey,
        batch=batch,
        concurrency=concurrency,
        rate=rate,
        retry=retry,
        retry_failed=retry_failed,
        repeat_other_batches=repeat_other_batches,
        check_provider=check_provider,
    )
    journal_path = journal if journal is not None else csv_file.with_name(csv_file.name + ".journal.db")
    if not check_provider and provider in CHECKED_PROVIDERS and not _journal_knows_refunds(journal_path):
        # Only the journal links a row to a refund made under another identity; one that knows none
        # (new, lost, or every row refused so far) cannot: say how to check.
        click.echo(
            f"note: the journal {journal_path} holds no refund yet: if this file (or an edit of it) ran "
            "before with another journal, stop and run with --check-provider, which asks the provider "
            "for the refunds made",
            err=True,
        )
    if dry_run:
        edits = _read_edits(journal_path, survey, batch, identity_client)
        with _results(out) as sink:
            status = anyio.run(lambda: _dry_run(job, identity_client, edits, sink))
        sys.exit(status)
    anyio.run(identity_client.aclose)
    # The lock comes first: a run that is refused must not touch the running one's files.
    with _journal_lock(journal_path):
        try:
            status = anyio.run(lambda: _run_batch(job, journal_path, out))
        except KeyboardInterrupt:
            fail(
                f"interrupted; every started row is in the journal {journal_path}: "
                "run the same command again to resume",
                status=130,
            )
    sys.exit(status)


# --------------------------------------------------------------------------- the file, surveyed


@attrs.frozen(kw_only=True)
class _Survey:
    """One pass over the file before anything is sent: how many rows, which are ambiguous, which
    identities the file holds (to tell the journal's refunds of rows edited away, :class:`_Edits`).

    Memory is one small int per row (a 64-bit prefix of each row's key), plus the row numbers of
    the duplicates; two distinct rows sharing a prefix would only be refused, never paid twice.
    """

    total: int
    duplicates: Mapping[int, tuple[int, ...]]
    keys: frozenset[int]

    @classmethod
    def of(cls, rows: CsvRefunds, client: Any, batch: str) -> _Survey:
        first: dict[int, int] = {}
        duplicates: dict[int, list[int]] = {}
        total = 0
        for number, request in rows:
            total += 1
            if isinstance(request, InvalidRequest):
                continue
            short = _short_key(client, request, batch)
            seen = first.setdefault(short, number)
            if seen != number:
                duplicates.setdefault(short, [seen]).append(number)
        return cls(
            total=total, duplicates={k: tuple(v) for k, v in duplicates.items()}, keys=frozenset(first)
        )

    def duplicate_of(self, client: Any, request: Mapping[str, Any], batch: str, number: int) -> str | None:
        """Why row ``number`` is refused as an ambiguous duplicate, or None."""
        if not self.duplicates:
            return None
        numbers = self.duplicates.get(_short_key(client, request, batch))
        if numbers is None:
            return None
        others = ", ".join(str(n) for n in numbers if n != number)
        return (
            f"the same refund as row(s) {others} (same order and amounts): if they are genuine separate "
            "refunds, give each its own refund number or idempotency_key column; otherwise delete "
            "the extra rows. Nothing was sent for any of them"
        )


def _short_key(client: Any, request: Mapping[str, Any], batch: str) -> int:
    return _short(refund_key(client, request, batch_id=batch))


def _short(key: str) -> int:
    return int(key.rsplit(":", 1)[1][:16], 16)


@attrs.frozen(kw_only=True)
class _Job:
    settings: ProviderSettings
    rows: CsvRefunds
    survey: _Survey
    batch: str
    concurrency: int
    rate: float | None
    retry: RetryPolicy
    retry_failed: bool
    repeat_other_batches: bool = False
    check_provider: bool = False

    def requests(
        self,
        client: Any,
        numbers: dict[int, int],
        edits: _Edits,
        listed: Mapping[tuple[str, str], ProviderRefunds] | None = None,
    ) -> Iterator[Mapping[str, Any] | InvalidRequest]:
        """The rows as requests, duplicates and edits of rows already refunded refused, and (with
        ``listed``, the provider's refunds of the new rows' orders) repeats of refunds the provider
        has; ``numbers`` maps each yielded index to its row number until the outcome is written (so
        it holds only the rows in flight)."""
        for index, (number, request) in enumerate(self.rows):
            numbers[index] = number
            if isinstance(request, Mapping):
                reason = self.survey.duplicate_of(client, request, self.batch, number)
                if reason is not None:
                    yield InvalidRequest(reason=reason, fields=request, code="DuplicateRow")
                    continue
                reason = edits.refusal(
                    client, request, self.batch, repeat_other_batches=self.repeat_other_batches
                ) or provider_refusal(
                    client,
                    request,
                    self.batch,
                    listed,
                    claimed=edits.claimed,
                    repeat=self.repeat_other_batches,
                )
                if reason is not None:
                    yield InvalidRequest(reason=reason, fields=request, code=IdempotencyConflict.__name__)
                    continue
            yield request

    async def provider_listing(
        self, client: Any, edits: _Edits
    ) -> Mapping[tuple[str, str], ProviderRefunds] | None:
        """With --check-provider, the provider's refunds of the new rows' orders; else None."""
        if not self.check_provider:
            return None
        return await ask_provider(
            client, self.rows, self.batch, edits.claimed, concurrency=self.concurrency, rate=self.rate
        )


# --------------------------------------------------------------------------- rows edited after they ran

_ROWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS paykit_batch_rows (
    key TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    order_key TEXT NOT NULL,
    order_text TEXT NOT NULL,
    amounts TEXT NOT NULL
)
"""
_ROWS_INDEX = "CREATE INDEX IF NOT EXISTS paykit_batch_rows_order ON paykit_batch_rows (batch, order_key)"
_MONEY_MAY_HAVE_MOVED = (RecordState.SUCCEEDED.value, RecordState.IN_FLIGHT.value)


@attrs.frozen(kw_only=True)
class _Edits:
    """What the journal says of rows this batch must not send: the refunds this batch sent (or may
    have sent) under identities no row of the file has any more, by order (:func:`order_of`); the
    refunds other batch ids sent, by order and amounts; and the keys this batch has claimed (a row
    it sent before is resumed, never refused). The journal's table ``paykit_batch_rows`` maps each
    row key a batch ever had to its order and amounts; ``paykit_idempotency`` has the outcomes."""

    earlier: Mapping[str, tuple[EarlierRefund, ...]] = attrs.field(factory=dict)
    #: Refunds sent (or maybe sent) under other batch ids, by (order alias, amounts).
    other_batches: Mapping[tuple[str, str], tuple[EarlierRefund, ...]] = attrs.field(factory=dict)
    #: The keys this batch has claimed in the journal (rows it sent, or may have sent).
    claimed: frozenset[str] = frozenset()

    @classmethod
    def read(cls, db: sqlite3.Connection, survey: _Survey, batch: str, client: Any) -> _Edits:
        earlier: dict[str, list[EarlierRefund]] = {}
        other: dict[tuple[str, str], list[EarlierRefund]] = {}
        try:
            for key, row_batch, order_key, order_text, amounts, refund_no, state, result in _money_moved(db):
                in_batch = row_batch == batch
                if in_batch and _short(key) in survey.keys:
                    continue  # a row the file still has: resumed or replayed, not an edit
                refund = EarlierRefund(
                    order=order_text,
                    amounts=amounts,
                    refund_no=refund_no,
                    succeeded=state == RecordState.SUCCEEDED.value,
                    batch=None if in_batch else row_batch,
                )
                # The order under every name the provider's reply gave it (a row may name it by
                # out_trade_no, its edit by transaction_id: the same order).
                for alias in dict.fromkeys((order_key, *_reply_orders(client, result))):
                    if in_batch:
                        earlier.setdefault(alias, []).append(refund)
                    else:
                        other.setdefault((alias, amounts), []).append(refund)
            claimed = frozenset(
                key
                for (key,) in db.execute(
                    "SELECT r.key FROM paykit_batch_rows r JOIN paykit_idempotency i ON i.key = r.key"
                    " WHERE r.batch = ?",
                    (batch,),
                )
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # a new journal, or one of a run before this table
                return cls()
            raise
        return cls(
            earlier={k: tuple(v) for k, v in earlier.items()},
            other_batches={k: tuple(v) for k, v in other.items()},
            claimed=claimed,
        )

    def refusal(
        self, client: Any, request: Mapping[str, Any], batch: str, *, repeat_other_batches: bool = False
    ) -> str | None:
        """Why ``request`` is refused — as an edit of a row already refunded, or as a row another
        batch id already refunded (unless ``repeat_other_batches``) — or None. A row this batch
        claimed before is never refused: it is resumed under its number."""
        if not self.earlier and (repeat_other_batches or not self.other_batches):
            return None
        order = order_of(client, request)
        if order is None or refund_key(client, request, batch_id=batch) in self.claimed:
            return None
        earlier = self.earlier.get(order.key)
        if earlier:
            return edited_row_refusal(client, request, earlier)
        repeated = self.other_batches.get((order.key, order.amounts))
        if repeated and not repeat_other_batches:
            return repeated_row_refusal(client, request, repeated)
        return None


def _money_moved(db: sqlite3.Connection) -> sqlite3.Cursor:
    """The journal's rows, of every batch, whose refund succeeded or has an unknown outcome: key,
    batch, order key and text, amounts, refund number, state and recorded result."""
    return db.execute(
        "SELECT r.key, r.batch, r.order_key, r.order_text, r.amounts, i.refund_no, i.state, i.result"
        " FROM paykit_batch_rows r JOIN paykit_idempotency i ON i.key = r.key"
        " WHERE i.state IN (?, ?)",
        _MONEY_MAY_HAVE_MOVED,
    )


def _reply_orders(client: Any, result: str | None) -> tuple[str, ...]:
    """The order keys of the order identifiers in a journaled provider reply (:func:`order_aliases`)."""
    try:
        recorded = load_result(result)
    except (ValueError, KeyError, TypeError):
        return ()
    if not isinstance(recorded, RecordedOutcome):
        return ()
    return order_aliases(client, recorded.fields)


def _record_rows(db: sqlite3.Connection, job: _Job, client: Any) -> None:
    """Every row's key, order and amounts into ``paykit_batch_rows``, before anything is sent."""

    def entries() -> Iterator[tuple[str, str, str, str, str]]:
        for _number, request in job.rows:
            if isinstance(request, Mapping):
                order = order_of(client, request)
                if order is not None:
                    key = refund_key(client, request, batch_id=job.batch)
                    yield key, job.batch, order.key, order.order, order.amounts

    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT OR IGNORE INTO paykit_batch_rows VALUES (?, ?, ?, ?, ?)", entries())
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _journal_knows_refunds(path: Path) -> bool:
    """Whether the journal at ``path`` holds a refund that was sent, or may have been. A new
    journal does not — nor one whose every row so far was refused before sending."""
    if not path.exists():
        return False
    try:
        with contextlib.closing(
            sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
        ) as db:
            found = db.execute(
                "SELECT 1 FROM paykit_idempotency WHERE state IN (?, ?) LIMIT 1", _MONEY_MAY_HAVE_MOVED
            ).fetchone()
    except sqlite3.Error as exc:
        # No table yet: nothing recorded. Anything else is the run's to report, in its one line.
        return "no such table" not in str(exc)
    return found is not None


def _read_edits(path: Path, survey: _Survey, batch: str, client: Any) -> _Edits:
    """:class:`_Edits` of the journal at ``path``, read only (a dry run writes nothing)."""
    if not path.exists():
        return _Edits()
    try:
        uri = path.resolve().as_uri() + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            return _Edits.read(db, survey, batch, client)
    except sqlite3.Error as exc:
        fail(f"the journal {path} cannot be used: {exc}")


# --------------------------------------------------------------------------- running


async def _run_batch(job: _Job, journal_path: Path, out: Path | None) -> int:
    from ..pipeline.stores.sqlite import SQLiteStore

    store = SQLiteStore(journal_path)
    try:
        try:
            await store.get("paykit:journal-check")  # creates the journal, or says why it cannot
        except PaykitError as exc:
            fail(str(exc))
        try:
            client = build_client(
                job.settings,
                idempotency_store=store,
                middleware=[count_attempts],
                max_connections=max(job.concurrency, 10),
                retry=job.retry,
                idempotency_retry_failed=job.retry_failed,
            )
        except ConfigError as exc:
            fail(str(exc))
        edits = _prepare_journal(journal_path, job, client)
        console = Console(stderr=True)
        counts = {status.value: 0 for status in BatchStatus if status is not BatchStatus.READY}
        replayed = 0
        numbers: dict[int, int] = {}
        with _results(out) as sink:
            async with client:
                listed = await job.provider_listing(client, edits)
                with progress_bar(console) as progress:
                    task = progress.add_task(job.settings.provider, total=job.survey.total)
                    batch_run = refund_many(
                        client,
                        job.requests(client, numbers, edits, listed),
                        concurrency=job.concurrency,
                        rate=job.rate,
                        batch_id=job.batch,
                    )
                    async with batch_run as outcomes:
                        async for outcome in outcomes:
                            counts[outcome.status.value] += 1
                            line = _result_line(outcome, numbers.pop(outcome.index))
                            replayed += line["replayed"]
                            sink.write(line)
                            progress.advance(task)
    finally:
        await store.aclose()
    summary = Table(title=f"{job.settings.provider} refunds from {job.rows.path.name}", title_justify="left")
    summary.add_column("status")
    summary.add_column("rows", justify="right")
    for name, count in counts.items():
        summary.add_row(name, f"{count:,}")
    summary.add_row("(of them replayed from the journal)", f"{replayed:,}")
    console.print(summary)
    console.print(f"journal: {journal_path}")
    return 0 if counts["succeeded"] == job.survey.total else 1


def _prepare_journal(path: Path, job: _Job, client: Any) -> _Edits:
    """Refuse a journal of paykit 0.1 (keys by row position, random refund numbers: resuming it
    with content keys would refund its finished rows again), free the claims of a run that
    died — we hold the journal lock, so no live run owns them; their refund numbers are kept —
    read the refunds of rows edited away (:class:`_Edits`) and record the file's rows."""
    try:
        with contextlib.closing(sqlite3.connect(path, timeout=5, isolation_level=None)) as db:
            legacy = db.execute(
                "SELECT key FROM paykit_idempotency WHERE key GLOB '*:row[0-9]*'"
                " AND substr(key, instr(key, ':row') + 4) NOT GLOB '*[^0-9]*' LIMIT 1"
            ).fetchone()
            if legacy is not None:
                fail(
                    f"the journal {path} was written by paykit 0.1 (rows keyed by position, random refund "
                    "numbers): finish that batch with paykit 0.1, or give --journal a new file only once "
                    "every row in it has succeeded"
                )
            db.execute(
                "UPDATE paykit_idempotency SET lease_expires = 0 WHERE state = 'in_flight' AND owner != ''"
            )
            db.execute(_ROWS_SCHEMA)
            db.execute(_ROWS_INDEX)
            edits = _Edits.read(db, job.survey, job.batch, client)
            _record_rows(db, job, client)
            return edits
    except sqlite3.Error as exc:
        fail(f"the journal {path} cannot be used: {exc}")


async def _dry_run(job: _Job, client: Any, edits: _Edits, sink: _ResultSink) -> int:
    bad = 0
    numbers: dict[int, int] = {}
    async with client:
        listed = await job.provider_listing(client, edits)
        batch_run = refund_many(
            client,
            job.requests(client, numbers, edits, listed),
            concurrency=job.concurrency,
            batch_id=job.batch,
            validate_only=True,
        )
        async with batch_run as outcomes:
            async for outcome in outcomes:
                line = _result_line(outcome, numbers.pop(outcome.index))
                if outcome.status is BatchStatus.READY:
                    line["request"] = dict(outcome.request)
                else:
                    bad += 1
                sink.write(line)
    click.echo(f"dry run: {bad} invalid row(s); nothing was sent", err=True)
    return 0 if bad == 0 else 1


def _result_line(outcome: BatchOutcome, number: int) -> dict[str, Any]:
    """One results line (:meth:`BatchOutcome.as_record`; the journal holds the refunds)."""
    return outcome.as_record(number, store="The journal")


# --------------------------------------------------------------------------- output that survives


class _ResultSink:
    """Results as JSON lines (UTF-8, Chinese text as it is), one complete line per write.

    Each line goes out in one ``os.write`` of the whole line (looping only on a short write), so a
    crash or ``kill -9`` leaves complete lines, one per finished row; the file is fsynced at the end.
    """

    def __init__(self, fd: int, *, sync: bool) -> None:
        self._fd = fd
        self._sync = sync

    def write(self, line: Mapping[str, Any]) -> None:
        data = (json.dumps(line, default=json_default, ensure_ascii=False) + "\n").encode("utf-8")
        while data:
            written = os.write(self._fd, data)
            data = data[written:]

    def close(self) -> None:
        if self._sync:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)


@contextlib.contextmanager
def _results(out: Path | None) -> Iterator[_ResultSink]:
    """The results file, opened (and truncated: a run writes every row) only when the run starts."""
    if out is None:
        sys.stdout.flush()
        sink = _ResultSink(sys.stdout.fileno(), sync=False)
        yield sink
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    sink = _ResultSink(fd, sync=True)
    try:
        yield sink
    finally:
        sink.close()
        os.close(fd)


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
            fail(f"another paykit run is using the journal {journal}; nothing was done")
        yield
