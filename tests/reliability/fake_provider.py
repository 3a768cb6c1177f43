"""A small fake refund provider with a ledger and seeded fault injection, and a client for it.

Like the real providers it is idempotent by refund number: one number executes at most once; the
same number with the same order and amount returns the same refund, with a different amount it
is refused (``REFUND_NO_MISMATCH``). A refund larger than the order is refused (``NOT_ENOUGH``).

Faults hit a share of attempts, chosen by a seeded RNG:

- before doing the work: HTTP 502, or the retryable provider code ``SYSTEMERROR``;
- after doing the work: HTTP 500, a reply cut off mid-body, or (in-process only) a dropped
  connection.

The same :class:`FakeProvider` is reachable in-process (:class:`FakeTransport`) or over HTTP
(the provider is an ASGI app, served by ``tests.servers.serve_asgi`` so its ledger lives in the test
process while a child process sends refunds).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import threading
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import anyio.lowlevel
import attrs

from paykit_async.errors import DecodeError, HTTPStatusError, ProviderError, TransportError
from paykit_async.pipeline.clock import Clock
from paykit_async.pipeline.core import Exchange, Operation, Outcome, Pipeline
from paykit_async.pipeline.idempotency import IdempotencyMiddleware
from paykit_async.pipeline.retry import RetryBudget, RetryMiddleware, RetryPolicy, parse_retry_after
from paykit_async.pipeline.stores.base import IdempotencyStore
from paykit_async.refund_numbers import new_refund_no
from paykit_async.transport.base import Transport
from paykit_async.transport.wire import TransportSettings, WireRequest, WireResponse

BEFORE_WORK_FAULTS = ("http_502", "systemerror")
AFTER_WORK_FAULTS = ("http_500", "cut_reply", "drop")


@attrs.frozen(kw_only=True)
class Executed:
    """One refund the provider executed (the ledger's unit)."""

    refund_no: str
    order_id: str
    amount: int
    refund_id: str


@attrs.frozen(kw_only=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"content-type": "application/json"})
    drop: bool = False
    """Close the connection instead of replying (the work is done)."""
    hang: bool = False
    """Hold the reply until released (the work is done): a client killed now never hears back."""


class FakeProvider:
    """The provider: orders, a ledger of executed refunds, and fault injection. Thread-safe."""

    def __init__(
        self,
        *,
        orders: Mapping[str, int],
        fault_rate: float = 0.0,
        seed: int = 0,
        faults: tuple[str, ...] = BEFORE_WORK_FAULTS + AFTER_WORK_FAULTS,
    ) -> None:
        self.orders = dict(orders)
        self.fault_rate = fault_rate
        self.faults = faults
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.ledger: dict[str, Executed] = {}
        self.requests: collections.Counter[str] = collections.Counter()
        self.fault_counts: collections.Counter[str] = collections.Counter()
        self.hang_at_execution: int | None = None
        self.hang_release = threading.Event()
        self.hung = threading.Event()
        self.hung_refund: Executed | None = None

    # -- what tests look at --------------------------------------------------------------------

    def executions_by_order(self) -> dict[str, list[Executed]]:
        with self._lock:
            by_order: dict[str, list[Executed]] = collections.defaultdict(list)
            for executed in self.ledger.values():
                by_order[executed.order_id].append(executed)
            return dict(by_order)

    def executed_count(self) -> int:
        with self._lock:
            return len(self.ledger)

    # -- the provider --------------------------------------------------------------------------

    def handle(self, path: str, body: bytes) -> Reply:
        try:
            request = json.loads(body)
        except ValueError:
            return _json(400, {"error": "BAD_REQUEST", "message": "not JSON"})
        with self._lock:
            self.requests[path] += 1
            fault = self._rng.choice(self.faults) if self._rng.random() < self.fault_rate else None
            if fault is not None:
                self.fault_counts[fault] += 1
            if fault == "http_502":
                return Reply(status=502, body=b"<html>bad gateway</html>", headers={"retry-after": "1"})
            if fault == "systemerror":
                return _json(200, {"error": "SYSTEMERROR", "message": "busy, try again"})
            if path == "/refund":
                reply = self._refund(request)
            elif path == "/query":
                reply = self._query(request)
            else:
                return _json(404, {"error": "NOT_FOUND", "message": path})
            if fault == "http_500":
                return Reply(status=500, body=b"internal error", hang=reply.hang)
            if fault == "cut_reply":
                return attrs.evolve(reply, body=reply.body[: len(reply.body) // 2])
            if fault == "drop":
                return attrs.evolve(reply, drop=True)
            return reply

    def _refund(self, request: Mapping[str, str]) -> Reply:
        refund_no, order_id, amount = request["refund_no"], request["order_id"], int(request["amount"])
        existing = self.ledger.get(refund_no)
        if existing is not None:
            if (existing.order_id, existing.amount) != (order_id, amount):
                return _json(200, {"error": "REFUND_NO_MISMATCH", "message": "different refund"})
            return _json(200, _success(existing))
        if order_id not in self.orders:
            return _json(200, {"error": "ORDER_NOT_FOUND", "message": order_id})
        if amount > self.orders[order_id]:
            return _json(200, {"error": "NOT_ENOUGH", "message": "refund exceeds the order"})
        executed = Executed(
            refund_no=refund_no, order_id=order_id, amount=amount, refund_id=f"F{len(self.ledger) + 1:08d}"
        )
        self.ledger[refund_no] = executed
        hang = self.hang_at_execution is not None and len(self.ledger) == self.hang_at_execution
        if hang:
            self.hung_refund = executed
        return attrs.evolve(_json(200, _success(executed)), hang=hang)

    def _query(self, request: Mapping[str, str]) -> Reply:
        executed = self.ledger.get(request["refund_no"])
        if executed is None:
            return _json(200, {"status": "NOT_FOUND", "refund_no": request["refund_no"]})
        return _json(200, _success(executed))

    # -- over HTTP -----------------------------------------------------------------------------

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """The provider is an ASGI app (run by uvicorn on asyncio)."""
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        reply = self.handle(scope["path"], body)
        if reply.hang:
            self.hung.set()
            while not self.hang_release.is_set():  # noqa: ASYNC110 - a threading.Event, set by the test
                await asyncio.sleep(0.02)
            return
        headers = [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


def _json(status: int, document: Mapping[str, str]) -> Reply:
    return Reply(status=status, body=json.dumps(document).encode())


def _success(executed: Executed) -> dict[str, str]:
    return {
        "status": "SUCCESS",
        "refund_no": executed.refund_no,
        "refund_id": executed.refund_id,
        "order_id": executed.order_id,
        "amount": str(executed.amount),
    }


class FakeTransport:
    """Calls a :class:`FakeProvider` in-process; a dropped connection is a ``TransportError``."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    def configure(self, settings: TransportSettings) -> None:
        return None

    async def send(self, request: WireRequest) -> WireResponse:
        await anyio.lowlevel.checkpoint()
        path = "/" + request.url.split("/", 3)[-1]
        reply = self.provider.handle(path, request.content)
        await anyio.lowlevel.checkpoint()
        if reply.drop:
            raise TransportError("connection reset by peer", sent=None)
        return WireResponse(status_code=reply.status, headers=dict(reply.headers), content=reply.body)

    async def aclose(self) -> None:
        return None


class FakeDialect:
    """JSON in, JSON out; classifies replies the way a real provider dialect does."""

    def encode(self, operation: Operation) -> WireRequest:
        return WireRequest(
            url=operation.url,
            headers={"content-type": "application/json"},
            content=json.dumps(dict(operation.fields), sort_keys=True).encode(),
        )

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        if response.status_code != 200:
            raise HTTPStatusError(
                f"HTTP {response.status_code}",
                status_code=response.status_code,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                body=response.content,
            )
        try:
            document = json.loads(response.content)
        except ValueError:
            raise DecodeError("the reply was cut off", retryable=True, after_send=True) from None
        if "error" in document:
            code = document["error"]
            error = ProviderError(code, document["message"], retryable=code == "SYSTEMERROR", raw=document)
            # Like WeChat's SYSTEMERROR, the provider may or may not have done the work.
            error.outcome_unknown = code == "SYSTEMERROR"
            raise error
        return Outcome(fields=document, status_code=response.status_code)


class FakeRefundClient:
    """A minimal provider client: idempotency → retry → exchange, with a query to settle refunds."""

    def __init__(
        self,
        *,
        base_url: str,
        transport: Transport,
        store: IdempotencyStore | None = None,
        policy: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        lease: float = 120.0,
        middleware: tuple[Any, ...] = (),
    ) -> None:
        self.base_url = base_url
        transport.configure(TransportSettings())
        self.transport = transport
        self.retry = RetryMiddleware(policy or RetryPolicy(), budget=budget, clock=clock, rng=rng)
        exchange = Exchange(dialect=FakeDialect(), transport=transport)
        layers: list[Any] = [IdempotencyMiddleware(store, lease=lease)] if store is not None else []
        self.pipeline = Pipeline([*layers, self.retry, *middleware], exchange)
        self.query_pipeline = Pipeline([self.retry], exchange)

    def refund_operation(
        self, *, order_id: str, amount: int, key: str | None = None, refund_no: str | None = None
    ) -> Operation:
        return Operation(
            provider="fake",
            name="refund",
            url=f"{self.base_url}/refund",
            fields={"order_id": order_id, "amount": str(amount), "refund_no": refund_no or new_refund_no()},
            refund_no_field="refund_no",
            refund_no_generated=refund_no is None,
            idempotency_key=key,
            settle=self._settle,
        )

    async def refund(
        self, *, order_id: str, amount: int, key: str | None = None, refund_no: str | None = None
    ) -> Outcome:
        return await self.pipeline(
            self.refund_operation(order_id=order_id, amount=amount, key=key, refund_no=refund_no)
        )

    async def _settle(self, operation: Operation) -> Outcome | None:
        refund_no = operation.refund_no
        assert refund_no is not None
        outcome = await self.query_pipeline(
            Operation(
                provider="fake", name="query", url=f"{self.base_url}/query", fields={"refund_no": refund_no}
            )
        )
        if outcome.fields.get("status") == "NOT_FOUND":
            return None
        return outcome

    async def aclose(self) -> None:
        await self.transport.aclose()
