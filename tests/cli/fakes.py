"""A tiny in-process provider for refund_many tests: a real BaseClient pipeline over a fake wire.

``LedgerTransport`` plays an idempotent-by-refund-number provider that executes refunds in a
ledger; a request's ``behaviour`` field scripts what happens (succeed, refuse, fail after doing the
work, hang). Everything stays in memory and never sleeps unless told to, so tests are fast.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any, ClassVar

import anyio

from paykit_async.batch import RefundNumberRule
from paykit_async.client_base import BaseClient
from paykit_async.errors import HTTPStatusError, ProviderError
from paykit_async.pipeline import FakeClock, Operation, Outcome, RetryPolicy
from paykit_async.transport.wire import TransportSettings, WireRequest, WireResponse


class JsonDialect:
    """Fields as JSON; a reply ``{"ok": false, "code": ...}`` is a provider refusal."""

    def encode(self, operation: Operation) -> WireRequest:
        body = json.dumps({"op": operation.name, **operation.fields}).encode()
        return WireRequest(url=operation.url, content=body)

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        if response.status_code >= 400:
            raise HTTPStatusError(
                f"HTTP {response.status_code}", status_code=response.status_code, body=response.content
            )
        fields = json.loads(response.content)
        if not fields.pop("ok"):
            raise ProviderError(fields["code"], fields["message"], raw=fields)
        return Outcome(fields=fields, status_code=response.status_code)


class LedgerTransport:
    """The fake provider. ``executions[refund_no]`` counts executed refunds (must stay <= 1).

    ``hang`` requests wait on ``release`` (an Event) so a test can cancel mid-batch.
    """

    def __init__(self) -> None:
        self.executions: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.sends = 0
        self.active = 0
        self.max_active = 0
        self.release = anyio.Event()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[LedgerTransport], bool]) -> None:
        """Wait until ``predicate(self)`` holds (checked whenever a request starts)."""
        while not predicate(self):
            await self._changed.wait()

    def configure(self, settings: TransportSettings) -> None:
        self.settings = settings

    async def send(self, request: WireRequest) -> WireResponse:
        fields = json.loads(request.content)
        self.sends += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self._changed.set()
        self._changed = anyio.Event()
        try:
            return await self._answer(fields)
        finally:
            self.active -= 1

    async def _answer(self, fields: dict[str, str]) -> WireResponse:
        refund_no = fields["out_refund_no"]
        behaviour = fields.get("behaviour", "ok")
        await anyio.lowlevel.checkpoint()
        if behaviour == "hang":
            await self.release.wait()
        if behaviour == "busy_after_lost" and refund_no in self.executions:
            # A retry refused ("busy") after an attempt that did the work but lost its reply.
            return _reply(200, ok=False, code="SYSTEMBUSY", message="busy")
        if behaviour == "refuse":
            return _reply(200, ok=False, code="NOTENOUGH", message="balance too low")
        self.seen[refund_no] += 1
        if behaviour in ("lost", "busy_after_lost"):
            # Does the work, then the reply is lost (a 500) every time.
            self.executions[refund_no] = 1
            return _reply(500)
        if behaviour == "flaky" and self.seen[refund_no] == 1:
            self.executions[refund_no] = 1
            return _reply(500)
        self.executions[refund_no] = 1
        return _reply(200, ok=True, refund_id=f"P{refund_no}", refund_fee=fields["amount"])

    async def aclose(self) -> None:
        pass


def _reply(status: int, **fields: Any) -> WireResponse:
    return WireResponse(status_code=status, content=json.dumps(fields).encode() if fields else b"")


class FakeRefundClient(BaseClient):
    """A provider client with the shape of the real ones: ``refund(**fields)`` by keyword."""

    provider = "fake"
    refund_number_rule: ClassVar[RefundNumberRule] = RefundNumberRule(field="out_refund_no", max_length=32)

    def __init__(self, transport: LedgerTransport, **options: Any) -> None:
        opts: dict[str, Any] = {
            "retry": RetryPolicy(attempts=3, initial_delay=0.01, max_delay=0.01),
            "clock": FakeClock(),
            **options,
            "transport": transport,
        }
        super().__init__(dialect=JsonDialect(), base_url="http://fake.test", **opts)

    async def refund(
        self,
        *,
        out_trade_no: str,
        amount: int,
        out_refund_no: str | None = None,
        behaviour: str = "ok",
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(amount, int) or amount <= 0:
            from paykit_async.errors import ValidationError

            raise ValidationError("must be a positive int (fen)", field="amount")
        assert out_refund_no, "refund_many fixes the refund number before calling"
        operation = Operation(
            provider=self.provider,
            name="refund",
            url=self._url("/refund"),
            fields={
                "out_trade_no": out_trade_no,
                "amount": str(amount),
                "out_refund_no": out_refund_no,
                "behaviour": behaviour,
            },
            refund_no_field="out_refund_no",
            idempotency_key=idempotency_key,
        )
        outcome = await self._call(operation)
        return dict(outcome.fields)
