"""Notifications reach a real local HTTP endpoint, verify independently and through the clients."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest

from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY, Simulator, SimulatorConfig
from paykit_async.simulator.clock import ManualClock

from ..servers import TLSFiles, read_body, serve_asgi
from .helpers import (
    decrypt_req_info,
    eft_refund,
    eft_reply_verified,
    eft_request,
    from_xml,
    payjs_sign,
    to_xml,
    wechat_request,
)

pytestmark = pytest.mark.anyio

ACK_WECHAT = (
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
)


class Receiver:
    """A merchant's notify endpoint: records bodies, fails the first ``fail_first`` deliveries."""

    def __init__(self, reply: bytes, fail_first: int = 0) -> None:
        self.reply = reply
        self.fail_first = fail_first
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        with self._lock:
            self.bodies.append(body)
            failing = len(self.bodies) <= self.fail_first
        status, reply = (500, b"busy") if failing else (200, self.reply)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": reply})


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(
        completion_delay=0.0, notify_schedule=(0.0, 0.05, 0.1, 0.2), notify_poll_interval=0.01
    )


@pytest.fixture
def served(simulator_config: SimulatorConfig, tls_files: TLSFiles) -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(simulator_config)
    with serve_asgi(sim.app, tls=tls_files, require_client_cert=True) as base_url:
        yield sim, base_url


def mtls_client(tls_files: TLSFiles) -> httpx.AsyncClient:
    import ssl

    context = ssl.create_default_context(cafile=tls_files.ca_file)
    context.load_cert_chain(tls_files.client_cert_file, tls_files.client_key_file)
    return httpx.AsyncClient(verify=context)


async def test_wechat_refund_notification_with_redelivery(
    served: tuple[Simulator, str], tls_files: TLSFiles
) -> None:
    sim, base_url = served
    sim.add_wechatpay_order("T1", 1000)
    receiver = Receiver(ACK_WECHAT, fail_first=2)
    with serve_asgi(receiver, tls=None) as notify_base:
        async with sim.running(), mtls_client(tls_files) as http:
            body = wechat_request(
                out_trade_no="T1",
                out_refund_no="R1",
                total_fee="1000",
                refund_fee="400",
                notify_url=f"{notify_base}/notify/wechat",
            )
            reply = from_xml(
                (await http.post(f"{base_url}/wechatpay/secapi/pay/refund", content=body)).content
            )
            assert reply["result_code"] == "SUCCESS"
            with anyio.fail_after(10):
                deliveries = await sim.wait_delivered(1)
    assert deliveries[0].attempts == 3
    assert len(receiver.bodies) == 3
    outer = from_xml(receiver.bodies[-1])
    assert "sign" not in outer
    assert outer["mch_id"] == DEMO_WECHATPAY.mch_id
    inner = decrypt_req_info(outer["req_info"])
    assert inner["out_refund_no"] == "R1"
    assert inner["refund_fee"] == "400"
    assert inner["refund_status"] == "SUCCESS"
    assert inner["success_time"]

    from paykit_async.providers.wechatpay import WeChatPayClient

    client = WeChatPayClient(
        DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id, DEMO_WECHATPAY.api_key, base_url="http://unused.invalid"
    )
    parsed = client.parse_refund_notification(receiver.bodies[-1])
    assert parsed.out_refund_no == "R1"
    assert parsed.refund_status == "SUCCESS"
    assert parsed.refund_fee == 400
    await client.aclose()


async def test_notifications_give_up_after_the_schedule(
    served: tuple[Simulator, str], tls_files: TLSFiles
) -> None:
    sim, base_url = served
    sim.add_wechatpay_order("T1", 1000)
    receiver = Receiver(b"<xml><return_code>FAIL</return_code></xml>")
    with serve_asgi(receiver, tls=None) as notify_base:
        async with mtls_client(tls_files) as http:
            body = wechat_request(
                out_trade_no="T1",
                out_refund_no="R1",
                total_fee="1000",
                refund_fee="1",
                notify_url=f"{notify_base}/n",
            )
            await http.post(f"{base_url}/wechatpay/secapi/pay/refund", content=body)
        async with sim.running():
            with anyio.fail_after(10):
                (delivery,) = await sim.wait_notifications_done()
    assert delivery.given_up
    assert sim.deliveries()[0].attempts == 4
    assert len(receiver.bodies) == 4


async def test_eftpay_apply_refund_notification_is_signed_json(
    served: tuple[Simulator, str], tls_files: TLSFiles
) -> None:
    sim, base_url = served
    sim.add_eftpay_order("T1", "10.01")
    receiver = Receiver(json.dumps({"return_code": "success"}).encode())
    with serve_asgi(receiver, tls=None) as notify_base:
        async with sim.running(), mtls_client(tls_files) as http:
            body = eft_request(
                **eft_refund(service="service.wechat.jsapi.ApplyRefund", notify_url=f"{notify_base}/e")
            )
            reply = (await http.post(f"{base_url}/eftpay/Servlet/JSAPIService.do", content=body)).json()
            assert reply["return_status"] == "00"
            assert eft_reply_verified(reply)
            with anyio.fail_after(10):
                await sim.wait_delivered(1)
    note = json.loads(receiver.bodies[-1])
    assert eft_reply_verified(note)
    assert note["trade_type"] == "REFUND"
    assert note["refund_no"] == "R1"
    assert note["trade_status"] == "TRADE_REFUND"

    from paykit_async.providers.eftpay import EftPayClient

    client = EftPayClient(DEMO_EFTPAY.user_confirm_key, DEMO_EFTPAY.secret, base_url="http://unused.invalid")
    parsed = client.parse_notification(receiver.bodies[-1])
    assert parsed.refund_no == "R1"
    await client.aclose()


async def test_payjs_payment_notification_is_a_signed_form() -> None:
    sim = Simulator(SimulatorConfig(notify_schedule=(0.0,)), clock=ManualClock())
    receiver = Receiver(b"success")
    with serve_asgi(receiver, tls=None) as notify_base:
        sim.add_payjs_order("P1", 500, attach="a b", notify_url=f"{notify_base}/p")
        assert await sim.deliver_due() == 1
    fields = dict(parse_qsl(receiver.bodies[0].decode()))
    assert fields["payjs_order_id"] == "P1"
    assert fields["total_fee"] == "500"
    assert fields["attach"] == "a b"
    assert payjs_sign(fields, DEMO_PAYJS.key) == fields["sign"]

    from paykit_async.providers.payjs import PayJSClient

    client = PayJSClient(DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url="http://unused.invalid")
    parsed = client.parse_notification(receiver.bodies[0])
    assert parsed.payjs_order_id == "P1"
    await client.aclose()


def test_to_xml_helper_round_trips() -> None:
    assert from_xml(to_xml({"a": "1"})) == {"a": "1"}


async def test_an_unusable_notify_url_does_not_stop_the_other_notifications(
    served: tuple[Simulator, str], tls_files: TLSFiles
) -> None:
    # A merchant's notify_url that httpx cannot even parse (httpx.InvalidURL is no HTTPError) made
    # the notification sender raise out of its loop: no notification of any merchant was delivered
    # again. It is one failed attempt of that notification, redelivered on schedule, then given up.
    sim, base_url = served
    sim.add_wechatpay_order("T1", 1000)
    receiver = Receiver(ACK_WECHAT)
    with serve_asgi(receiver, tls=None) as notify_base:
        async with sim.running(), mtls_client(tls_files) as http:
            for refund_no, url in (("R1", "http://[::1/notify"), ("R2", f"{notify_base}/notify/wechat")):
                body = wechat_request(
                    out_trade_no="T1",
                    out_refund_no=refund_no,
                    total_fee="1000",
                    refund_fee="100",
                    notify_url=url,
                )
                reply = from_xml(
                    (await http.post(f"{base_url}/wechatpay/secapi/pay/refund", content=body)).content
                )
                assert reply["result_code"] == "SUCCESS"
            with anyio.fail_after(10):
                await sim.wait_delivered(1)
                await sim.wait_notifications_done()
    by_reference = {d.reference: d for d in sim.deliveries()}
    assert by_reference["R2"].delivered
    assert by_reference["R1"].given_up
    assert by_reference["R1"].attempts == 4
    assert "InvalidURL" in by_reference["R1"].last_error
    assert len(receiver.bodies) == 1
