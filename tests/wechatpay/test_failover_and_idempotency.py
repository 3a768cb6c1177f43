"""Failover only on connection failures; idempotency keys; HTTP status hints; over mutual TLS."""

from __future__ import annotations

import pytest

from paykit_async import FakeClock, HTTPStatusError, RefundOutcomeUnknown, RetryPolicy, TransportError
from paykit_async.pipeline.core import Operation, Outcome
from paykit_async.pipeline.stores import MemoryStore
from paykit_async.providers.wechatpay import FailoverMiddleware, WeChatPayClient

from ..servers import ScriptedServer
from .helpers import (
    API_KEY,
    APPID,
    MCH_ID,
    XML_HEADERS,
    from_xml,
    refund_success_fields,
    scripted_client,
    signed_reply,
)

pytestmark = pytest.mark.anyio

PRIMARY = "https://api.mch.weixin.qq.com"
BACKUP = "https://api2.mch.weixin.qq.com"


def failing_then_ok(error: TransportError) -> tuple[list[str], object]:
    urls: list[str] = []

    async def handler(operation: Operation) -> Outcome:
        urls.append(operation.url)
        if len(urls) == 1:
            raise error
        return Outcome(fields={"out_refund_no": operation.fields["out_refund_no"]})

    return urls, handler


async def test_failover_only_when_nothing_was_sent() -> None:
    middleware = FailoverMiddleware(primary_base_url=PRIMARY, backup_base_url=BACKUP)
    op = Operation(
        provider="wechatpay",
        name="refund",
        url=f"{PRIMARY}/secapi/pay/refund",
        fields={"out_refund_no": "R1"},
        refund_no_field="out_refund_no",
    )
    urls, handler = failing_then_ok(TransportError("refused", sent=False))
    outcome = await middleware(op, handler)  # type: ignore[arg-type]
    assert urls == [f"{PRIMARY}/secapi/pay/refund", f"{BACKUP}/secapi/pay/refund"]
    assert outcome.fields["out_refund_no"] == "R1"

    for sent in (None, True):
        urls, handler = failing_then_ok(TransportError("timeout", sent=sent))
        with pytest.raises(TransportError):
            await middleware(op, handler)  # type: ignore[arg-type]
        assert urls == [f"{PRIMARY}/secapi/pay/refund"]


async def test_idempotency_key_replays_without_a_second_refund(scripted: ScriptedServer) -> None:
    scripted.app.respond = lambda request: (
        200,
        XML_HEADERS,
        signed_reply(refund_success_fields(from_xml(request.body))),
    )
    async with scripted_client(scripted, idempotency_store=MemoryStore()) as client:
        request = {"out_trade_no": "T1", "total_fee": 300, "refund_fee": 100, "idempotency_key": "order-T1-1"}
        first = await client.refund(**request)  # type: ignore[arg-type]
        again = await client.refund(**request)  # type: ignore[arg-type]
    assert len(scripted.app.requests) == 1
    assert again.out_refund_no == first.out_refund_no
    assert again.replayed


async def test_503_is_retried_with_the_servers_hint(scripted: ScriptedServer) -> None:
    clock = FakeClock()
    scripted.app.reply_with(503, {"retry-after": "3"}, b"busy")
    scripted.app.respond = lambda request: (200, XML_HEADERS, signed_reply({"result_msg": "OK"}))
    async with WeChatPayClient(
        APPID,
        MCH_ID,
        API_KEY,
        base_url=scripted.base_url,
        cert=scripted.tls.client_certificate(),
        ca_file=scripted.tls.ca_file,
        clock=clock,
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
    ) as client:
        result = await client.close_order(out_trade_no="T1")
    assert result.result_msg == "OK"
    assert clock.sleeps[0] >= 3.0
    assert len(scripted.app.requests) == 2


async def test_persistent_503_is_an_http_status_error(scripted: ScriptedServer) -> None:
    scripted.app.respond = lambda request: (500, {}, b"oops")
    async with WeChatPayClient(
        APPID,
        MCH_ID,
        API_KEY,
        base_url=scripted.base_url,
        cert=scripted.tls.client_certificate(),
        ca_file=scripted.tls.ca_file,
        clock=FakeClock(),
        retry=RetryPolicy(attempts=2, initial_delay=0.01),
    ) as client:
        with pytest.raises(HTTPStatusError) as caught:
            await client.query_refund(out_refund_no="R1")
    assert caught.value.status_code == 500
    assert len(scripted.app.requests) == 2


async def _resumable(
    client: WeChatPayClient, store: MemoryStore, key: str, number: str, **request: object
) -> None:
    """Leave ``key`` in ``store`` as an earlier attempt would: claimed under ``number``, released."""
    from paykit_async.pipeline.idempotency import request_fingerprint

    operation = await client.validate_refund(**request, idempotency_key=key)
    await store.claim(
        key, refund_no=number, fingerprint=request_fingerprint(operation), owner="gone", lease=60
    )
    await store.release(key, owner="gone")


@pytest.mark.parametrize("unreadable", [False, True], ids=["readable", "unreadable"])
async def test_a_resumed_refund_number_is_the_one_reported(
    scripted: ScriptedServer, unreadable: bool
) -> None:
    """A store that resumes an earlier number (not the one this call derived) reports that number,
    also when the reply does not echo it: the result, or the unknown outcome to retry with."""

    def reply(request: object) -> tuple[int, dict[str, str], bytes]:
        fields = refund_success_fields(from_xml(request.body))  # type: ignore[attr-defined]
        del fields["out_refund_no"]  # the reply does not echo the number
        if unreadable:
            fields["refund_fee"] = "one hundred"
        return 200, XML_HEADERS, signed_reply(fields)

    scripted.app.respond = reply
    store = MemoryStore()
    request: dict[str, object] = {"out_trade_no": "T1", "total_fee": 300, "refund_fee": 100}
    async with scripted_client(scripted, idempotency_store=store) as client:
        await _resumable(client, store, "order-T1-1", "R-EARLIER-1", **request)
        if unreadable:
            with pytest.raises(RefundOutcomeUnknown) as caught:
                await client.refund(**request, idempotency_key="order-T1-1")  # type: ignore[arg-type]
            reported = caught.value.refund_no
        else:
            result = await client.refund(**request, idempotency_key="order-T1-1")  # type: ignore[arg-type]
            reported = result.out_refund_no
    assert [from_xml(r.body)["out_refund_no"] for r in scripted.app.requests] == ["R-EARLIER-1"]
    assert reported == "R-EARLIER-1"
