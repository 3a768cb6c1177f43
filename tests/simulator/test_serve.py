"""Serving for real: uvicorn in a thread with per-endpoint mutual TLS, the lifespan sender, the CLI."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from paykit_async import ClientCertificate, TransportError
from paykit_async.providers.payjs import PayJSClient
from paykit_async.providers.wechatpay import WeChatPayClient
from paykit_async.simulator import DEMO_PAYJS, DEMO_WECHATPAY, Simulator, SimulatorConfig
from paykit_async.simulator.serve import TLSMaterial, ensure_tls_material, serve_in_thread

from ..servers import TLSFiles, serve_asgi
from .helpers import from_xml, wechat_request

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    return ensure_tls_material(tmp_path_factory.mktemp("simtls"))


def test_tls_material_is_reused(material: TLSMaterial) -> None:
    before = Path(material.ca_file).read_bytes()
    again = ensure_tls_material(Path(material.ca_file).parent)
    assert again == material
    assert Path(again.ca_file).read_bytes() == before
    assert (os.stat(material.client_key_file).st_mode & 0o777) == 0o600


async def test_wechat_refunds_need_a_client_cert_other_endpoints_do_not(material: TLSMaterial) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    cert = ClientCertificate.from_pem(material.client_cert_file, material.client_key_file)
    with serve_in_thread(sim, tls=material) as root:
        async with WeChatPayClient(
            DEMO_WECHATPAY.appid,
            DEMO_WECHATPAY.mch_id,
            DEMO_WECHATPAY.api_key,
            base_url=sim.base_url("wechatpay", root),
            cert=cert,
            ca_file=material.ca_file,
        ) as client:
            result = await client.refund(out_trade_no="T1", total_fee=100, refund_fee=100, out_refund_no="R1")
            assert result.refund_fee == 100
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=material.ca_file)) as bare:
            refused = await bare.post(
                f"{root}/wechatpay/secapi/pay/refund",
                content=wechat_request(
                    out_trade_no="T1", out_refund_no="R2", total_fee="100", refund_fee="1"
                ),
            )
            assert refused.status_code == 400
            assert b"No required SSL certificate" in refused.content
            query = await bare.post(
                f"{root}/wechatpay/pay/refundquery", content=wechat_request(out_refund_no="R1")
            )
            assert from_xml(query.content)["refund_status_0"] == "SUCCESS"
        async with PayJSClient(
            DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs", root), ca_file=material.ca_file
        ) as payjs:
            assert (await payjs.refund(payjs_order_id="P1")).return_code == 1
    assert set(sim.snapshot().executions) == {"wechatpay:R1", "payjs:P1"}


async def test_an_untrusted_client_cert_fails_the_handshake(
    material: TLSMaterial, tls_files: TLSFiles
) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True))
    with serve_in_thread(sim, tls=material) as root:
        async with WeChatPayClient(
            DEMO_WECHATPAY.appid,
            DEMO_WECHATPAY.mch_id,
            DEMO_WECHATPAY.api_key,
            base_url=sim.base_url("wechatpay", root),
            cert=tls_files.untrusted_client_certificate(),
            ca_file=material.ca_file,
        ) as client:
            with pytest.raises(TransportError):
                await client.query_refund(out_refund_no="R1")
    assert sim.requests() == ()


async def test_client_certs_all_refuses_connections_without_one(material: TLSMaterial) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True))
    with serve_in_thread(sim, tls=material, client_certs="all") as root:
        async with PayJSClient(
            DEMO_PAYJS.mchid, DEMO_PAYJS.key, base_url=sim.base_url("payjs", root), ca_file=material.ca_file
        ) as payjs:
            with pytest.raises(TransportError):
                await payjs.check(payjs_order_id="P1")


async def test_the_lifespan_runs_the_notification_sender() -> None:
    got: list[bytes] = []

    async def notify_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        got.append(message.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"<xml><return_code>SUCCESS</return_code></xml>"})

    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, notify_poll_interval=0.01))
    with serve_asgi(notify_app, tls=None) as notify_root, serve_in_thread(sim) as root:
        async with httpx.AsyncClient() as http:
            body = wechat_request(
                out_trade_no="T1",
                out_refund_no="R1",
                total_fee="5",
                refund_fee="5",
                notify_url=f"{notify_root}/n",
            )
            reply = from_xml((await http.post(f"{root}/wechatpay/secapi/pay/refund", content=body)).content)
            assert reply["result_code"] == "SUCCESS"
        with anyio.fail_after(10):
            await sim.wait_delivered(1)
    assert len(got) == 1
    assert b"req_info" in got[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_serves_prints_credentials_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    config = tmp_path / "sim.toml"
    config.write_text(
        '[payjs]\nmchid = "1234"\nkey = "my-own-payjs-key"\n[simulator]\ncompletion_delay = 0\n'
    )
    port = _free_port()
    code = "from paykit_async.simulator.cli import simulator; simulator()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", str(port), "--config", str(config), "--auto-orders"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.post(
                    f"http://127.0.0.1:{port}/payjs/api/check", content=b"mchid=1234&sign=x"
                )
                break
            except httpx.ConnectError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.json()["return_code"] == 0
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in output
    assert "SIMULATOR DEMO CREDENTIALS" in output
    assert DEMO_WECHATPAY.api_key in output
    assert "my-own-payjs-key" not in output
    assert DEMO_PAYJS.key not in output
    assert "Auto orders" in output
    assert "simulator stopped" in output
