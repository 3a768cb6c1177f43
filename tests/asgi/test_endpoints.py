"""``paykit_async.asgi.notification_app`` for each provider: the simulator delivers real notifications
to the app (httpx's ASGI transport, on asyncio and trio). Valid, forged, tampered, redelivered,
handler failure, oversize body; replies in each provider's exact format."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import httpx
import pytest

from paykit_async import (
    MemoryStore,
    PayJSClient,
    WeChatPayV3Client,
)
from paykit_async.asgi import DEFAULT_MAX_BODY, notification_app, notification_identity
from paykit_async.pipeline.stores import RecordState
from paykit_async.providers.eftpay.models import RefundNotification as EftPayNote
from paykit_async.providers.payjs.models import PaymentNotification
from paykit_async.providers.wechatpay.models import RefundNotification as WeChatNote
from paykit_async.providers.wechatpay_v3.models import RefundNotification as V3Note
from paykit_async.signing import KeyedMd5Signer, PrefixedSha256Signer
from paykit_async.simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    EftPayMerchant,
    Simulator,
    SimulatorConfig,
    WeChatPayMerchant,
)

from ..cancellation import cancel_natively_once_started
from ..servers import read_body
from .helpers import (
    PROVIDERS,
    WECHAT_SUCCESS,
    Body,
    Calls,
    Provider,
    call_raw,
    deliver,
    eftpay,
    post,
    simulator,
    wechatpay,
    wechatpay_v3,
)

pytestmark = pytest.mark.anyio

NAMES = list(PROVIDERS)
NOTE_TYPES = {
    "wechatpay": WeChatNote,
    "wechatpay-v3": V3Note,
    "payjs": PaymentNotification,
    "eftpay": EftPayNote,
}
#: The exact failure (please redeliver) reply of each provider: status and body.
FAILURES: dict[str, tuple[int, bytes]] = {
    "wechatpay": (
        200,
        b"<xml><return_code><![CDATA[FAIL]]></return_code>"
        b"<return_msg><![CDATA[please retry]]></return_msg></xml>",
    ),
    "wechatpay-v3": (500, json.dumps({"code": "FAIL", "message": "please retry"}).encode()),
    "payjs": (500, b"fail"),
    "eftpay": (500, b'{"return_code":"fail"}'),
}


@pytest.fixture(params=NAMES)
async def provider(request: pytest.FixtureRequest) -> AsyncIterator[Provider]:
    setup = PROVIDERS[request.param](simulator())
    async with setup.client:
        yield setup


def reference(provider: Provider, note: Any) -> str:
    return str(
        note.payjs_order_id
        if provider.name == "payjs"
        else getattr(note, "out_refund_no", None) or note.refund_no
    )


# -- valid and redelivered -------------------------------------------------------------------


async def test_a_valid_notification_reaches_the_handler_once_with_the_success_reply(
    provider: Provider,
) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    await provider.notify("1")
    (delivered,) = await deliver(provider.sim, app)
    assert provider.success(httpx.Response(delivered.status_code, content=delivered.reply))
    (note,) = calls.notifications
    assert isinstance(note, NOTE_TYPES[provider.name])
    assert reference(provider, note).endswith("1") or reference(provider, note).startswith("1")
    assert provider.sim.deliveries()[0].delivered


async def test_a_redelivery_after_a_lost_acknowledgement_does_not_run_the_handler_again(
    provider: Provider,
) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    await provider.notify("2")
    delivered = await deliver(provider.sim, app, lose_acks=1, rounds=2)
    assert len(delivered) == 2  # the simulator saw the ack lost and delivered again
    assert all(provider.success(httpx.Response(d.status_code, content=d.reply)) for d in delivered)
    assert len(calls.notifications) == 1
    (delivery,) = provider.sim.deliveries()
    assert delivery.delivered
    assert delivery.attempts == 2


async def test_a_replayed_request_is_answered_success_without_the_handler(provider: Provider) -> None:
    calls = Calls()
    store = MemoryStore()
    app = notification_app(provider.client, calls, idempotency_store=store)
    await provider.notify("3")
    (first,) = await deliver(provider.sim, app)
    for _ in range(3):
        again = await post(app, first.body, first.headers)
        assert provider.success(again)
    assert len(calls.notifications) == 1
    records = list(store._records.values())
    assert [r.state for r in records] == [RecordState.SUCCEEDED]
    assert records[0].key.startswith(f'notification:["{provider.name}",')


async def test_two_refunds_are_two_notifications(provider: Provider) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    await provider.notify("4")
    await provider.notify("5")
    delivered = await deliver(provider.sim, app)
    assert len(delivered) == 2
    assert len(calls.notifications) == 2
    assert len({reference(provider, note) for note in calls.notifications}) == 2


# -- handler failure -------------------------------------------------------------------------


async def test_a_failing_handler_gets_the_failure_reply_and_runs_again_on_redelivery(
    provider: Provider,
) -> None:
    calls = Calls(fail_first=1)
    store = MemoryStore()
    app = notification_app(provider.client, calls, idempotency_store=store)
    await provider.notify("6")
    first, second = await deliver(provider.sim, app, rounds=2)
    assert (first.status_code, first.reply) == FAILURES[provider.name]
    assert provider.success(httpx.Response(second.status_code, content=second.reply))
    assert len(calls.notifications) == 2  # not recorded as done after the failure
    assert provider.sim.deliveries()[0].delivered
    assert [r.state for r in store._records.values()] == [RecordState.SUCCEEDED]


async def test_a_handler_cancelled_mid_way_leaves_the_notification_to_redeliver(provider: Provider) -> None:
    calls = Calls()
    calls.gate = anyio.Event()
    store = MemoryStore()
    app = notification_app(provider.client, calls, idempotency_store=store)
    await provider.notify("7")
    (queued,) = await _captured(provider)
    with anyio.move_on_after(0.2):
        await post(app, queued.body, queued.headers)
    assert len(calls.notifications) == 1
    calls.gate = None
    answer = await post(app, queued.body, queued.headers)
    assert provider.success(answer)
    assert len(calls.notifications) == 2


async def _captured(provider: Provider) -> list[Any]:
    """The provider's next notification as delivered (headers included), answered by a stub."""

    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return await deliver(provider.sim, refuse)


# -- forged and tampered ---------------------------------------------------------------------


async def test_a_tampered_notification_is_refused_with_a_reasonless_400(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    await provider.notify("8")
    (genuine,) = await _captured(provider)
    with caplog.at_level(logging.WARNING, logger="paykit_async.asgi"):
        answer = await post(app, provider.tamper(genuine.body), genuine.headers)
    assert answer.status_code == 400
    _assert_says_nothing_about_why(provider, answer)
    assert calls.notifications == []
    (record,) = [r for r in caplog.records if r.name == "paykit_async.asgi"]
    assert record.levelno == logging.WARNING
    assert "rejected" in record.getMessage()
    _assert_no_secret(record.getMessage())


async def test_a_forged_notification_is_refused_and_never_reaches_the_handler(
    provider: Provider, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    headers, body = await FORGERS[provider.name](provider)
    with caplog.at_level(logging.DEBUG, logger="paykit_async"):
        answer = await post(app, body, headers)
    assert answer.status_code == 400
    _assert_says_nothing_about_why(provider, answer)
    assert calls.notifications == []
    for record in caplog.records:
        _assert_no_secret(record.getMessage())


def _assert_says_nothing_about_why(provider: Provider, answer: httpx.Response) -> None:
    text = answer.content.decode().lower()
    for word in ("signature", "sign ", "decrypt", "merchant", "key", "tamper", "query"):
        assert word not in text
    if provider.name == "wechatpay":
        assert b"<return_code><![CDATA[FAIL]]></return_code>" in answer.content
        assert b"invalid notification" in answer.content


def _assert_no_secret(text: str) -> None:
    for secret in (DEMO_PAYJS.key, DEMO_EFTPAY.secret, DEMO_WECHATPAY.api_key, FORGER_SECRET):
        assert secret not in text


FORGER_SECRET = "forger-forger-forger-forger-0001"


async def _forge_payjs(provider: Provider) -> tuple[dict[str, str], bytes]:
    """A well-formed notification for this merchant, signed with a guessed key."""
    fields = {
        "return_code": "1",
        "total_fee": "1",
        "out_trade_no": "T1",
        "payjs_order_id": "2019051812345678901234567890FAKE",
        "transaction_id": "4200000001",
        "time_end": "2024-01-01 12:00:00",
        "openid": "o7LF",
        "mchid": DEMO_PAYJS.mchid,
    }
    fields["sign"] = KeyedMd5Signer(key=FORGER_SECRET).sign(fields)
    return {"content-type": "application/x-www-form-urlencoded"}, urlencode(fields).encode()


async def _forge_eftpay(provider: Provider) -> tuple[dict[str, str], bytes]:
    """A notification for this merchant's id, signed by an eftPay with another secret."""
    merchant = EftPayMerchant(user_confirm_key=DEMO_EFTPAY.user_confirm_key, secret=FORGER_SECRET)
    forger = eftpay(Simulator(SimulatorConfig(eftpay=merchant, completion_delay=0.0)), secret=FORGER_SECRET)
    async with forger.client:
        await forger.notify("F")
    (note,) = await _captured(forger)
    assert PrefixedSha256Signer(secret=FORGER_SECRET).verify(
        json.loads(note.body), json.loads(note.body)["sign"]
    )
    return note.headers, note.body


async def _forge_wechatpay_v3(provider: Provider) -> tuple[dict[str, str], bytes]:
    """A notification from another WeChat Pay (its own platform key) for this merchant id."""
    forger = wechatpay_v3(simulator())
    async with forger.client:
        await forger.notify("F")
    (note,) = await _captured(forger)
    return note.headers, note.body


async def _forge_wechatpay(provider: Provider) -> tuple[dict[str, str], bytes]:
    """A notification encrypted under another API key, for this merchant's ids."""
    merchant = WeChatPayMerchant(
        appid=DEMO_WECHATPAY.appid, mch_id=DEMO_WECHATPAY.mch_id, api_key=FORGER_SECRET
    )
    sim = Simulator(SimulatorConfig(wechatpay=merchant, auto_orders=True, completion_delay=0.0))
    forger = wechatpay(sim, api_key=FORGER_SECRET)
    async with forger.client:
        await forger.notify("F")
    (note,) = sim.deliveries()
    return {"content-type": note.content_type}, note.body


FORGERS = {
    "payjs": _forge_payjs,
    "eftpay": _forge_eftpay,
    "wechatpay-v3": _forge_wechatpay_v3,
    "wechatpay": _forge_wechatpay,
}


async def test_wechatpay_v2_a_genuine_looking_notification_the_provider_does_not_confirm_is_refused() -> None:
    """Same API key (so it decrypts), but the refund it announces does not exist at WeChat: the
    confirming query refuses it — the spliced/replayed-notification attack of issue 12."""
    other = wechatpay(simulator())
    async with other.client:
        await other.notify("X")
    (note,) = other.sim.deliveries()
    own = PROVIDERS["wechatpay"](simulator())
    calls = Calls()
    async with own.client:
        app = notification_app(own.client, calls)
        answer = await post(app, note.body, {"content-type": note.content_type})
    assert answer.status_code in (200, 400)
    assert b"<return_code><![CDATA[SUCCESS]]>" not in answer.content
    assert calls.notifications == []


# -- body size and method --------------------------------------------------------------------


async def test_a_declared_content_length_over_the_cap_is_refused_before_reading(provider: Provider) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls, max_body=1024)
    receive = Body(b"x" * 1024, None)
    status, body = await call_raw(app, receive, [(b"content-length", b"1025")])
    assert status == 413
    assert receive.calls == 0
    assert calls.notifications == []
    assert (status, body) != FAILURES[provider.name]


async def test_an_endless_streamed_body_is_refused_as_soon_as_it_passes_the_cap(provider: Provider) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls)
    receive = Body(b"x" * 4096, None)  # chunked: no content-length, never ends
    status, _ = await call_raw(app, receive, [(b"transfer-encoding", b"chunked")])
    assert status == 413
    assert receive.calls == DEFAULT_MAX_BODY // 4096 + 1
    assert calls.notifications == []


async def test_a_body_at_the_cap_is_read_and_verified(provider: Provider) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls, max_body=4096)
    receive = Body(b"x" * 1024, 4)
    status, _ = await call_raw(app, receive, [(b"content-length", b"4096")])
    assert status == 400  # read in full, then refused as not a notification
    assert receive.calls == 4


@pytest.mark.parametrize("declared", [b"-1", b"1e3", "\u00b2".encode("latin-1"), b" 12", b""])
async def test_a_content_length_that_is_not_a_length_is_refused(provider: Provider, declared: bytes) -> None:
    app = notification_app(provider.client, Calls())
    receive = Body(b"", 1)
    status, _ = await call_raw(app, receive, [(b"content-length", declared)])
    assert status == 413
    assert receive.calls == 0


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE"])
async def test_anything_but_post_is_405(provider: Provider, method: str) -> None:
    app = notification_app(provider.client, Calls())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        answer = await http.request(method, "/")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"


# -- concurrency and stores ------------------------------------------------------------------


async def test_concurrent_deliveries_of_one_notification_run_the_handler_once(provider: Provider) -> None:
    calls = Calls()
    calls.gate = anyio.Event()
    app = notification_app(provider.client, calls, wait=0.05)
    await provider.notify("9")
    (note,) = await _captured(provider)
    answers: list[httpx.Response] = []
    two_answered = anyio.Event()

    async def one() -> None:
        answers.append(await post(app, note.body, note.headers))
        if len(answers) == 2:
            two_answered.set()

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        await calls.entered.wait()
        group.start_soon(one)
        group.start_soon(one)
        await two_answered.wait()
        calls.gate.set()
    assert len(calls.notifications) == 1
    busy = [a for a in answers if not provider.success(a)]
    assert len(busy) == 2  # still being handled: the provider is asked to redeliver
    assert all((a.status_code, a.content) == FAILURES[provider.name] for a in busy)
    assert provider.success(await post(app, note.body, note.headers))
    assert len(calls.notifications) == 1


async def test_a_concurrent_redelivery_waits_for_the_running_handler(provider: Provider) -> None:
    calls = Calls()
    calls.gate = anyio.Event()
    app = notification_app(provider.client, calls, wait=30)
    await provider.notify("10")
    (note,) = await _captured(provider)
    answers: list[httpx.Response] = []

    async def one() -> None:
        answers.append(await post(app, note.body, note.headers))

    async with anyio.create_task_group() as group:
        group.start_soon(one)
        await calls.entered.wait()
        group.start_soon(one)
        await anyio.sleep(0.1)
        assert answers == []  # the second one waits
        calls.gate.set()
    assert len(answers) == 2
    assert all(provider.success(a) for a in answers)
    assert len(calls.notifications) == 1


class BrokenStore(MemoryStore):
    async def claim(self, key: str, **kwargs: Any) -> Any:
        raise ConnectionError("the store is down")


async def test_a_failing_store_asks_for_a_redelivery_and_does_not_run_the_handler(provider: Provider) -> None:
    calls = Calls()
    app = notification_app(provider.client, calls, idempotency_store=BrokenStore())
    await provider.notify("11")
    (delivered,) = await deliver(provider.sim, app)
    assert (delivered.status_code, delivered.reply) == FAILURES[provider.name]
    assert calls.notifications == []


# -- construction ----------------------------------------------------------------------------


async def test_any_other_client_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="WeChatPayClient, WeChatPayV3Client, PayJSClient or EftPayClient"):
        notification_app(object(), Calls())  # type: ignore[call-overload]


@pytest.mark.parametrize("options", [{"max_body": 0}, {"max_body": True}, {"lease": 0}, {"wait": -1}])
async def test_bad_options_are_validation_errors(options: dict[str, Any]) -> None:
    from paykit_async import ValidationError

    async with PayJSClient(DEMO_PAYJS.mchid, DEMO_PAYJS.key) as client:
        with pytest.raises(ValidationError):
            notification_app(client, Calls(), **options)


def test_identities_are_unambiguous_json() -> None:
    assert notification_identity("payjs", ["1", "a:b", "1"]) == 'notification:["payjs","1","a:b","1"]'
    assert notification_identity("x", ["a", "b"]) != notification_identity("x", ["a,b"])


async def test_the_v3_client_answers_204_success_and_a_json_failure() -> None:
    sim = simulator()
    async with WeChatPayV3Client(
        **sim.wechatpay_v3_keys().client_kwargs(),
        base_url=sim.base_url("wechatpay-v3"),
        transport=sim.transport(),
    ) as client:
        success, failure = client.notification_success_reply(), client.notification_failure_reply("x")
    assert (success.status_code, success.body) == (204, b"")
    assert failure.status_code == 500
    assert json.loads(failure.body) == {"code": "FAIL", "message": "x"}


async def test_payjs_tampering_keeps_the_signature_but_changes_the_amount() -> None:
    """The tamper helper really produces a signed-looking body with another amount."""
    sim = simulator()
    setup = PROVIDERS["payjs"](sim)
    await setup.notify("77")
    (note,) = sim.deliveries()
    original, tampered = (
        dict(parse_qsl(note.body.decode())),
        dict(parse_qsl(setup.tamper(note.body).decode())),
    )
    assert original["sign"] == tampered["sign"]
    assert original["total_fee"] != tampered["total_fee"]
    assert WECHAT_SUCCESS  # keep the import honest for the v2 helpers


class _SlowFinish(MemoryStore):
    """A store whose "handled" record takes a while to be written (a slow network)."""

    def __init__(self) -> None:
        super().__init__()
        self.finishing = anyio.Event()
        self.slow = True

    async def finish(self, key: str, *, owner: str, result: Any) -> bool:
        if self.slow:
            self.finishing.set()
            await anyio.sleep(0.2)
        return await super().finish(key, owner=owner, result=result)


async def test_a_server_cancelling_the_request_while_it_is_recorded_does_not_run_the_handler_twice(
    provider: Provider, anyio_backend: str
) -> None:
    """The handler ran; the server cancels the request (the provider gave up waiting) while the
    store records it as handled — on asyncio with ``Task.cancel()``, which goes through anyio's
    shield. The record used to stay in flight and claimed: redeliveries were refused for the whole
    lease, then ran the handler a second time. Now it is recorded, and a redelivery is answered
    without calling the handler."""
    calls = Calls()
    store = _SlowFinish()
    app = notification_app(provider.client, calls, idempotency_store=store, lease=0.5, wait=0.0)
    await provider.notify("14")
    (queued,) = await _captured(provider)
    await cancel_natively_once_started(
        anyio_backend, store.finishing, lambda: post(app, queued.body, queued.headers)
    )
    assert len(calls.notifications) == 1
    assert [r.state for r in store._records.values()] == [RecordState.SUCCEEDED]
    store.slow = False
    await anyio.sleep(0.6)  # past the lease: an unrecorded claim would now be taken over
    answer = await post(app, queued.body, queued.headers)
    assert provider.success(answer)
    assert len(calls.notifications) == 1


class _SlowClaimReply(MemoryStore):
    """A store whose answer to a claim it made takes a while to arrive (a slow network)."""

    def __init__(self) -> None:
        super().__init__()
        self.claiming = anyio.Event()
        self.slow = True

    async def claim(self, key: str, **kwargs: Any) -> Any:
        claim = await super().claim(key, **kwargs)
        if self.slow:
            self.claiming.set()
            await anyio.sleep(0.2)
        return claim


async def test_a_server_cancelling_the_request_while_it_is_claimed_strands_no_claim(
    provider: Provider, anyio_backend: str
) -> None:
    """Cancelled (on asyncio with ``Task.cancel()``, through anyio's shield) while the store's
    answer to the claim was on its way: the claim used to be held for the whole lease, every
    redelivery refused as "being handled". Now it is released and the next delivery runs the
    handler."""
    calls = Calls()
    store = _SlowClaimReply()
    app = notification_app(provider.client, calls, idempotency_store=store, wait=0.0)
    await provider.notify("15")
    (queued,) = await _captured(provider)
    await cancel_natively_once_started(
        anyio_backend, store.claiming, lambda: post(app, queued.body, queued.headers)
    )
    # (trio's shield holds: the handler may have run, and then its run was recorded.)
    assert [r.lease_expires for r in store._records.values()] == [0.0]
    store.slow = False
    answer = await post(app, queued.body, queued.headers)
    assert provider.success(answer)
    assert len(calls.notifications) == 1
    assert [r.state for r in store._records.values()] == [RecordState.SUCCEEDED]
