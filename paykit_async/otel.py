"""OpenTelemetry tracing and metrics for any provider client (extra ``otel``: opentelemetry-api).

:func:`instrument` adds two middlewares to a client's pipeline:

- an **operation** layer, outermost (around idempotency, retries, waits and settle queries): one
  span ``paykit {provider}.{operation}`` (e.g. ``paykit wechatpay.refund``) with
  ``paykit.provider``, ``paykit.operation``, ``paykit.refund_no`` (refunds), ``paykit.attempts``,
  ``paykit.outcome`` (``success``, ``replayed``, ``settled``, ``refused``, ``unknown``, ``error``,
  ``cancelled``) and, on failure, ``error.type`` (the exception class) and ``paykit.error.code``
  (a provider's error code); a refund settled by query shows the query as a child operation span;
- an **attempt** layer, innermost: one ``CLIENT`` span per HTTP attempt following the HTTP client
  semantic conventions — ``http.request.method``, ``server.address``, ``server.port``,
  ``url.full`` (scheme, host, port and path only: no query, no credentials),
  ``http.response.status_code``, ``http.request.resend_count`` on retries, ``error.type`` — plus
  ``paykit.request_id`` when the provider sent one.

Metrics: ``paykit.client.operation.duration`` (histogram, seconds; by provider, operation,
outcome and error type) and ``paykit.client.attempts`` (counter; by provider, operation,
``paykit.outcome`` ``success``/``error``/``cancelled`` and error type).

Nothing from a request or reply body, no key, signature, header value (but the request id) or
idempotency key is ever put in an attribute. Without ``tracer_provider``/``meter_provider`` the
global ones are used (no-ops until the application configures the SDK).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TypeVar
from urllib.parse import urlsplit

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram, MeterProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider

from . import __version__
from .client_base import BaseClient
from .errors import PaykitError, ProviderError, RefundOutcomeUnknown
from .pipeline.core import Handler, Operation, Outcome, recording_wire

__all__ = ["ATTEMPTS_METRIC", "DURATION_METRIC", "AttemptLayer", "OperationLayer", "instrument"]

DURATION_METRIC = "paykit.client.operation.duration"
ATTEMPTS_METRIC = "paykit.client.attempts"
_SCOPE = "paykit_async"
#: HTTP client duration buckets, extended for operations that retry for up to a minute.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60)
_DEFAULT_PORTS = {"https": 443, "http": 80}

Attributes = dict[str, str | int]
_Client = TypeVar("_Client", bound=BaseClient)


class _Progress:
    """What the attempt layer tells the operation layer around it (mutable, one per operation)."""

    __slots__ = ("attempts", "refund_no")

    def __init__(self, *, refund_no: str | None) -> None:
        self.attempts = 0
        self.refund_no = refund_no


_PROGRESS: ContextVar[_Progress | None] = ContextVar("paykit_otel_progress", default=None)


def instrument(
    client: _Client,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> _Client:
    """Trace and measure every operation of ``client`` (any provider client); returns it.

    Instrumenting a client twice changes nothing the second time. Call it before the client is
    used concurrently.
    """
    if not isinstance(client, BaseClient):
        raise TypeError(f"instrument needs a paykit_async provider client, not {type(client).__name__}")
    if any(isinstance(layer, OperationLayer) for layer in client.pipeline.middlewares):
        return client
    tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
    meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
    duration = meter.create_histogram(
        DURATION_METRIC,
        unit="s",
        description="Duration of paykit operations, retries and settle queries included.",
        explicit_bucket_boundaries_advisory=_BUCKETS,
    )
    attempts = meter.create_counter(
        ATTEMPTS_METRIC, unit="{attempt}", description="HTTP attempts sent to the provider, by outcome."
    )
    client.add_middleware(OperationLayer(tracer, duration), outer=True)
    client.add_middleware(AttemptLayer(tracer, attempts))
    return client


class OperationLayer:
    """The outermost middleware: one span and one duration measurement per operation."""

    def __init__(self, tracer: Tracer, duration: Histogram) -> None:
        self._tracer = tracer
        self._duration = duration

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        attributes: Attributes = {"paykit.provider": operation.provider, "paykit.operation": operation.name}
        if operation.refund_no:
            attributes["paykit.refund_no"] = operation.refund_no
        progress = _Progress(refund_no=operation.refund_no)
        token = _PROGRESS.set(progress)
        started = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"paykit {operation.provider}.{operation.name}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                outcome = await call_next(operation)
            except BaseException as error:
                label, failure = _failure(error)
                span.set_attributes(
                    {**failure, "paykit.outcome": label, "paykit.attempts": progress.attempts}
                )
                if isinstance(error, Exception):
                    span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR))
                self._measure(operation, started, label, failure)
                if isinstance(error, RefundOutcomeUnknown) and error.refund_no:
                    progress.refund_no = error.refund_no
                raise
            else:
                # A replayed or resumed refund carries the recorded number, not the one minted now.
                replied = outcome.fields.get(operation.refund_no_field or "")
                if isinstance(replied, str) and replied:
                    progress.refund_no = replied
            finally:
                _PROGRESS.reset(token)
                if progress.refund_no:
                    span.set_attribute("paykit.refund_no", progress.refund_no)
            label = "replayed" if outcome.replayed else "settled" if outcome.settled_by_query else "success"
            span.set_attributes({"paykit.outcome": label, "paykit.attempts": progress.attempts})
            self._measure(operation, started, label, {})
            return outcome

    def _measure(self, operation: Operation, started: float, label: str, failure: Mapping[str, str]) -> None:
        attributes: Attributes = {
            "paykit.provider": operation.provider,
            "paykit.operation": operation.name,
            "paykit.outcome": label,
        }
        if "error.type" in failure:
            attributes["error.type"] = failure["error.type"]
        self._duration.record(time.perf_counter() - started, attributes)


class AttemptLayer:
    """The innermost middleware: one HTTP client span and one count per attempt."""

    #: It awaits nothing but ``call_next``: an attempt through it stays bounded by the transport.
    passes_attempt_bound = True

    def __init__(self, tracer: Tracer, attempts: Counter) -> None:
        self._tracer = tracer
        self._attempts = attempts

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        progress = _PROGRESS.get()
        if progress is not None:
            progress.attempts += 1
            progress.refund_no = operation.refund_no or progress.refund_no
        attributes: Attributes = dict(_server(operation.url))
        if operation.attempt > 1:
            attributes["http.request.resend_count"] = operation.attempt - 1
        counted: Attributes = {"paykit.provider": operation.provider, "paykit.operation": operation.name}
        with (
            self._tracer.start_as_current_span(
                "HTTP",
                kind=SpanKind.CLIENT,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
            recording_wire() as wire,
        ):
            try:
                outcome = await call_next(operation)
            except BaseException as error:
                failure = _wire_failure(error, wire.status_code)
                span.set_attributes(failure)
                span.set_status(Status(StatusCode.ERROR))
                if isinstance(error, Exception):
                    span.record_exception(error)
                self._attempts.add(1, {**counted, **failure, "paykit.outcome": _attempt_label(error)})
                raise
            finally:
                if wire.method is not None:
                    span.update_name(wire.method)
                    span.set_attribute("http.request.method", wire.method)
                if wire.url is not None:
                    span.set_attributes(_server(wire.url))
                if wire.status_code is not None:
                    span.set_attribute("http.response.status_code", wire.status_code)
                if wire.request_id is not None:
                    span.set_attribute("paykit.request_id", wire.request_id)
            self._attempts.add(1, {**counted, "paykit.outcome": "success"})
            return outcome


@functools.lru_cache(maxsize=256)
def _server_items(url: str) -> tuple[tuple[str, str | int], ...]:
    return tuple(_server_attributes(url).items())


def _server(url: str) -> Attributes:
    """``url.full`` without query, fragment or credentials, and the server's address and port
    (parsed once per URL: a client talks to a handful)."""
    return dict(_server_items(url))


def _server_attributes(url: str) -> Attributes:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:
        port = 0
    shown = f"[{host}]" if ":" in host else host
    attributes: Attributes = {
        "url.full": f"{parts.scheme}://{shown}:{port}{parts.path}",
        "server.address": host,
    }
    if port:
        attributes["server.port"] = port
    return attributes


def _failure(error: BaseException) -> tuple[str, dict[str, str]]:
    """The operation's outcome label and the error attributes for ``error``."""
    if not isinstance(error, Exception):
        return "cancelled", {}
    attributes = {"error.type": type(error).__qualname__}
    if isinstance(error, ProviderError):
        attributes["paykit.error.code"] = error.code[:64]
    if isinstance(error, RefundOutcomeUnknown) or (isinstance(error, PaykitError) and error.outcome_unknown):
        return "unknown", attributes
    if isinstance(error, ProviderError):
        return "refused", attributes
    return "error", attributes


def _wire_failure(error: BaseException, status_code: int | None) -> dict[str, str]:
    if not isinstance(error, Exception):
        return {}
    if status_code is not None and status_code >= 400:
        return {"error.type": str(status_code)}
    return _failure(error)[1]


def _attempt_label(error: BaseException) -> str:
    return "error" if isinstance(error, Exception) else "cancelled"
