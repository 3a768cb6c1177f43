"""WeChat v2 refund notifications are not authenticated by the protocol (issue 12, finding 6).

``req_info`` is AES-256-ECB without a MAC inside an unsigned envelope, so the blocks of two
genuine notifications of one merchant splice into a third that decrypts cleanly. The splice is
made here from two real simulator notifications: ``parse_refund_notification`` (unconfirmed)
shows the forgery, ``receive_refund_notification`` refuses it by asking the provider.
"""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET

import anyio
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from paykit_async import SignatureError, WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY, Simulator, SimulatorConfig
from paykit_async.simulator.wechatpay import encrypt_req_info

BACKENDS = ["asyncio", "trio"]


def _refund_notification(sim: Simulator, out_trade_no: str, out_refund_no: str) -> bytes:
    """Refund 100 of a 100 order on ``sim`` and return the notification it sends."""

    async def main() -> None:
        async with _client(sim) as client:
            await client.refund(
                out_trade_no=out_trade_no,
                out_refund_no=out_refund_no,
                total_fee=100,
                refund_fee=100,
                notify_url="https://shop.example/notify",
            )

    anyio.run(main)
    sim.settle_due()
    (delivery,) = [d for d in sim.deliveries() if d.reference == out_refund_no]
    return delivery.body


def _client(sim: Simulator, **options: object) -> WeChatPayClient:
    return WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=sim.base_url("wechatpay"),
        transport=sim.transport(),
        **options,  # type: ignore[arg-type]
    )


def _envelope(body: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(body)}


def _plaintext(req_info: str) -> bytes:
    key = hashlib.md5(DEMO_WECHATPAY.api_key.encode()).hexdigest().encode()
    decryptor = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
    return decryptor.update(base64.b64decode(req_info)) + decryptor.finalize()


def _with_req_info(body: bytes, ciphertext: bytes) -> bytes:
    outer = _envelope(body)
    outer["req_info"] = base64.b64encode(ciphertext).decode()
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in outer.items()) + "</xml>").encode()


@pytest.fixture(scope="module")
def splice() -> dict[str, object]:
    """Refund A (SUCCESS) on one simulator, refund B (REFUNDCLOSE) of the same merchant on another."""
    succeeded = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    closed = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0, refund_outcome="closed"))
    body_a = _refund_notification(succeeded, "T-A-0001", "R-A-0001")
    body_b = _refund_notification(closed, "T-B-0001", "R-B-0001")
    ct_a = base64.b64decode(_envelope(body_a)["req_info"])
    ct_b = base64.b64decode(_envelope(body_b)["req_info"])
    plain_a = _plaintext(_envelope(body_a)["req_info"])
    # Cut at the first block boundary after A's out_refund_no: A's numbers, B's status.
    end = plain_a.index(b"</out_refund_no>") + len(b"</out_refund_no>")
    cut = -(-end // 16) * 16
    return {
        "sim": succeeded,
        "genuine": body_a,
        "numbers_of_a": _with_req_info(body_a, ct_a[:cut] + ct_b[cut:]),
        "issue_80": _with_req_info(body_a, ct_a[:80] + ct_b[80:]),
    }


def test_the_splice_decrypts_and_is_believed_by_the_unconfirmed_parser(splice: dict[str, object]) -> None:
    sim = splice["sim"]
    assert isinstance(sim, Simulator)
    note = _client(sim).parse_refund_notification(splice["numbers_of_a"])  # type: ignore[arg-type]
    # What a merchant acting on parse_refund_notification would have believed:
    assert (note.out_refund_no, note.refund_status) == ("R-A-0001", "REFUNDCLOSE")
    assert not note.confirmed
    assert sim.snapshot().refund("wechatpay", "R-A-0001").state == "SUCCESS"  # yet A succeeded


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["numbers_of_a", "issue_80"])
def test_receive_refuses_the_splice(splice: dict[str, object], backend: str, which: str) -> None:
    sim = splice["sim"]
    assert isinstance(sim, Simulator)

    async def main() -> None:
        async with _client(sim) as client:
            with pytest.raises(SignatureError, match="not trusting"):
                await client.receive_refund_notification(splice[which])  # type: ignore[arg-type]

    anyio.run(main, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_receive_confirms_a_genuine_notification(splice: dict[str, object], backend: str) -> None:
    sim = splice["sim"]
    assert isinstance(sim, Simulator)
    body = splice["genuine"]
    assert isinstance(body, bytes)

    async def main() -> None:
        async with _client(sim) as client:
            for form in (body, body.decode(), _envelope(body)):
                note = await client.receive_refund_notification(form)
                assert note.confirmed
                assert (note.out_refund_no, note.out_trade_no, note.refund_status) == (
                    "R-A-0001",
                    "T-A-0001",
                    "SUCCESS",
                )
                assert note.refund_fee == 100
                assert note.success_time

    anyio.run(main, backend=backend)


def _notification(outer: dict[str, str], inner: dict[str, str]) -> bytes:
    plain = ("<root>" + "".join(f"<{k}>{v}</{k}>" for k, v in inner.items()) + "</root>").encode()
    fields = {**outer, "req_info": encrypt_req_info(plain, DEMO_WECHATPAY.api_key)}
    return ("<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in fields.items()) + "</xml>").encode()


INNER = {"out_refund_no": "R1", "refund_status": "SUCCESS", "refund_fee": "1"}
OUTER = {"return_code": "SUCCESS", "appid": DEMO_WECHATPAY.appid, "mch_id": DEMO_WECHATPAY.mch_id}


@pytest.mark.parametrize(
    ("outer", "accepted"),
    [
        ({**OUTER, "sub_mch_id": "1900000200", "sub_appid": "wxsub00000000001"}, True),
        ({**OUTER, "sub_mch_id": "1900000200"}, True),  # sub_appid is optional in the envelope
        ({**OUTER, "sub_mch_id": "1900000200", "sub_appid": "wxsub00000000002"}, False),
        ({**OUTER, "sub_mch_id": "1900000201", "sub_appid": "wxsub00000000001"}, False),
        (OUTER, False),
    ],
    ids=["same", "no-sub-appid", "other-sub-appid", "other-sub-mch", "no-sub-mch"],
)
def test_service_provider_mode_checks_sub_mch_id_and_sub_appid(outer: dict[str, str], accepted: bool) -> None:
    client = WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        sub_mch_id="1900000200",
        sub_appid="wxsub00000000001",
        base_url="http://127.0.0.1:9",
    )
    body = _notification(outer, INNER)
    if accepted:
        assert client.parse_refund_notification(body).out_refund_no == "R1"
    else:
        with pytest.raises(SignatureError, match="another"):
            client.parse_refund_notification(body)


@pytest.mark.parametrize("backend", BACKENDS)
def test_receive_refuses_a_refund_the_provider_does_not_know(backend: str) -> None:
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    body = _notification(OUTER, {**INNER, "out_refund_no": "NEVER-MADE"})

    async def main() -> None:
        async with _client(sim) as client:
            with pytest.raises(SignatureError, match="no refund"):
                await client.receive_refund_notification(body)

    anyio.run(main, backend=backend)


def test_the_docstrings_say_what_is_authenticated() -> None:
    assert "not authenticated by the protocol" in (WeChatPayClient.parse_refund_notification.__doc__ or "")
    assert "CONFIRM" in (WeChatPayClient.receive_refund_notification.__doc__ or "")


@pytest.mark.parametrize("backend", BACKENDS)
def test_unchecked_merchant_ids_of_the_envelope_never_reach_the_confirmed_notification(
    splice: dict[str, object], backend: str
) -> None:
    # The envelope is unsigned. A merchant that is no sub-merchant has no sub_mch_id/sub_appid to
    # compare, so an attacker's were passed through into the record "confirmed" by the query.
    sim = splice["sim"]
    body = splice["genuine"]
    assert isinstance(sim, Simulator)
    assert isinstance(body, bytes)
    outer = {**_envelope(body), "sub_mch_id": "1900000999", "sub_appid": "wxattacker000001"}
    forged = ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in outer.items()) + "</xml>").encode()

    async def main() -> None:
        async with _client(sim) as client:
            note = await client.receive_refund_notification(forged)
        assert note.confirmed
        assert (note.appid, note.mch_id) == (DEMO_WECHATPAY.appid, DEMO_WECHATPAY.mch_id)
        assert (note.sub_mch_id, note.sub_appid) == (None, None)

    anyio.run(main, backend=backend)


def test_a_sub_appid_this_sub_merchant_cannot_check_is_not_kept() -> None:
    client = WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        sub_mch_id="1900000200",
        base_url="http://127.0.0.1:9",
    )
    body = _notification({**OUTER, "sub_mch_id": "1900000200", "sub_appid": "wxattacker000001"}, INNER)
    note = client.parse_refund_notification(body)
    assert (note.sub_mch_id, note.sub_appid) == ("1900000200", None)
