"""Middleware order (retry outside, user middlewares once per attempt) and secret-free logging."""

from __future__ import annotations

import logging

import pytest

from paykit_async.client_base import BaseClient
from paykit_async.codecs import decode_form, encode_form
from paykit_async.errors import HTTPStatusError, ProviderError, SignatureError, TransportError
from paykit_async.pipeline import (
    Exchange,
    FakeClock,
    Handler,
    LoggingMiddleware,
    Middleware,
    Operation,
    Outcome,
    Pipeline,
    RetryMiddleware,
    RetryPolicy,
)
from paykit_async.signing import KeyedMd5Signer
from paykit_async.transport import ClientCertificate, WireRequest, WireResponse

from ..servers import RecordedRequest, Reply, Responder, ScriptedServer, TLSFiles
from .transports import EVERY_LOOP_AND_TRANSPORT, TRANSPORTS

pytestmark = pytest.mark.anyio

FIELD_SENTINEL = "FIELD-VALUE-SENTINEL-7731"
KEY_SENTINEL = "API-KEY-SENTINEL-0042"


def _operation(**overrides: object) -> Operation:
    options: dict[str, object] = {
        "provider": "demo",
        "name": "refund",
        "url": "https://127.0.0.1/refund",
        "fields": {"out_refund_no": "R1", "refund_desc": FIELD_SENTINEL},
        "refund_no_field": "out_refund_no",
    }
    options.update(overrides)
    return Operation(**options)  # type: ignore[arg-type]


def _recording_middleware(name: str, events: list[str]) -> Middleware:
    async def middleware(operation: Operation, call_next: Handler) -> Outcome:
        events.append(f"{name}>{operation.attempt}")
        try:
            outcome = await call_next(operation)
        except Exception as error:
            events.append(f"{name}!{operation.attempt}:{type(error).__name__}")
            raise
        events.append(f"{name}<{operation.attempt}")
        return outcome

    return middleware


async def test_retry_is_outside_and_user_middlewares_run_once_per_attempt() -> None:
    events: list[str] = []
    clock = FakeClock()

    async def handler(operation: Operation) -> Outcome:
        events.append(f"send#{operation.attempt} {operation.fields['out_refund_no']}")
        if operation.attempt < 3:
            raise TransportError("connection reset", sent=None)
        return Outcome(fields={"result": "ok"})

    async def retry_observer(operation: Operation, call_next: Handler) -> Outcome:
        # Outermost: sees the whole operation once, whatever the number of attempts.
        events.append("outer>")
        outcome = await call_next(operation)
        events.append(f"outer< attempts={outcome.attempts}")
        return outcome

    pipeline = Pipeline(
        [
            retry_observer,
            RetryMiddleware(RetryPolicy(attempts=5), clock=clock),
            _recording_middleware("first", events),
            _recording_middleware("second", events),
        ],
        handler,
    )

    outcome = await pipeline(_operation())

    assert events == [
        "outer>",
        "first>1",
        "second>1",
        "send#1 R1",
        "second!1:TransportError",
        "first!1:TransportError",
        "first>2",
        "second>2",
        "send#2 R1",
        "second!2:TransportError",
        "first!2:TransportError",
        "first>3",
        "second>3",
        "send#3 R1",
        "second<3",
        "first<3",
        "outer< attempts=3",
    ]
    assert outcome.attempts == 3
    assert len(clock.sleeps) == 2


async def test_non_retryable_errors_pass_through_user_middlewares_once() -> None:
    events: list[str] = []

    async def handler(operation: Operation) -> Outcome:
        events.append(f"send#{operation.attempt}")
        raise SignatureError("reply signature does not verify")

    pipeline = Pipeline(
        [RetryMiddleware(RetryPolicy(attempts=5), clock=FakeClock()), _recording_middleware("mw", events)],
        handler,
    )
    with pytest.raises(Exception) as caught:
        await pipeline(_operation(refund_no_field=None))
    assert isinstance(caught.value, SignatureError)
    assert events == ["mw>1", "send#1", "mw!1:SignatureError"]


# --- the same order through BaseClient against the real server --------------------------------


class _FormDialect:
    """A tiny signed-form protocol: 5xx is retryable, 200 carries form fields."""

    def __init__(self, signer: KeyedMd5Signer) -> None:
        self.signer = signer

    def encode(self, operation: Operation) -> WireRequest:
        fields = {**operation.fields, "nonce": f"n{operation.attempt}"}
        fields["sign"] = self.signer.sign(fields)
        return WireRequest(
            url=operation.url,
            headers={"content-type": "application/x-www-form-urlencoded"},
            content=encode_form(fields),
        )

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        if response.status_code != 200:
            raise HTTPStatusError(
                f"HTTP {response.status_code}", status_code=response.status_code, body=response.content
            )
        fields = decode_form(response.content)
        if fields.get("code") not in (None, "OK"):
            raise ProviderError(fields["code"], fields.get("message", ""), raw=fields)
        return Outcome(fields=fields, status_code=response.status_code)


class _DemoClient(BaseClient):
    provider = "demo"

    async def refund(self, refund_no: str) -> Outcome:
        return await self._call(
            _operation(
                url=self._url("/refund"),
                fields={
                    "out_refund_no": refund_no,
                    "refund_desc": FIELD_SENTINEL,
                },
            )
        )


def _flaky_then_ok(failures: int) -> Responder:
    seen: list[RecordedRequest] = []

    def respond(request: RecordedRequest) -> Reply:
        seen.append(request)
        if len(seen) <= failures:
            return (503, {}, b"busy")
        return (200, {}, b"code=OK&refund_id=9")

    return respond


@pytest.fixture
def p12_certificate(tls_files: TLSFiles) -> ClientCertificate:
    return ClientCertificate.from_pkcs12(tls_files.client_p12_file, tls_files.client_p12_password)


@EVERY_LOOP_AND_TRANSPORT
async def test_base_client_order_over_mutual_tls(
    scripted: ScriptedServer, tls_files: TLSFiles, p12_certificate: ClientCertificate, transport_name: str
) -> None:
    events: list[str] = []
    scripted.app.respond = _flaky_then_ok(2)
    async with _DemoClient(
        dialect=_FormDialect(KeyedMd5Signer(key=KEY_SENTINEL)),
        base_url=scripted.base_url,
        cert=p12_certificate,
        ca_file=tls_files.ca_file,
        middleware=[_recording_middleware("user", events)],
        transport=TRANSPORTS[transport_name](),
        clock=FakeClock(),
    ) as client:
        outcome = await client.refund("R-42")

    assert outcome.fields["refund_id"] == "9"
    assert outcome.attempts == 3
    assert events == [
        "user>1",
        "user!1:HTTPStatusError",
        "user>2",
        "user!2:HTTPStatusError",
        "user>3",
        "user<3",
    ]
    bodies = [decode_form(r.body) for r in scripted.app.requests]
    assert [b["out_refund_no"] for b in bodies] == ["R-42"] * 3
    assert [b["nonce"] for b in bodies] == ["n1", "n2", "n3"]


# --- logging -----------------------------------------------------------------------------------


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


async def test_logging_middleware_never_shows_fields_keys_or_passwords(
    scripted: ScriptedServer,
    tls_files: TLSFiles,
    p12_certificate: ClientCertificate,
    all_logs: pytest.LogCaptureFixture,
) -> None:
    scripted.app.respond = _flaky_then_ok(1)
    async with _DemoClient(
        dialect=_FormDialect(KeyedMd5Signer(key=KEY_SENTINEL)),
        base_url=scripted.base_url,
        cert=p12_certificate,
        ca_file=tls_files.ca_file,
        middleware=[LoggingMiddleware()],
        clock=FakeClock(),
    ) as client:
        await client.refund("R-43")
        scripted.app.reply_with(200, {}, f"code=NOTENOUGH&message={FIELD_SENTINEL}".encode())
        with pytest.raises(ProviderError):
            await client.refund("R-44")

    logged = _everything_logged(all_logs)
    lines = [r.getMessage() for r in all_logs.records if r.name == "paykit_async"]
    assert any("demo.refund attempt 1 refund_no=R-43 failed" in line for line in lines)
    assert any("demo.refund attempt 2 refund_no=R-43 ok" in line for line in lines)
    assert any("refund_no=R-44 failed" in line and "NOTENOUGH" in line for line in lines)
    for secret in (FIELD_SENTINEL, KEY_SENTINEL, tls_files.client_p12_password):
        assert secret not in logged
    assert p12_certificate.password is not None
    assert p12_certificate.password.decode() not in logged


class _FormattingHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        record.getMessage()


class _CountingText(str):
    """A string that counts how often it is formatted."""

    formatted = 0

    def __str__(self) -> str:
        type(self).formatted += 1
        return str.__str__(self)


@pytest.mark.parametrize("enabled", [False, True])
async def test_logging_middleware_formats_nothing_when_disabled(enabled: bool) -> None:
    logger = logging.getLogger(f"paykit_async.test.disabled.{enabled}")
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL)
    logger.propagate = False
    handler = _FormattingHandler()
    logger.addHandler(handler)
    _CountingText.formatted = 0

    async def ok(_operation: Operation) -> Outcome:
        return Outcome(fields={})

    async def failing(_operation: Operation) -> Outcome:
        raise ProviderError("SYSTEMERROR", "busy")

    try:
        middleware = LoggingMiddleware(logger)
        operation = _operation(provider=_CountingText("demo"), name=_CountingText("refund"))
        await middleware(operation, ok)
        with pytest.raises(ProviderError):
            await middleware(operation, failing)
    finally:
        logger.removeHandler(handler)

    if enabled:
        assert _CountingText.formatted > 0
    else:
        assert _CountingText.formatted == 0


# --- retry policy, lightly (tests/reliability owns the depth) ---------------------------------


async def test_refund_giving_up_with_unknown_outcome_keeps_the_refund_number() -> None:
    from paykit_async.errors import RefundOutcomeUnknown

    sent: list[str] = []

    async def handler(operation: Operation) -> Outcome:
        sent.append(operation.fields["out_refund_no"])
        raise TransportError("timed out", sent=None)

    pipeline = Pipeline([RetryMiddleware(RetryPolicy(attempts=3), clock=FakeClock())], handler)
    with pytest.raises(RefundOutcomeUnknown) as caught:
        await pipeline(_operation())
    assert caught.value.refund_no == "R1"
    assert sent == ["R1", "R1", "R1"]


# -- which attempts need a deadline scope of their own --------------------------------------------


class _BoundedTransport:
    """Answers at once and, like the real transports, states ``attempt_bound`` (a total timeout)."""

    def __init__(self, bound: float | None) -> None:
        self.attempt_bound = bound

    def configure(self, settings: object) -> None:
        """Nothing to set up."""

    async def send(self, request: WireRequest) -> WireResponse:
        return WireResponse(status_code=200, headers={}, content=b"")

    async def aclose(self) -> None:
        """Nothing to close."""


class _AnswerDialect:
    def encode(self, operation: Operation) -> WireRequest:
        return WireRequest(url=operation.url, headers={}, content=b"")

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        return Outcome(fields={"out_refund_no": "R1"})


async def _passing(operation: Operation, call_next: Handler) -> Outcome:
    return await call_next(operation)


class _DeclaredPassing:
    """A middleware that awaits only ``call_next`` and says so."""

    passes_attempt_bound = True

    async def __call__(self, operation: Operation, call_next: Handler) -> Outcome:
        return await call_next(operation)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("inner", "bound", "opened"),
    [
        pytest.param([], 30.0, 0, id="no middleware"),
        pytest.param([LoggingMiddleware()], 30.0, 0, id="logging middleware"),
        pytest.param([_DeclaredPassing(), LoggingMiddleware()], 30.0, 0, id="two declared"),
        pytest.param([_passing], 30.0, 1, id="undeclared middleware"),
        pytest.param([_DeclaredPassing(), _passing], 30.0, 1, id="undeclared further in"),
        pytest.param([_passing, _DeclaredPassing()], 30.0, 1, id="undeclared further out"),
        pytest.param([LoggingMiddleware()], None, 1, id="declared, no total timeout"),
        pytest.param([LoggingMiddleware()], 59.5, 1, id="declared, deadline too near"),
    ],
)
async def test_only_middlewares_that_declare_it_keep_the_transport_bound(
    anyio_backend: str, scopes: list[float], inner: list[Middleware], bound: float | None, opened: int
) -> None:
    # The transport bounds each send; a middleware in between keeps that bound only when it says
    # it awaits nothing else (passes_attempt_bound), and only a bound that ends well before the
    # deadline (60 s) lets the attempt run without a deadline scope of its own.
    exchange = Exchange(dialect=_AnswerDialect(), transport=_BoundedTransport(bound))
    pipeline = Pipeline([RetryMiddleware(RetryPolicy(deadline=60)), *inner], exchange)
    outcome = await pipeline(_operation())
    assert outcome.fields == {"out_refund_no": "R1"}
    assert len(scopes) == opened


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_otel_attempt_layer_keeps_the_transport_bound(
    anyio_backend: str, scopes: list[float]
) -> None:
    pytest.importorskip("opentelemetry")
    from opentelemetry import metrics, trace

    from paykit_async.otel import AttemptLayer

    layer = AttemptLayer(trace.get_tracer("test"), metrics.get_meter("test").create_counter("attempts"))
    exchange = Exchange(dialect=_AnswerDialect(), transport=_BoundedTransport(30.0))
    pipeline = Pipeline([RetryMiddleware(RetryPolicy(deadline=60)), layer], exchange)
    assert (await pipeline(_operation())).fields == {"out_refund_no": "R1"}
    assert scopes == []
