"""Helpers for the notification endpoint tests: provider set-ups on the simulator, a recording
transport between the simulator's notification sender and the app, and handler doubles."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import attrs
import httpx

from paykit_async import EftPayClient, PayJSClient, WeChatPayClient, WeChatPayV3Client
from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY, Simulator, SimulatorConfig

NOTIFY_URL = "http://shop.test/notify"
WECHAT_SUCCESS = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
)


def simulator() -> Simulator:
    """A simulator whose refunds complete at once and whose redeliveries are due at once."""
    return Simulator(
        SimulatorConfig(
            auto_orders=True, completion_delay=0.0, notify_schedule=(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        )
    )


@attrs.frozen
class Delivered:
    """One request the simulator sent to the app, and the app's answer."""

    headers: Mapping[str, str]
    body: bytes
    status_code: int
    reply: bytes


class Recording(httpx.AsyncBaseTransport):
    """Forwards the simulator's notification POSTs to ``app`` and records them.

    ``lose_acks`` replaces the app's first N answers with HTTP 503 on the way back, as a lost
    acknowledgement does: the simulator then redelivers a notification the app already handled.
    """

    def __init__(self, app: Any, *, lose_acks: int = 0) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.lose_acks = lose_acks
        self.delivered: list[Delivered] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self._inner.handle_async_request(request)
        reply = await response.aread()
        self.delivered.append(Delivered(dict(request.headers), body, response.status_code, reply))
        if self.lose_acks > 0:
            self.lose_acks -= 1
            return httpx.Response(503, content=b"lost")
        return httpx.Response(response.status_code, headers=response.headers, content=reply)


async def deliver(sim: Simulator, app: Any, *, lose_acks: int = 0, rounds: int = 1) -> list[Delivered]:
    """Let the simulator POST its due notifications to ``app`` (``rounds`` times); what arrived."""
    recording = Recording(app, lose_acks=lose_acks)
    async with httpx.AsyncClient(transport=recording) as http:
        for _ in range(rounds):
            await sim.deliver_due(http)
    return recording.delivered


async def post(
    app: Any, body: bytes, headers: Mapping[str, str] | None = None, path: str = "/"
) -> httpx.Response:
    """POST ``body`` to ``app`` as a provider would."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop.test") as http:
        return await http.post(path, content=body, headers=dict(headers or {}))


class Body:
    """An ASGI ``receive`` that streams ``chunk`` ``count`` times (forever when None) and counts calls."""

    def __init__(self, chunk: bytes, count: int | None) -> None:
        self.chunk = chunk
        self.count = count
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        more = self.count is None or self.calls < self.count
        return {"type": "http.request", "body": self.chunk, "more_body": more}


async def call_raw(
    app: Any, receive: Callable[[], Awaitable[dict[str, Any]]], headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """One POST to ``app`` at the ASGI level (any headers, any body); its status and body."""
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


class Calls:
    """An ``async def handler(notification)`` that records calls, can fail and can block."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.notifications: list[Any] = []
        self.fail_first = fail_first
        self.gate: anyio.Event | None = None
        self.entered = anyio.Event()

    async def __call__(self, notification: Any) -> None:
        self.notifications.append(notification)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if len(self.notifications) <= self.fail_first:
            raise RuntimeError("the database is down")


@attrs.frozen(kw_only=True)
class Provider:
    """One provider's set-up: its client (on the simulator) and how to make it notify."""

    name: str
    client: Any
    sim: Simulator
    notify: Callable[[str], Awaitable[None]]
    """Makes the simulator queue one notification for reference ``ref``."""
    success: Callable[[httpx.Response], bool]
    tamper: Callable[[bytes], bytes]
    """A body with a business field changed (amount or reference) and the signature kept."""


def _assert_wechat_success(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.content == WECHAT_SUCCESS


def payjs(sim: Simulator) -> Provider:
    client = PayJSClient(
        DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs"), transport=sim.transport()
    )

    async def notify(ref: str) -> None:
        sim.add_payjs_order(f"{ref:0<32}"[:32], 500, notify_url=NOTIFY_URL)

    def tamper(body: bytes) -> bytes:
        fields = dict(parse_qsl(body.decode()))
        fields["total_fee"] = "1"
        return urlencode(fields).encode()

    return Provider(
        name="payjs",
        client=client,
        sim=sim,
        notify=notify,
        success=lambda r: r.status_code == 200 and r.content == b"success",
        tamper=tamper,
    )


def eftpay(sim: Simulator, *, secret: str = DEMO_EFTPAY.secret) -> Provider:
    client = EftPayClient(
        DEMO_EFTPAY.user_confirm_key,
        secret,
        base_url=sim.base_url("eftpay"),
        transport=sim.transport(),
    )

    async def notify(ref: str) -> None:
        sim.add_eftpay_order(f"T{ref}", "10.00")
        await client.apply_refund(
            paytype="WeChat",
            payment_type="WECHATCN",
            out_trade_no=f"T{ref}",
            transaction_amount="1.00",
            total_fee="10.00",
            refund_no=f"R{ref}",
            notify_url=NOTIFY_URL,
        )

    def tamper(body: bytes) -> bytes:
        document = json.loads(body)
        document["transaction_amount"] = "9.99"
        return json.dumps(document).encode()

    def success(response: httpx.Response) -> bool:
        return response.status_code == 200 and json.loads(response.content)["return_code"] == "success"

    return Provider(name="eftpay", client=client, sim=sim, notify=notify, success=success, tamper=tamper)


def wechatpay_v3(sim: Simulator) -> Provider:
    client = WeChatPayV3Client(
        **sim.wechatpay_v3_keys().client_kwargs(),
        base_url=sim.base_url("wechatpay-v3"),
        transport=sim.transport(),
    )

    async def notify(ref: str) -> None:
        await client.refund(
            refund=100, total=1000, out_trade_no=f"T{ref}", out_refund_no=f"R{ref}", notify_url=NOTIFY_URL
        )

    def tamper(body: bytes) -> bytes:
        document = json.loads(body)
        document["summary"] = "退款成功!"
        return json.dumps(document, ensure_ascii=False).encode()

    return Provider(
        name="wechatpay-v3",
        client=client,
        sim=sim,
        notify=notify,
        success=lambda r: r.status_code in (200, 204) and not r.content,
        tamper=tamper,
    )


def wechatpay(sim: Simulator, *, api_key: str = DEMO_WECHATPAY.api_key) -> Provider:
    client = WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        api_key,
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
    )

    async def notify(ref: str) -> None:
        await client.refund(
            out_trade_no=f"T{ref}",
            total_fee=1000,
            refund_fee=100,
            out_refund_no=f"R{ref}",
            notify_url=NOTIFY_URL,
        )

    def tamper(body: bytes) -> bytes:
        # ECB: swapping two ciphertext blocks keeps every block decryptable under the key.
        import base64
        import re

        match = re.search(rb"<req_info><!\[CDATA\[(.*?)\]\]></req_info>", body)
        assert match is not None
        data = bytearray(base64.b64decode(match.group(1)))
        data[16:32], data[32:48] = data[32:48], data[16:32]
        return body.replace(match.group(1), base64.b64encode(bytes(data)))

    return Provider(
        name="wechatpay", client=client, sim=sim, notify=notify, success=_assert_wechat_success, tamper=tamper
    )


PROVIDERS: dict[str, Callable[[Simulator], Provider]] = {
    "wechatpay": wechatpay,
    "wechatpay-v3": wechatpay_v3,
    "payjs": payjs,
    "eftpay": eftpay,
}
