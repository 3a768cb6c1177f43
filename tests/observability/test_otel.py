"""``paykit_async.otel.instrument``: spans and metrics exported through the OpenTelemetry SDK's
in-memory span exporter and metric reader, for refunds against the in-process simulator."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from paykit_async import (
    EftPayClient,
    HttpxTransport,
    MemoryStore,
    PayJSClient,
    ProviderError,
    RetryPolicy,
    WeChatPayClient,
    WeChatPayV3Client,
)
from paykit_async.otel import ATTEMPTS_METRIC, DURATION_METRIC, instrument
from paykit_async.simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    Simulator,
    SimulatorConfig,
)

pytestmark = pytest.mark.anyio

NO_WAIT = RetryPolicy(initial_delay=0.0, max_delay=0.0)


@attrs.define
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


class FirstAttemptBusy(httpx.MockTransport):
    """The simulator in process, except that the first request gets HTTP 503; records bodies.
    (A MockTransport, so that clients know it is in process: no network, no TLS.)"""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(self._answer)
        self._inner = sim.httpx_transport()
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    async def _answer(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(await request.aread())
        self.headers.append(dict(request.headers))
        if len(self.bodies) == 1:
            return httpx.Response(503, content=b"busy")
        return await self._inner.handle_async_request(request)


@attrs.frozen
class Case:
    provider: str
    make: Callable[[Simulator, httpx.AsyncBaseTransport], Any]
    refund: Callable[[Any], Any]
    secrets: tuple[str, ...]


def _v3(sim: Simulator, transport: httpx.AsyncBaseTransport) -> WeChatPayV3Client:
    return WeChatPayV3Client(
        **sim.wechatpay_v3_keys().client_kwargs(),
        base_url=sim.base_url("wechatpay-v3"),
        transport=HttpxTransport(httpx_transport=transport),
        retry=NO_WAIT,
    )


CASES = {
    "wechatpay": Case(
        "wechatpay",
        lambda sim, t: WeChatPayClient(
            DEMO_WECHATPAY.appid,
            DEMO_WECHATPAY.mch_id,
            DEMO_WECHATPAY.api_key,
            base_url=sim.base_url("wechatpay"),
            transport=HttpxTransport(httpx_transport=t),
            retry=NO_WAIT,
        ),
        lambda c: c.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, out_refund_no="R1"),
        (DEMO_WECHATPAY.api_key,),
    ),
    "wechatpay-v3": Case(
        "wechatpay-v3",
        _v3,
        lambda c: c.refund(refund=100, total=1000, out_trade_no="T1", out_refund_no="R1"),
        (),  # the keys are added from the simulator in the test
    ),
    "payjs": Case(
        "payjs",
        lambda sim, t: PayJSClient(
            DEMO_PAYJS.mchid,
            DEMO_PAYJS.key,
            base_url=sim.base_url("payjs"),
            transport=HttpxTransport(httpx_transport=t),
            retry=NO_WAIT,
        ),
        lambda c: c.refund(payjs_order_id="R1"),
        (DEMO_PAYJS.key,),
    ),
    "eftpay": Case(
        "eftpay",
        lambda sim, t: EftPayClient(
            DEMO_EFTPAY.user_confirm_key,
            DEMO_EFTPAY.secret,
            base_url=sim.base_url("eftpay"),
            transport=HttpxTransport(httpx_transport=t),
            retry=NO_WAIT,
        ),
        lambda c: c.refund(
            paytype="WeChat",
            payment_type="WECHATCN",
            out_trade_no="T1",
            transaction_amount="1.00",
            total_fee="10.00",
            refund_no="R1",
        ),
        (DEMO_EFTPAY.secret,),
    ),
}


def everything_exported(telemetry: Telemetry) -> list[str]:
    """Every attribute value (spans, events, metric points) and every span and event name."""
    texts: list[str] = []
    for span in telemetry.finished():
        texts.append(span.name)
        texts.extend(str(v) for v in (span.attributes or {}).values())
        for event in span.events:
            texts.append(event.name)
            texts.extend(str(v) for v in (event.attributes or {}).values())
    for name in (DURATION_METRIC, ATTEMPTS_METRIC):
        for point in telemetry.points(name):
            texts.extend(str(v) for v in point.attributes.values())
    return texts


@pytest.fixture
def sim() -> Simulator:
    return Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))


@pytest.mark.parametrize("name", list(CASES))
async def test_a_refund_retried_once_then_succeeding(name: str, sim: Simulator, telemetry: Telemetry) -> None:
    case = CASES[name]
    if name == "eftpay":
        sim.add_eftpay_order("T1", "10.00")
    transport = FirstAttemptBusy(sim)
    client = case.make(sim, transport)
    assert instrument(client, telemetry.tracer_provider, telemetry.meter_provider) is client
    async with client:
        result = await case.refund(client)
    assert result.attempts == 2

    spans = telemetry.finished()
    (operation,) = [s for s in spans if s.kind is SpanKind.INTERNAL]
    attempts = sorted((s for s in spans if s.kind is SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert operation.name == f"paykit {name}.refund"
    assert dict(operation.attributes or {}) == {
        "paykit.provider": name,
        "paykit.operation": "refund",
        "paykit.refund_no": "R1",
        "paykit.attempts": 2,
        "paykit.outcome": "success",
    }
    assert operation.status.status_code is StatusCode.UNSET
    assert len(attempts) == 2
    base = {
        "wechatpay": "/wechatpay/secapi/pay/refund",
        "wechatpay-v3": "/wechatpay-v3/v3/refund/domestic/refunds",
    }
    path = base.get(name, "/payjs/api/refund" if name == "payjs" else "/eftpay/Servlet/JSAPIService.do")
    common = {
        "http.request.method": "POST",
        "server.address": "paykit-simulator.invalid",
        "server.port": 80,
        "url.full": f"http://paykit-simulator.invalid:80{path}",
    }
    first, second = (dict(s.attributes or {}) for s in attempts)
    assert first == {**common, "http.response.status_code": 503, "error.type": "503"}
    second.pop("paykit.request_id", None)
    assert second == {**common, "http.response.status_code": 200, "http.request.resend_count": 1}
    assert all(s.name == "POST" and s.parent is not None for s in attempts)
    assert all(s.parent.span_id == operation.context.span_id for s in attempts if s.parent)
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[1].status.status_code is StatusCode.UNSET

    (duration,) = telemetry.points(DURATION_METRIC)
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "paykit.provider": name,
        "paykit.operation": "refund",
        "paykit.outcome": "success",
    }
    counted = {tuple(sorted(p.attributes.items())): p.value for p in telemetry.points(ATTEMPTS_METRIC)}
    base_attributes = (("paykit.operation", "refund"), ("paykit.provider", name))
    assert counted == {
        tuple(sorted((*base_attributes, ("paykit.outcome", "success")))): 1,
        tuple(sorted((*base_attributes, ("paykit.outcome", "error"), ("error.type", "503")))): 1,
    }

    secrets = list(case.secrets)
    if name == "wechatpay-v3":
        keys = sim.wechatpay_v3_keys()
        secrets += [keys.apiv3_key, *keys.private_key.decode().splitlines()[1:-1]]
        secrets += [h["authorization"].split('signature="')[1].split('"')[0] for h in transport.headers]
    for body in transport.bodies:
        if body.startswith(b"<xml>"):
            secrets.append(body.split(b"<sign>")[1].split(b"</sign>")[0].decode().removeprefix("<![CDATA["))
        elif body.startswith(b"{"):
            document = json.loads(body)
            secrets.extend(str(document[k]) for k in ("sign",) if k in document)
        if body:
            secrets.append(body.decode())
    assert secrets
    exported = everything_exported(telemetry)
    for secret in secrets:
        assert all(secret not in text for text in exported), secret[:12]


async def test_v3_attempt_spans_carry_the_request_id(sim: Simulator, telemetry: Telemetry) -> None:
    client = instrument(_v3(sim, sim.httpx_transport()), telemetry.tracer_provider, telemetry.meter_provider)
    async with client:
        result = await client.refund(refund=100, total=1000, out_trade_no="T1", out_refund_no="R1")
    (attempt,) = [s for s in telemetry.finished() if s.kind is SpanKind.CLIENT]
    assert result.request_id is not None
    assert (attempt.attributes or {})["paykit.request_id"] == result.request_id


async def test_a_refusal_is_refused_with_the_provider_code(sim: Simulator, telemetry: Telemetry) -> None:
    sim.set_balance("wechatpay", 0)
    client = instrument(
        CASES["wechatpay"].make(sim, sim.httpx_transport()),
        telemetry.tracer_provider,
        telemetry.meter_provider,
    )
    async with client:
        with pytest.raises(ProviderError) as refused:
            await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, out_refund_no="R1")
    (operation,) = [s for s in telemetry.finished() if s.kind is SpanKind.INTERNAL]
    attributes = dict(operation.attributes or {})
    assert attributes["paykit.outcome"] == "refused"
    assert attributes["error.type"] == type(refused.value).__qualname__
    assert attributes["paykit.error.code"] == "NOTENOUGH"
    assert attributes["paykit.attempts"] == 1
    assert operation.status.status_code is StatusCode.ERROR
    assert [e.name for e in operation.events] == ["exception"]
    (duration,) = telemetry.points(DURATION_METRIC)
    assert duration.attributes["paykit.outcome"] == "refused"
    assert duration.attributes["error.type"] == type(refused.value).__qualname__
    assert all(DEMO_WECHATPAY.api_key not in text for text in everything_exported(telemetry))


async def test_an_unknown_outcome_settled_by_query_shows_the_query_as_a_child(
    sim: Simulator, telemetry: Telemetry
) -> None:
    sim.set_faults(FaultPlan(rules=(FaultRule(provider="wechatpay", endpoint="refund", drop_after=1.0),)))
    client = CASES["wechatpay"].make(sim, sim.httpx_transport())
    client = instrument(client, telemetry.tracer_provider, telemetry.meter_provider)
    async with client:
        result = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, out_refund_no="R1")
    assert result.settled_by_query
    spans = {s.name: s for s in telemetry.finished() if s.kind is SpanKind.INTERNAL}
    refund, query = spans["paykit wechatpay.refund"], spans["paykit wechatpay.query_refund"]
    assert (refund.attributes or {})["paykit.outcome"] == "settled"
    assert (refund.attributes or {})["paykit.attempts"] == 4
    assert query.parent is not None
    assert query.parent.span_id == refund.context.span_id
    assert (query.attributes or {})["paykit.outcome"] == "success"
    assert "paykit.refund_no" not in (query.attributes or {})


async def test_a_replay_from_the_idempotency_store_sends_nothing(
    sim: Simulator, telemetry: Telemetry
) -> None:
    client = WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
        idempotency_store=MemoryStore(),
    )
    instrument(client, telemetry.tracer_provider, telemetry.meter_provider)
    instrument(client, telemetry.tracer_provider, telemetry.meter_provider)  # a second time: no change
    async with client:
        first = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, idempotency_key="k")
        again = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, idempotency_key="k")
    assert again.replayed
    operations = [s for s in telemetry.finished() if s.kind is SpanKind.INTERNAL]
    assert [(s.attributes or {})["paykit.outcome"] for s in operations] == ["success", "replayed"]
    assert [(s.attributes or {})["paykit.attempts"] for s in operations] == [1, 0]
    assert [(s.attributes or {})["paykit.refund_no"] for s in operations] == [first.out_refund_no] * 2
    assert len([s for s in telemetry.finished() if s.kind is SpanKind.CLIENT]) == 1


async def test_without_an_sdk_the_api_alone_is_a_no_op(sim: Simulator) -> None:
    client = instrument(CASES["wechatpay"].make(sim, sim.httpx_transport()))
    async with client:
        result = await client.refund(out_trade_no="T1", total_fee=1000, refund_fee=100, out_refund_no="R1")
    assert result.out_refund_no == "R1"


def test_only_provider_clients_can_be_instrumented() -> None:
    with pytest.raises(TypeError, match="provider client"):
        instrument(object())  # type: ignore[type-var]
