"""The simulator's WeChat Pay API v3: checked with requests signed in the test from the spec, and
through WeChatPayV3Client (ledger rules, certificate mode, faults, notifications, refund_many)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from paykit_async import (
    PaykitError,
    RefundOutcomeUnknown,
    RetryPolicy,
    WeChatPayV3Client,
    refund_many,
)
from paykit_async.providers.wechatpay_v3 import WeChatPayV3Error
from paykit_async.simulator import (
    DEMO_WECHATPAY_V3,
    FaultKind,
    FaultPlan,
    FaultRule,
    Simulator,
    SimulatorConfig,
    WeChatPayV3Merchant,
    load_config,
)
from paykit_async.simulator.clock import ManualClock

from ..servers import read_body, serve_asgi
from ..wechatpay_v3 import spec

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.005, max_retry_after=0.01, deadline=10)
ROOT = "http://sim.test"


def _sim(**config: Any) -> Simulator:
    options: dict[str, Any] = {"auto_orders": True, "completion_delay": 0.0}
    options.update(config)
    return Simulator(SimulatorConfig(**options))


def _client(sim: Simulator, *, public_key: bool = True, **options: Any) -> WeChatPayV3Client:
    kwargs: dict[str, Any] = {
        "base_url": sim.base_url("wechatpay-v3"),
        "transport": sim.transport(),
        "retry": FAST,
    }
    kwargs.update(options)
    return WeChatPayV3Client(**sim.wechatpay_v3_keys().client_kwargs(public_key=public_key), **kwargs)


def _merchant_key(sim: Simulator) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(sim.wechatpay_v3_keys().private_key, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _platform_public(sim: Simulator) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(sim.wechatpay_v3_keys().wechatpay_public_key)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


async def _raw(
    sim: Simulator,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key: rsa.RSAPrivateKey | None = None,
    timestamp: int | None = None,
    mchid: str = DEMO_WECHATPAY_V3.mchid,
) -> httpx.Response:
    """A request signed in the test by the spec's rule (not by paykit)."""
    target = "/wechatpay-v3" + path
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    nonce = "593BEC0C930BF1AFEB40B4A08C8FB242"
    signature = spec.sign(key or _merchant_key(sim), spec.request_message(method, target, stamp, nonce, body))
    authorization = (
        f'WECHATPAY2-SHA256-RSA2048 serial_no="{DEMO_WECHATPAY_V3.certificate_serial_no}",'
        f'timestamp="{stamp}",mchid="{mchid}",signature="{signature}",nonce_str="{nonce}"'
    )
    headers = {"authorization": authorization, "accept": "application/json"}
    if body:
        headers["content-type"] = "application/json"
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url=ROOT) as http:
        return await http.request(method, target, content=body, headers=headers)


def _verified(sim: Simulator, response: httpx.Response) -> bool:
    headers = response.headers
    message = spec.reply_message(headers["wechatpay-timestamp"], headers["wechatpay-nonce"], response.content)
    return headers["wechatpay-serial"] == DEMO_WECHATPAY_V3.wechatpay_public_key_id and spec.verifies(
        _platform_public(sim), message, headers["wechatpay-signature"]
    )


def _refund_body(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "out_trade_no": "T1",
        "out_refund_no": "R1",
        "amount": {"refund": 100, "total": 300, "currency": "CNY"},
    }
    document.update(changes)
    return json.dumps(document).encode()


# -- the protocol, from the spec ------------------------------------------------------------------


async def test_a_spec_signed_refund_gets_a_signed_reply() -> None:
    sim = _sim()
    response = await _raw(sim, "POST", "/v3/refund/domestic/refunds", _refund_body(out_refund_no="R|1*@"))
    assert response.status_code == 200
    assert _verified(sim, response)
    document = response.json()
    assert document["out_refund_no"] == "R|1*@"
    assert document["amount"]["refund"] == 100
    assert isinstance(document["amount"]["refund"], int)
    assert document["status"] == "SUCCESS"
    query = await _raw(sim, "GET", "/v3/refund/domestic/refunds/R%7C1%2A%40")
    assert query.status_code == 200
    assert _verified(sim, query)
    assert query.json()["refund_id"] == document["refund_id"]
    close = await _raw(sim, "POST", "/v3/pay/transactions/out-trade-no/T9/close", b'{"mchid":"1900000109"}')
    assert close.status_code == 204
    assert close.content == b""
    assert _verified(sim, close)


async def test_a_request_funds_account_other_than_available_is_a_param_error() -> None:
    """/work/shared/specs/wechatpay-v3.md:64-65: a refund request's ``funds_account`` is ``AVAILABLE``
    (wechatpay-go ``ReqFundsAccount`` has no other value); WeChat refuses anything else."""
    sim = _sim()
    response = await _raw(sim, "POST", "/v3/refund/domestic/refunds", _refund_body(funds_account="UNSETTLED"))
    assert response.status_code == 400
    assert response.json()["code"] == "PARAM_ERROR"
    assert _verified(sim, response)
    assert sim.snapshot().refunds == {}
    accepted = await _raw(sim, "POST", "/v3/refund/domestic/refunds", _refund_body(funds_account="AVAILABLE"))
    assert accepted.status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"key": "other"},
        {"timestamp": int(time.time()) - 400},
        {"mchid": "1900000999"},
    ],
)
async def test_badly_signed_requests_get_an_unsigned_401(change: dict[str, Any]) -> None:
    sim = _sim()
    if change.get("key") == "other":
        change = {"key": spec.new_key()}
    response = await _raw(sim, "POST", "/v3/refund/domestic/refunds", _refund_body(), **change)
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    assert "wechatpay-signature" not in response.headers
    assert sim.snapshot().refunds == {}


async def test_a_tampered_body_fails_the_request_signature() -> None:
    sim = _sim()
    key = _merchant_key(sim)
    body = _refund_body()
    stamp, nonce, target = str(int(time.time())), "N1", "/wechatpay-v3/v3/refund/domestic/refunds"
    signature = spec.sign(key, spec.request_message("POST", target, stamp, nonce, body))
    items = f'mchid="1900000109",nonce_str="{nonce}",signature="{signature}",timestamp="{stamp}"'
    authorization = f'WECHATPAY2-SHA256-RSA2048 {items},serial_no="{DEMO_WECHATPAY_V3.certificate_serial_no}"'
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url=ROOT) as http:
        response = await http.post(
            target, content=body.replace(b"100", b"300"), headers={"authorization": authorization}
        )
    assert response.status_code == 401


# -- ledger rules through the client --------------------------------------------------------------


async def test_refund_rules() -> None:
    sim = _sim(wechatpay_max_refunds=3)
    sim.add_wechatpay_v3_order("T1", 300)
    async with _client(sim) as client:
        first = await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
        again = await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
        assert again.refund_id == first.refund_id
        with pytest.raises(WeChatPayV3Error, match="INVALID_REQUEST"):
            await client.refund(refund=150, total=300, out_trade_no="T1", out_refund_no="R1")
        with pytest.raises(WeChatPayV3Error, match="PARAM_ERROR"):
            await client.refund(refund=100, total=999, out_trade_no="T1", out_refund_no="R2")
        await client.refund(refund=150, total=300, out_trade_no="T1", out_refund_no="R2")
        with pytest.raises(WeChatPayV3Error, match="INVALID_REQUEST") as over:
            await client.refund(refund=51, total=300, out_trade_no="T1", out_refund_no="R3")
        assert "可退金额" in over.value.message
        await client.refund(refund=50, total=300, out_trade_no="T1", out_refund_no="R3")
        sim.add_wechatpay_v3_order("T2", 300)
        await client.refund(refund=1, total=300, out_trade_no="T2", out_refund_no="R4")
        with pytest.raises(WeChatPayV3Error, match="RESOURCE_NOT_EXISTS") as missing:
            await client.query_refund("R404")
        assert missing.value.signed
        assert missing.value.status_code == 404
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert snapshot.refund("wechatpay-v3", "R1").requests == 2
    assert snapshot.order("wechatpay-v3", "T1").refunded == 300


async def test_refund_count_limit_balance_and_unknown_orders() -> None:
    sim = _sim(wechatpay_max_refunds=1, auto_orders=False)
    sim.add_wechatpay_v3_order("T1", 300)
    sim.set_balance("wechatpay-v3", 250)
    async with _client(sim) as client:
        await client.refund(refund=200, total=300, out_trade_no="T1", out_refund_no="R1")
        with pytest.raises(WeChatPayV3Error, match="INVALID_REQUEST"):
            await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R2")
        sim.add_wechatpay_v3_order("T2", 300)
        with pytest.raises(WeChatPayV3Error, match="NOT_ENOUGH") as poor:
            await client.refund(refund=100, total=300, out_trade_no="T2", out_refund_no="R3")
        assert poor.value.status_code == 403
        with pytest.raises(WeChatPayV3Error, match="RESOURCE_NOT_EXISTS"):
            await client.refund(refund=100, total=300, out_trade_no="T404", out_refund_no="R4")
        sim.add_wechatpay_v3_order("T3", 300, paid=False)
        with pytest.raises(WeChatPayV3Error, match="INVALID_REQUEST"):
            await client.refund(refund=100, total=300, out_trade_no="T3", out_refund_no="R5")
    assert sim.balance("wechatpay-v3") == 50


async def test_close_order_rules() -> None:
    clock = ManualClock()
    sim = Simulator(SimulatorConfig(completion_delay=0.0), clock=clock)
    sim.add_wechatpay_v3_order("PAID", 100)
    sim.add_wechatpay_v3_order("NEW", 100, paid=False)
    async with _client(sim) as client:
        with pytest.raises(WeChatPayV3Error, match="TRADE_ERROR"):
            await client.close_order("PAID")
        with pytest.raises(WeChatPayV3Error, match="INVALID_REQUEST"):
            await client.close_order("NEW")
        clock.advance(301)
        assert (await client.close_order("NEW")).status_code == 204
        assert (await client.close_order("NEW")).status_code == 204, "closing again is not an error"
        assert (await client.close_order("UNKNOWN")).status_code == 204
    assert sim.snapshot().order("wechatpay-v3", "NEW").closed


async def test_partner_mode_through_the_simulator() -> None:
    sim = _sim()
    async with _client(sim, sub_mchid="1900000001") as partner, _client(sim) as direct:
        result = await partner.refund(refund=100, total=100, out_trade_no="T1", out_refund_no="R1")
        assert (await partner.query_refund("R1")).refund_id == result.refund_id
        with pytest.raises(WeChatPayV3Error, match="RESOURCE_NOT_EXISTS"):
            await direct.query_refund("R1")
        assert (await partner.close_order("T2")).status_code == 204
    (refund_record,) = [r for r in sim.requests() if r.endpoint == "refund"]
    assert refund_record.fields["sub_mchid"] == "1900000001"


# -- certificate mode -----------------------------------------------------------------------------


async def test_certificate_mode_and_rotation() -> None:
    merchant = WeChatPayV3Merchant(
        mchid="1900000109",
        certificate_serial_no="ABC123",
        apiv3_key=DEMO_WECHATPAY_V3.apiv3_key,
        mode="certificate",
    )
    sim = _sim(wechatpay_v3=merchant)
    async with _client(sim, public_key=False) as client:
        await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
        first = {c.serial_no for c in client.certificates.keys.certificates()}
        rotated = sim.rotate_wechatpay_v3_certificate()
        assert rotated.serial not in first
        result = await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R2")
        assert not result.settled_by_query
        assert rotated.serial in {c.serial_no for c in client.certificates.keys.certificates()}
    # A client in public-key mode still gets public-key signatures (its Wechatpay-Serial asks).
    async with _client(sim) as client:
        await client.query_refund("R1")
    downloads = [r for r in sim.requests() if r.endpoint == "certificates"]
    assert len(downloads) == 2


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [kind.value for kind in FaultKind])
async def test_each_fault_is_survived_exactly_once(fault: str) -> None:
    plan = FaultPlan(seed=1, rules=(FaultRule(provider="wechatpay-v3", endpoint="refund", **{fault: 0.6}),))
    sim = _sim(faults=plan)
    async with _client(sim) as client:
        outcomes = []
        for i in range(12):
            try:
                result = await client.refund(
                    refund=100, total=100, out_trade_no=f"T{i}", out_refund_no=f"R{i}"
                )
            except RefundOutcomeUnknown:
                outcomes.append("unknown")
            except PaykitError:
                outcomes.append("failed")  # definite: a verified query found no such refund
            else:
                outcomes.append("settled" if result.settled_by_query else "ok")
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert {r.fault for r in sim.requests()} >= {fault}
    assert "ok" in outcomes or "settled" in outcomes
    for i, outcome in enumerate(outcomes):
        if outcome in ("ok", "settled"):
            assert ("wechatpay-v3", f"R{i}") in snapshot.refunds
        if outcome == "failed":
            assert ("wechatpay-v3", f"R{i}") not in snapshot.refunds


# -- notifications --------------------------------------------------------------------------------


class Receiver:
    """A merchant notify endpoint: parses each notification with the client; fails the first N."""

    def __init__(self, client: WeChatPayV3Client, fail_first: int = 0) -> None:
        self.client = client
        self.fail_first = fail_first
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.notes: list[Any] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self._lock:
            self.received.append((headers, body))
            failing = len(self.received) <= self.fail_first
        if failing:
            reply = self.client.notification_failure_reply("busy")
        else:
            self.notes.append(self.client.parse_refund_notification(headers, body))
            reply = self.client.notification_success_reply()
        await send(
            {
                "type": "http.response.start",
                "status": reply.status_code,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


@pytest.fixture
def receiver_url() -> Iterator[tuple[dict[str, Receiver], str]]:
    """A notify endpoint served over HTTP; the test puts its :class:`Receiver` in the dict."""
    holder: dict[str, Receiver] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await holder["receiver"](scope, receive, send)

    with serve_asgi(app, tls=None) as url:
        yield holder, url


async def test_notifications_are_signed_encrypted_and_redelivered(receiver_url: Any) -> None:
    holder, url = receiver_url
    sim = Simulator(
        SimulatorConfig(
            auto_orders=True,
            completion_delay=0.0,
            notify_schedule=(0.0, 0.05, 0.1),
            notify_poll_interval=0.01,
        )
    )
    async with _client(sim) as client:
        receiver = Receiver(client, fail_first=1)
        holder["receiver"] = receiver
        async with sim.running():
            await client.refund(
                refund=100, total=300, out_trade_no="T1", out_refund_no="R1", notify_url=url + "/n"
            )
            with anyio.fail_after(10):
                (delivery,) = await sim.wait_delivered(1)
    assert delivery.attempts == 2
    (note,) = receiver.notes
    assert note.event_type == "REFUND.SUCCESS"
    assert (note.out_refund_no, note.refund_status, note.mchid) == ("R1", "SUCCESS", "1900000109")
    assert note.amount is not None
    assert (note.amount.refund, note.amount.total) == (100, 300)
    (first_headers, first_body), (second_headers, second_body) = receiver.received
    assert first_body == second_body
    assert first_headers["wechatpay-nonce"] != second_headers["wechatpay-nonce"], "signed at each delivery"
    # Independently: the signature verifies with the public key and the resource decrypts.
    message = spec.reply_message(
        second_headers["wechatpay-timestamp"], second_headers["wechatpay-nonce"], second_body
    )
    assert spec.verifies(_platform_public(sim), message, second_headers["wechatpay-signature"])
    resource = json.loads(second_body)["resource"]
    plain = spec.decrypt(
        DEMO_WECHATPAY_V3.apiv3_key.encode(),
        resource["ciphertext"],
        nonce=resource["nonce"],
        associated_data=resource["associated_data"],
    )
    assert json.loads(plain)["out_refund_no"] == "R1"


async def test_partner_notifications_name_sp_and_sub_merchant(receiver_url: Any) -> None:
    holder, url = receiver_url
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, notify_poll_interval=0.01))
    async with _client(sim, sub_mchid="1900000001") as client:
        receiver = Receiver(client)
        holder["receiver"] = receiver
        async with sim.running():
            await client.refund(
                refund=100, total=300, out_trade_no="T1", out_refund_no="R1", notify_url=url + "/n"
            )
            with anyio.fail_after(10):
                await sim.wait_delivered(1)
        (note,) = receiver.notes
        assert (note.sp_mchid, note.sub_mchid, note.mchid) == ("1900000109", "1900000001", None)
        confirmed = await client.receive_refund_notification(*receiver.received[0])
        assert confirmed.confirmed is not None
        assert confirmed.confirmed.refund_id == note.refund_id


# -- batches and configuration --------------------------------------------------------------------


async def test_refund_many_through_a_faulty_simulator_pays_each_order_once() -> None:
    plan = FaultPlan(
        seed=7,
        rules=(
            FaultRule(
                provider="wechatpay-v3",
                drop_after=0.05,
                bad_signature=0.05,
                retryable_code=0.05,
                truncated=0.05,
            ),
        ),
    )
    sim = _sim(faults=plan)
    requests = []
    for i in range(60):
        sim.add_wechatpay_v3_order(f"T{i}", 1000 + i)
        requests.append({"out_trade_no": f"T{i}", "refund": 500, "total": 1000 + i})
    outcomes = []
    async with (
        _client(sim) as client,
        refund_many(client, requests, concurrency=8, idempotency_key=lambda i, _r: f"k{i}") as stream,
    ):
        async for outcome in stream:
            outcomes.append(outcome)
    snapshot = sim.snapshot()
    assert snapshot.duplicate_payouts == 0
    assert all(snapshot.payouts_per_order.get(f"wechatpay-v3:T{i}", 0) <= 1 for i in range(60))
    for outcome in outcomes:
        if outcome.ok:
            assert ("wechatpay-v3", outcome.refund_no) in snapshot.refunds
    assert sum(o.ok for o in outcomes) >= 50


def test_config_file_section(tmp_path: Any) -> None:
    keys = Simulator().wechatpay_v3_keys()
    written = keys.write(tmp_path)
    path = tmp_path / "sim.toml"
    path.write_text(
        "[wechatpay-v3]\n"
        'mchid = "1230000109"\n'
        'certificate_serial_no = "DEADBEEF"\n'
        'apiv3_key = "0123456789abcdef0123456789abcdef"\n'
        f'private_key = "{written["private_key"]}"\n'
        f'wechatpay_public_key = "{written["wechatpay_public_key"]}"\n'
        'mode = "certificate"\n'
    )
    config = load_config(path)
    assert config.wechatpay_v3.mchid == "1230000109"
    assert config.wechatpay_v3.mode == "certificate"
    sim = Simulator(config)
    # The merchant key from the file is the one the simulator verifies with.
    assert sim.wechatpay_v3_keys().private_key == keys.private_key
    assert (tmp_path / "apiclient_key.pem").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError, match="mode"):
        WeChatPayV3Merchant(mchid="1", certificate_serial_no="A", apiv3_key="0" * 32, mode="both")


def test_serve_writes_the_v3_key_files_and_a_client_uses_them(tmp_path: Any) -> None:
    """``paykit simulator serve --v3-keys-dir``: a client built from the written files refunds,
    on asyncio and on trio."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    keys_dir = tmp_path / "v3keys"
    code = "from paykit_async.simulator.cli import simulator; simulator()"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "serve",
            "--port",
            str(port),
            "--auto-orders",
            "--v3-keys-dir",
            str(keys_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    root = f"http://127.0.0.1:{port}"

    async def refund(number: str) -> str:
        async with WeChatPayV3Client(
            DEMO_WECHATPAY_V3.mchid,
            keys_dir / "apiclient_key.pem",
            DEMO_WECHATPAY_V3.certificate_serial_no,
            DEMO_WECHATPAY_V3.apiv3_key,
            wechatpay_public_key=keys_dir / "wechatpay_public_key.pem",
            wechatpay_public_key_id=DEMO_WECHATPAY_V3.wechatpay_public_key_id,
            base_url=root + "/wechatpay-v3",
            retry=FAST,
        ) as client:
            result = await client.refund(
                refund=100, total=100, out_trade_no=f"T{number}", out_refund_no=number
            )
        return result.out_refund_no

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(root + "/")
                break
            except httpx.ConnectError:
                assert process.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert anyio.run(refund, "R1", backend="asyncio") == "R1"
        assert anyio.run(refund, "R2", backend="trio") == "R2"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert f"WeChat Pay v3  base_url={root}/wechatpay-v3" in output
    assert str(keys_dir / "apiclient_key.pem") in output
    assert "SIMULATOR DEMO KEY" in output
