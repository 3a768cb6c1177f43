"""WeChatPayV3Client against an independent v3 server over real TLS (trustme), asyncio and trio.

The server (``reference_server.py``) verifies every request signature itself with the merchant's
public key and signs every reply, written from the public spec without paykit's code.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from paykit_async import (
    DecodeError,
    HTTPStatusError,
    MemoryStore,
    ProviderError,
    RefundOutcomeUnknown,
    SignatureError,
    derive_refund_no,
)
from paykit_async.providers.wechatpay_v3 import CertificatesUnavailable, WeChatPayV3Error

from . import spec
from .conftest import APIV3_KEY, MCHID, ServerFactory
from .reference_server import make_certificate

pytestmark = pytest.mark.anyio


async def test_refund_query_close_in_public_key_mode(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1001", 300)
    async with env.client() as client:
        result = await client.refund(
            refund=100, total=300, out_trade_no="T1001", out_refund_no="R|1001*@x", reason="商品已售完"
        )
        assert result.out_refund_no == "R|1001*@x"
        assert result.status == "PROCESSING"
        assert result.amount is not None
        assert (result.amount.refund, result.amount.total, result.amount.currency) == (100, 300, "CNY")
        assert result.attempts == 1
        assert not result.settled_by_query
        assert result.raw["channel"] == "ORIGINAL"
        queried = await client.query_refund("R|1001*@x")
        assert queried.status == "SUCCESS"
        assert queried.success_at is not None
        closed = await client.close_order("T2002")
        assert closed.status_code == 204
    received = env.server.received
    assert [r.verified for r in received] == [True, True, True]
    assert [r.status for r in received] == [200, 200, 204]
    refund_request = received[0]
    assert json.loads(refund_request.body) == {
        "out_trade_no": "T1001",
        "out_refund_no": "R|1001*@x",
        "reason": "商品已售完",
        "amount": {"refund": 100, "total": 300, "currency": "CNY"},
    }
    assert refund_request.headers["wechatpay-serial"] == env.server.public_key_id
    assert refund_request.headers["content-type"] == "application/json"
    assert received[1].target == "/v3/refund/domestic/refunds/R%7C1001%2A%40x"
    assert received[1].body == b""
    assert received[2].target == "/v3/pay/transactions/out-trade-no/T2002/close"
    assert json.loads(received[2].body) == {"mchid": MCHID}
    assert env.server.executions == {"R|1001*@x": 1}


async def test_a_wrongly_signed_request_is_refused_by_the_server(v3_server: ServerFactory) -> None:
    """The server really checks: a client holding another key gets 401 SIGN_ERROR."""
    env = v3_server()
    env.server.add_order("T1", 100)
    other = type(env)(base_url=env.base_url, server=env.server, tls=env.tls, merchant_key=spec.new_key())
    async with other.client() as client:
        with pytest.raises(WeChatPayV3Error) as caught:
            await client.refund(refund=100, total=100, out_trade_no="T1", out_refund_no="R1")
    assert caught.value.code == "SIGN_ERROR"
    assert caught.value.status_code == 401
    assert not caught.value.signed
    assert not caught.value.retryable
    assert env.server.executions == {}


@pytest.mark.parametrize("fault", ["system_error", "frequency_limited", "proxy_502"])
async def test_retryable_errors_resend_the_identical_body(v3_server: ServerFactory, fault: str) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", fault, times=2)
    async with env.client() as client:
        result = await client.refund(refund=300, total=300, out_trade_no="T1", idempotency_key="order-T1")
    expected_no = derive_refund_no(provider="wechatpay-v3", merchant=MCHID, key="order-T1")
    assert result.out_refund_no == expected_no
    assert result.attempts == 3
    attempts = env.server.requests_to("refund")
    assert len(attempts) == 3
    assert len({a.body for a in attempts}) == 1, "every retry sends the same bytes"
    assert json.loads(attempts[0].body)["out_refund_no"] == expected_no
    assert len({a.authorization["nonce_str"] for a in attempts}) == 3, "a fresh nonce per attempt"
    assert all(a.verified for a in attempts)
    assert env.server.executions == {expected_no: 1}


async def test_system_error_after_the_work_is_settled_by_query(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", "system_error_after", times=4)
    async with env.client() as client:
        result = await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
    assert result.settled_by_query
    assert result.status == "SUCCESS"
    assert len(env.server.requests_to("refund")) == 4
    assert env.server.executions == {"R1": 1}


@pytest.mark.parametrize(
    ("fault", "code", "status"), [("param_error", "PARAM_ERROR", 400), ("not_enough", "NOT_ENOUGH", 403)]
)
async def test_final_errors_are_not_retried(
    v3_server: ServerFactory, fault: str, code: str, status: int
) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", fault)
    async with env.client() as client:
        with pytest.raises(ProviderError) as caught:
            await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
    error = caught.value
    assert isinstance(error, WeChatPayV3Error)
    assert (error.code, error.status_code, error.signed, error.retryable) == (code, status, True, False)
    assert not error.outcome_unknown
    assert error.raw["code"] == code
    assert len(env.server.requests_to("refund")) == 1


async def test_an_unsigned_refusal_is_checked_by_a_verified_query(v3_server: ServerFactory) -> None:
    """An unsigned 403 could come from anyone: the refund is queried, and only WeChat's signed
    "no such refund" makes the refusal definite."""
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", "unsigned_not_enough")
    async with env.client() as client:
        with pytest.raises(WeChatPayV3Error, match="NOT_ENOUGH"):
            await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
    assert len(env.server.requests_to("query")) == 1


@pytest.mark.parametrize("fault", ["tamper", "unsigned", "stale", "probe", "forged"])
async def test_a_refund_reply_that_fails_verification_is_settled_by_query(
    v3_server: ServerFactory, fault: str
) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", fault)
    async with env.client() as client:
        result = await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
    assert result.settled_by_query, "never believed: the verified query decided"
    assert result.status == "SUCCESS"
    assert len(env.server.requests_to("refund")) == 1, "a signature failure is never retried"
    assert len(env.server.requests_to("query")) == 1
    assert env.server.executions == {"R1": 1}


@pytest.mark.parametrize(
    ("fault", "match"),
    [
        ("tamper", "does not verify"),
        ("unsigned", "not signed"),
        ("stale", "300 s"),
        ("probe", "SIGNTEST"),
        ("forged", "does not verify"),
    ],
)
async def test_a_query_or_close_reply_that_fails_verification_raises(
    v3_server: ServerFactory, fault: str, match: str
) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        env.server.fault("query", fault)
        with pytest.raises(SignatureError, match=match):
            await client.query_refund("R1")
        env.server.fault("close", fault)
        with pytest.raises(SignatureError, match=match):
            await client.close_order("T9")


async def test_unsettled_refund_is_unknown_with_its_number(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    env.server.fault("refund", "tamper")
    env.server.fault("query", "tamper")
    async with env.client() as client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        assert caught.value.refund_no == "R1"
        # Sent again with the same number: WeChat answers with the same refund.
        again = await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
    assert again.refund_id == env.server.refunds["R1"]["refund_id"]
    assert env.server.executions == {"R1": 1}


async def test_a_forged_signed_error_is_a_signature_error(v3_server: ServerFactory) -> None:
    env = v3_server()
    async with env.client() as client:
        env.server.fault("query", "forged_error")
        with pytest.raises(SignatureError):
            await client.query_refund("R404")
        with pytest.raises(WeChatPayV3Error, match="RESOURCE_NOT_EXISTS") as caught:
            await client.query_refund("R404")
    assert caught.value.signed
    assert caught.value.status_code == 404


async def test_idempotency_store_replays_without_calling_wechat(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    store = MemoryStore()
    async with env.client(idempotency_store=store) as client:
        first = await client.refund(refund=100, total=300, out_trade_no="T1", idempotency_key="k1")
        replay = await client.refund(refund=100, total=300, out_trade_no="T1", idempotency_key="k1")
    assert replay.replayed
    assert replay.out_refund_no == first.out_refund_no
    assert replay.amount == first.amount
    assert len(env.server.requests_to("refund")) == 1


# -- platform certificates ------------------------------------------------------------------------


async def test_certificate_mode_downloads_on_first_use(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    client = env.client()
    assert client.mode == "platform-certificate"
    assert env.server.received == [], "no I/O in the constructor"
    async with client:
        await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        await client.query_refund("R1")
    routes = [r.target for r in env.server.received]
    assert routes[0] == "/v3/certificates"
    assert routes.count("/v3/certificates") == 1
    assert all(r.verified for r in env.server.received)
    assert "wechatpay-serial" not in env.server.received[1].headers
    (held,) = client.certificates.keys.certificates()
    assert held.serial_no == env.server.certificates[0].serial


async def test_rotation_refreshes_once_and_verifies_the_same_reply(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
        env.server.rotate(make_certificate(0x4B1D))
        second = await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R2")
    assert not second.settled_by_query, "verified after the refresh, not settled"
    assert len(env.server.requests_to("certificates")) == 2
    assert [r.target for r in env.server.requests_to("refund")].count("/v3/refund/domestic/refunds") == 2
    assert env.server.executions == {"R1": 1, "R2": 1}


async def test_a_forged_serial_cannot_make_the_client_hammer_the_endpoint(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R1")
        for n in range(5):
            env.server.fault("query", "unknown_serial")
            with pytest.raises(SignatureError, match="does not know"):
                await client.query_refund("R1")
            assert len(env.server.requests_to("query")) == n + 1
    # One refresh for the first unknown serial; the others come within the minimum interval.
    assert len(env.server.requests_to("certificates")) == 2


async def test_certificates_are_refreshed_before_they_expire(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    short = make_certificate(0x5EC0DE, not_before=started, valid_for=dt.timedelta(hours=3))
    env.server.rotate(short)
    env.server.certificates.remove(env.server.certificates[0])
    env.server.add_order("T1", 300)
    now = [time.time()]
    async with env.client(wall_clock=lambda: now[0]) as client:
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R1")
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R2")
        assert len(env.server.requests_to("certificates")) == 1, "not again within a minute"
        longer = make_certificate(0x10F6)
        env.server.rotate(longer)
        now[0] += 61
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R3")
        assert len(env.server.requests_to("certificates")) == 2
        serials = {c.serial_no for c in client.certificates.keys.certificates()}
        assert serials == {short.serial, longer.serial}
        now[0] += 61
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R4")
    assert len(env.server.requests_to("certificates")) == 2, "fresh and long-lived: no refresh"


async def test_a_failed_download_sends_nothing(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    env.server.fault("certificates", "tamper")
    async with env.client() as client:
        with pytest.raises(CertificatesUnavailable) as caught:
            await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        assert not caught.value.outcome_unknown
        assert isinstance(caught.value.__cause__, SignatureError)
        # Within the minimum interval it is not tried again: fails fast, still nothing sent.
        with pytest.raises(CertificatesUnavailable):
            await client.query_refund("R1")
    assert env.server.requests_to("refund") == []
    assert len(env.server.requests_to("certificates")) == 1


async def test_a_certificate_list_with_a_nonce_aes_gcm_cannot_take_sends_nothing(
    v3_server: ServerFactory,
) -> None:
    # The list is decrypted before its signature can be checked (it holds the key that checks
    # it): a 7-byte nonce made AES-GCM raise ValueError out of refund(), not a PaykitError.
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    env.server.fault("certificates", "short_nonce")
    async with env.client() as client:
        with pytest.raises(CertificatesUnavailable) as caught:
            await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        assert isinstance(caught.value.__cause__, DecodeError)
        assert not caught.value.outcome_unknown
    assert env.server.requests_to("refund") == []


async def test_both_modes_accept_both_keys(v3_server: ServerFactory) -> None:
    env = v3_server(mode="both")
    env.server.add_order("T1", 300)
    async with env.client(platform_certificates=True) as client:
        assert client.mode == "public-key+platform-certificate"
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R1")
        env.server.rotate(env.server.certificates[0])
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R2")
    assert env.server.executions == {"R1": 1, "R2": 1}


async def test_public_key_only_refuses_certificate_signed_replies(v3_server: ServerFactory) -> None:
    env = v3_server(mode="both")
    env.server.rotate(env.server.certificates[0])
    env.server.add_order("T1", 300)
    async with env.client() as client:
        with pytest.raises(SignatureError, match="public key only"):
            await client.query_refund("R1")


# -- partner mode and notifications ---------------------------------------------------------------


async def test_partner_mode_refund_query_close(v3_server: ServerFactory) -> None:
    env = v3_server(sub_mchid="1900000001")
    env.server.add_order("T1", 300)
    async with env.client() as client:
        result = await client.refund(refund=300, total=300, out_trade_no="T1", idempotency_key="k")
        await client.query_refund(result.out_refund_no)
        await client.close_order("T5")
    refund, query, close = env.server.received
    assert json.loads(refund.body)["sub_mchid"] == "1900000001"
    assert result.out_refund_no == derive_refund_no(
        provider="wechatpay-v3", merchant=f"{MCHID}/1900000001", key="k"
    )
    assert query.target.endswith("?sub_mchid=1900000001")
    assert close.target == "/v3/pay/partner/transactions/out-trade-no/T5/close"
    assert json.loads(close.body) == {"sp_mchid": MCHID, "sub_mchid": "1900000001"}
    assert all(r.verified and r.status in (200, 204) for r in env.server.received)


async def test_receive_notification_confirms_by_query(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        refund = env.server.refunds["R1"]
        resource = spec.refund_resource(
            mchid=MCHID,
            out_refund_no="R1",
            refund=300,
            total=300,
            refund_id=refund["refund_id"],
            out_trade_no="T1",
            transaction_id=refund["transaction_id"],
        )
        body = spec.notification_body(APIV3_KEY.encode(), resource)
        assert env.server.public_key is not None
        assert env.server.public_key_id is not None
        headers = spec.signed_headers(env.server.public_key, env.server.public_key_id, body)
        note = await client.receive_refund_notification(headers, body)
        assert note.confirmed is not None
        assert note.confirmed.status == "SUCCESS"
        assert note.out_refund_no == "R1"
        # A notification that contradicts the verified query is refused.
        lying = spec.notification_body(APIV3_KEY.encode(), {**resource, "refund_id": "50300999"})
        with pytest.raises(SignatureError, match="contradicts"):
            await client.receive_refund_notification(
                spec.signed_headers(env.server.public_key, env.server.public_key_id, lying), lying
            )
        reply = client.notification_success_reply()
        assert (reply.status_code, reply.body) == (204, b"")
        failure = client.notification_failure_reply("busy")
        assert failure.status_code == 500
        assert json.loads(failure.body) == {"code": "FAIL", "message": "busy"}


async def test_receive_notification_refreshes_an_unknown_certificate(v3_server: ServerFactory) -> None:
    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        newer = make_certificate(0xC0FFEE)
        env.server.rotate(newer)
        refund = env.server.refunds["R1"]
        resource = spec.refund_resource(
            mchid=MCHID,
            out_refund_no="R1",
            refund=300,
            total=300,
            refund_id=refund["refund_id"],
            out_trade_no="T1",
        )
        del resource["transaction_id"]
        body = spec.notification_body(APIV3_KEY.encode(), resource)
        headers = spec.signed_headers(newer.key, newer.serial, body)
        with pytest.raises(SignatureError, match="does not know"):
            client.parse_refund_notification(headers, body)  # sync: no I/O, so no refresh
        note = await client.receive_refund_notification(headers, body)
    assert note.refund_status == "SUCCESS"
    assert len(env.server.requests_to("certificates")) == 2


async def test_an_echo_for_another_refund_is_refused(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.add_order("T1", 300)
    async with env.client() as client:
        await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        env.server.refunds["R2"] = env.server.refunds["R1"]
        with pytest.raises(DecodeError, match="concerns refund"):
            await client.query_refund("R2")


async def test_http_error_pages_are_http_status_errors(v3_server: ServerFactory) -> None:
    env = v3_server()
    env.server.fault("query", "proxy_502", times=10)
    async with env.client() as client:
        with pytest.raises(HTTPStatusError) as caught:
            await client.query_refund("R1")
    assert caught.value.status_code == 502
    assert len(env.server.requests_to("query")) == 4


async def test_migration_mode_survives_a_refused_certificate_download(v3_server: ServerFactory) -> None:
    """A merchant with only a public key (no platform certificate) in migration mode: the
    certificate download is refused, and the public key still verifies everything."""
    env = v3_server(mode="both")
    env.server.add_order("T1", 300)
    env.server.fault("certificates", "not_enough", times=10)
    async with env.client(platform_certificates=True) as client:
        await client.refund(refund=10, total=300, out_trade_no="T1", out_refund_no="R1")
        await client.query_refund("R1")
    assert len(env.server.requests_to("certificates")) == 1, "not retried within the minute"
    assert env.server.executions == {"R1": 1}


@pytest.mark.parametrize(
    ("anyio_backend", "transport_name"),
    [
        ("asyncio", "httpx"),
        ("trio", "httpx"),
        pytest.param("asyncio", "aiohttp", marks=pytest.mark.asyncio_only),
    ],
)
async def test_both_transports_over_tls_in_certificate_mode(
    v3_server: ServerFactory, transport_name: str
) -> None:
    from paykit_async import AiohttpTransport, HttpxTransport

    env = v3_server(mode="certificate")
    env.server.add_order("T1", 300)
    transport = AiohttpTransport() if transport_name == "aiohttp" else HttpxTransport()
    async with env.client(transport=transport) as client:
        result = await client.refund(refund=300, total=300, out_trade_no="T1", out_refund_no="R1")
        assert (await client.close_order("T2")).status_code == 204
    assert result.status == "PROCESSING"
    assert [r.status for r in env.server.received] == [200, 200, 204]
