"""``examples/fastapi_service/app.py`` under real uvicorn: two service processes share a SQLite
store; the simulator (served over HTTP) refunds and delivers real notifications through a proxy
that loses the first acknowledgement of each one, so every notification is redelivered — to the
*other* process. Every notification is handled once; each redelivery is answered without a second
call to the handler. Also the refund endpoint's answers (200, replay, 409, 202, 422, 404, 400)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from paykit_async.simulator import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    FaultPlan,
    FaultRule,
    Simulator,
    SimulatorConfig,
)
from paykit_async.simulator.serve import serve_in_thread

from ..servers import read_body, serve_asgi

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_service"


class LossyProxy:
    """Stands between the simulator and the service. Each notification goes to ``targets[0]`` until
    that process acknowledges it — that acknowledgement is lost (the simulator gets 503) — and from
    then on to ``targets[1]``, whose answers are passed back."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.acknowledged: set[str] = set()
        self.answers: list[tuple[str, int, int, bytes]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await read_body(receive)
        digest = hashlib.sha256(scope["path"].encode() + body).hexdigest()
        with self._lock:
            redelivery = digest in self.acknowledged
        target = self.targets[1 if redelivery else 0]
        headers = {
            k.decode(): v.decode()
            for k, v in scope["headers"]
            if k.lower().startswith(b"wechatpay-") or k.lower() == b"content-type"
        }
        async with httpx.AsyncClient(timeout=30) as http:
            answer = await http.post(target + scope["path"], content=body, headers=headers)
        self.answers.append((scope["path"], int(redelivery), answer.status_code, answer.content))
        status, content = answer.status_code, answer.content
        if not redelivery and answer.is_success and b"FAIL" not in answer.content:
            with self._lock:
                self.acknowledged.add(digest)
            status, content = 503, b"lost"
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": content})


@contextlib.contextmanager
def service(env: dict[str, str], log: Path) -> Iterator[str]:
    """``uvicorn app:app`` in its own process on a socket bound here; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLE), "--fd", str(sock.fileno())]
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*command, "--log-level", "info", "app:app"],
            pass_fds=[sock.fileno()],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    sock.close()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/notifications", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()  # uvicorn re-raises SIGTERM
    text = log.read_text()
    assert "Application shutdown complete." in text, text  # the lifespan closed the clients
    assert "Traceback" not in text, text


def write_config(path: Path, sim: Simulator, root: str, directory: Path) -> None:
    keys = sim.wechatpay_v3_keys()
    (directory / "apiclient_key.pem").write_bytes(keys.private_key)
    (directory / "pub_key.pem").write_bytes(keys.wechatpay_public_key)
    sections = [
        f'[wechatpay-v3]\nmchid = "{keys.mchid}"\nprivate_key = "{directory / "apiclient_key.pem"}"\n'
        f'certificate_serial_no = "{keys.certificate_serial_no}"\napiv3_key = "{keys.apiv3_key}"\n'
        f'wechatpay_public_key = "{directory / "pub_key.pem"}"\n'
        f'wechatpay_public_key_id = "{keys.wechatpay_public_key_id}"\nbase_url = "{root}/wechatpay-v3"\n',
        f'[payjs]\nmchid = "{DEMO_PAYJS.mchid}"\nkey = "{DEMO_PAYJS.key}"\nbase_url = "{root}/payjs"\n',
        f'[eftpay]\nuser_confirm_key = "{DEMO_EFTPAY.user_confirm_key}"\nsecret = "{DEMO_EFTPAY.secret}"\n'
        f'base_url = "{root}/eftpay"\n',
        f'[wechatpay]\nappid = "{DEMO_WECHATPAY.appid}"\nmch_id = "{DEMO_WECHATPAY.mch_id}"\n'
        f'api_key = "{DEMO_WECHATPAY.api_key}"\nbase_url = "{root}/wechatpay"\n',
    ]
    path.write_text("\n".join(sections), encoding="utf-8")


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_fastapi_service_under_uvicorn_handles_each_notification_once(tmp_path: Path) -> None:
    sim = Simulator(
        SimulatorConfig(
            auto_orders=True,
            completion_delay=0.0,
            notify_schedule=(0.0, 0.1, 0.2, 0.5, 1.0, 2.0),
            notify_poll_interval=0.02,
        )
    )
    proxy = LossyProxy()
    with serve_in_thread(sim) as root, serve_asgi(proxy, tls=None) as proxy_url:
        config = tmp_path / "paykit.toml"
        write_config(config, sim, root, tmp_path)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAYKIT_")}
        env.update(PAYKIT_CONFIG=str(config), PAYKIT_STORE=str(tmp_path / "paykit.db"))
        with (
            service(env, tmp_path / "a.log") as first,
            service(env, tmp_path / "b.log") as second,
            httpx.Client(timeout=60) as http,
        ):
            proxy.targets = [first, second]
            expected = exercise_refunds(http, first, second, sim, proxy_url)
            wait_for(
                lambda: len(sim.deliveries()) == len(expected) and all(d.delivered for d in sim.deliveries())
            )
            handled_first = http.get(f"{first}/notifications").json()
            handled_second = http.get(f"{second}/notifications").json()
    handled = sorted((h["provider"], h["reference"]) for h in handled_first + handled_second)
    assert handled == sorted(expected)  # each notification handled exactly once
    assert handled_second == []  # the redeliveries reached the other process: answered, not handled
    assert all(d.attempts >= 2 for d in sim.deliveries())
    # Each redelivery was acknowledged by the other process (one that came while the provider could
    # not confirm it — the fault window above — was answered "please retry" and came again).
    redelivered = [a for a in proxy.answers if a[1] == 1]
    acknowledged = [a for a in redelivered if a[2] in (200, 204) and b"FAIL" not in a[3]]
    assert len(acknowledged) == len(expected)


def exercise_refunds(
    http: httpx.Client, first: str, second: str, sim: Simulator, proxy_url: str
) -> list[tuple[str, str]]:
    """Refunds through the service's endpoint; the notifications they (and a payment) cause."""
    expected: list[tuple[str, str]] = []
    v3 = {
        "out_trade_no": "T3001",
        "refund": 100,
        "total": 1000,
        "notify_url": f"{proxy_url}/notify/wechatpay-v3",
    }
    accepted = http.post(f"{first}/refunds/wechatpay-v3", json=v3, headers={"Idempotency-Key": "v3-T3001"})
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["status"] == "accepted"
    assert body["replayed"] is False
    refund_no = body["refund_no"]
    assert body["result"]["out_refund_no"] == refund_no
    expected.append(("wechatpay-v3", refund_no))
    # The same request and key at the other process: replayed from the shared store, not re-sent.
    again = http.post(f"{second}/refunds/wechatpay-v3", json=v3, headers={"Idempotency-Key": "v3-T3001"})
    assert again.status_code == 200
    assert (again.json()["refund_no"], again.json()["replayed"]) == (refund_no, True)
    # The same key for another request: refused, nothing sent.
    conflict = http.post(
        f"{first}/refunds/wechatpay-v3", json={**v3, "refund": 200}, headers={"Idempotency-Key": "v3-T3001"}
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["type"] == "idempotency_conflict"

    # The provider executes the refund but every answer is lost: 202 with the refund number...
    sim.set_faults(FaultPlan(rules=(FaultRule(provider="wechatpay-v3", drop_after=1.0),)))
    lost = {**v3, "out_trade_no": "T3002"}
    unknown = http.post(f"{first}/refunds/wechatpay-v3", json=lost, headers={"Idempotency-Key": "v3-T3002"})
    sim.set_faults(FaultPlan())
    assert unknown.status_code == 202, unknown.text
    assert unknown.json()["status"] == "unknown"
    pending = unknown.json()["refund_no"]
    # ...and the same request again settles it under that same number.
    settled = http.post(f"{second}/refunds/wechatpay-v3", json=lost, headers={"Idempotency-Key": "v3-T3002"})
    assert settled.status_code == 200, settled.text
    assert settled.json()["refund_no"] == pending
    expected.append(("wechatpay-v3", pending))

    eft = {
        "paytype": "WeChat",
        "payment_type": "WECHATCN",
        "out_trade_no": "E1",
        "transaction_amount": 1.5,  # a JSON number: read as Decimal, never float
        "total_fee": "10.00",
        "notify_url": f"{proxy_url}/notify/eftpay",
    }
    applied = http.post(f"{first}/refunds/eftpay", json=eft, headers={"Idempotency-Key": "eft-E1"})
    assert applied.status_code == 200, applied.text
    assert applied.json()["result"]["transaction_amount"] == "1.50"
    expected.append(("eftpay", applied.json()["refund_no"]))

    sim.add_payjs_order("P4001", 300, notify_url=f"{proxy_url}/notify/payjs")
    expected.append(("payjs", "P4001"))
    payjs = http.post(f"{first}/refunds/payjs", json={"payjs_order_id": "P4001"})
    assert payjs.status_code == 200, payjs.text
    assert payjs.json()["refund_no"] == "P4001"

    v2 = {
        "out_trade_no": "T2001",
        "total_fee": 1000,
        "refund_fee": 100,
        "notify_url": f"{proxy_url}/notify/wechatpay",
    }
    wechat = http.post(f"{first}/refunds/wechatpay", json=v2, headers={"Idempotency-Key": "v2-T2001"})
    assert wechat.status_code == 200, wechat.text
    expected.append(("wechatpay", wechat.json()["refund_no"]))

    bad = http.post(f"{first}/refunds/wechatpay-v3", json={**v3, "refund": "ten"})
    assert bad.status_code == 422
    assert bad.json()["error"]["type"] == "validation_error"
    assert bad.json()["error"]["field"] == "refund"
    unknown_field = http.post(f"{first}/refunds/payjs", json={"payjs_order_id": "P1", "amount": 1})
    assert unknown_field.status_code == 422
    assert "amount" in unknown_field.json()["error"]["message"]
    missing = http.post(f"{first}/refunds/payjs", json={})
    assert missing.status_code == 422
    assert "payjs_order_id" in missing.json()["error"]["message"]
    assert http.post(f"{first}/refunds/alipay", json={}).status_code == 404
    assert http.post(f"{first}/refunds/payjs", content=b"[1]").status_code == 400
    assert http.post(f"{first}/refunds/payjs", content=b"{").status_code == 400
    sim.set_balance("wechatpay-v3", 0)
    refused = http.post(
        f"{first}/refunds/wechatpay-v3", json={**v3, "out_trade_no": "T3003", "notify_url": None}
    )
    sim.set_balance("wechatpay-v3", None)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"] == {
        "type": "provider_error",
        "code": "NOT_ENOUGH",
        "message": refused.json()["error"]["message"],
        "retryable": False,
    }
    return expected
