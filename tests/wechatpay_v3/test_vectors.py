"""Known answers for the v3 request signature, reply verification and AEAD decryption.

Vectors come from outside this project: wechatpay-go's published tests (see
``public_vectors.py`` for the files and commit), the AES-GCM specification, and messages built in
the test with ``cryptography`` directly from the spec's rules (``spec.py``) — never from
paykit's own signer or the simulator.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from paykit_async import DecodeError, SignatureError, WeChatPayV3Client
from paykit_async.pipeline.core import Operation
from paykit_async.providers.wechatpay_v3 import AeadAes256Gcm
from paykit_async.providers.wechatpay_v3.notifications import NotificationParser
from paykit_async.providers.wechatpay_v3.verification import (
    KeyRing,
    PlatformCertificate,
    lower_headers,
    verify_signed,
)
from paykit_async.signing import Sha256WithRsaSigner, Sha256WithRsaVerifier
from paykit_async.signing.rsa import authorization_header, load_public_key, request_message

from . import public_vectors as pv
from . import spec

APIV3_KEY = "0123456789abcdefABCDEF0123456789"
PUBLIC_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


def _go_key() -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pv.GO_SIGNER_PRIVATE_KEY.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


# -- the request signature ------------------------------------------------------------------------


def test_signer_reproduces_the_wechatpay_go_signature() -> None:
    signer = Sha256WithRsaSigner.from_pem(pv.GO_SIGNER_PRIVATE_KEY.encode())
    assert signer.sign(pv.GO_SIGNER_MESSAGE) == pv.GO_SIGNER_SIGNATURE


def test_public_key_and_certificate_verify_the_wechatpay_go_signature() -> None:
    for pem in (pv.GO_PUBLIC_KEY, pv.GO_NOTIFY_CERTIFICATE):
        verifier = Sha256WithRsaVerifier.from_pem(pem.encode())
        assert verifier.verify(b"source", pv.GO_SIGNER_SIGNATURE)
        assert not verifier.verify(b"wrong source", pv.GO_SIGNER_SIGNATURE)
        assert not verifier.verify(b"", pv.GO_SIGNER_SIGNATURE)
        assert not verifier.verify(b"source", "")
        assert not verifier.verify(b"source", "not base64!")
        assert not verifier.verify(b"source", pv.GO_SIGNER_SIGNATURE[:-8] + "AAAAAAA=")


def test_request_messages_match_the_wechatpay_go_credential_vector() -> None:
    ts, nonce = pv.GO_CREDENTIAL_TIMESTAMP, pv.GO_CREDENTIAL_NONCE
    assert request_message("GET", "/v3/certificates", ts, nonce, b"") == pv.GO_CREDENTIAL_GET_MESSAGE
    post = request_message("POST", "/v3/certificates", ts, nonce, pv.GO_CREDENTIAL_POST_BODY)
    assert post == pv.GO_CREDENTIAL_POST_MESSAGE
    # The same messages, built by the spec's rule in the test.
    assert (
        spec.request_message("GET", "/v3/certificates", str(ts), nonce, b"") == pv.GO_CREDENTIAL_GET_MESSAGE
    )


def test_authorization_header_carries_the_five_items() -> None:
    header = authorization_header(
        mchid="1234567890",
        serial_no="0123456789ABC",
        nonce="A1B2C3D4E5F6G7",
        timestamp=1624523846,
        signature="c2ln",
    )
    assert spec.parse_authorization(header) == {
        "mchid": "1234567890",
        "nonce_str": "A1B2C3D4E5F6G7",
        "timestamp": "1624523846",
        "serial_no": "0123456789ABC",
        "signature": "c2ln",
    }


def _client(**kwargs: object) -> WeChatPayV3Client:
    options: dict[str, object] = {
        "wechatpay_public_key": pv.GO_PUBLIC_KEY.encode(),
        "wechatpay_public_key_id": PUBLIC_KEY_ID,
    }
    options.update(kwargs)
    return WeChatPayV3Client(
        "1900000109",
        pv.GO_SIGNER_PRIVATE_KEY.encode(),
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        APIV3_KEY,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("name", "url", "method"),
    [
        ("refund", "https://api.mch.weixin.qq.com/v3/refund/domestic/refunds", "POST"),
        (
            "query_refund",
            "https://api.mch.weixin.qq.com/v3/refund/domestic/refunds/R%7C1%2A%40?sub_mchid=19",
            "GET",
        ),
        ("close_order", "https://api.mch.weixin.qq.com/v3/pay/transactions/out-trade-no/T1/close", "POST"),
    ],
)
def test_every_request_is_signed_as_the_spec_says(name: str, url: str, method: str) -> None:
    """The Authorization header verifies over the message rebuilt in the test from what is sent;
    PKCS#1 v1.5 is deterministic, so it is also exactly cryptography's signature of it."""
    client = _client(wall_clock=lambda: 1700000000.5)
    fields = {"mchid": "1900000109"} if method == "POST" else {"out_refund_no": "R|1*@"}
    request = client.dialect.encode(Operation(provider="wechatpay-v3", name=name, url=url, fields=fields))
    assert request.method == method
    items = spec.parse_authorization(request.headers["authorization"])
    assert items["mchid"] == "1900000109"
    assert items["serial_no"] == "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
    assert items["timestamp"] == "1700000000"
    assert len(items["nonce_str"]) == 32
    target = url.removeprefix("https://api.mch.weixin.qq.com")
    message = spec.request_message(method, target, items["timestamp"], items["nonce_str"], request.content)
    assert spec.verifies(_go_key().public_key(), message, items["signature"])
    assert items["signature"] == spec.sign(_go_key(), message)
    assert request.headers["wechatpay-serial"] == PUBLIC_KEY_ID
    if method == "GET":
        assert request.content == b""
    else:
        assert json.loads(request.content) == fields
        assert request.headers["content-type"] == "application/json"


def test_each_attempt_gets_a_fresh_nonce_and_timestamp() -> None:
    now = [1700000000.0]
    client = _client(wall_clock=lambda: now[0])
    operation = Operation(
        provider="wechatpay-v3",
        name="refund",
        url="https://x.test/v3/refund/domestic/refunds",
        fields={"a": "b"},
    )
    first = spec.parse_authorization(client.dialect.encode(operation).headers["authorization"])
    now[0] += 7
    second = spec.parse_authorization(client.dialect.encode(operation).headers["authorization"])
    assert first["nonce_str"] != second["nonce_str"]
    assert int(second["timestamp"]) == int(first["timestamp"]) + 7
    assert first["signature"] != second["signature"]


# -- AEAD_AES_256_GCM -----------------------------------------------------------------------------


def test_aead_decrypts_the_gcm_specification_vector() -> None:
    import base64

    cipher = AeadAes256Gcm(pv.GCM_KEY)
    sealed = base64.b64encode(pv.GCM_CIPHERTEXT + pv.GCM_TAG).decode()
    assert cipher.decrypt(nonce=pv.GCM_IV, associated_data=pv.GCM_AAD, ciphertext=sealed) == pv.GCM_PLAINTEXT
    # Every part is authenticated: key, nonce, associated data, ciphertext, tag.
    other_key = AeadAes256Gcm(bytes(32))
    with pytest.raises(SignatureError):
        other_key.decrypt(nonce=pv.GCM_IV, associated_data=pv.GCM_AAD, ciphertext=sealed)
    with pytest.raises(SignatureError):
        cipher.decrypt(nonce=pv.GCM_IV[::-1], associated_data=pv.GCM_AAD, ciphertext=sealed)
    with pytest.raises(SignatureError):
        cipher.decrypt(nonce=pv.GCM_IV, associated_data=pv.GCM_AAD + b"x", ciphertext=sealed)
    flipped = bytearray(pv.GCM_CIPHERTEXT + pv.GCM_TAG)
    for position in (0, len(pv.GCM_CIPHERTEXT) - 1, len(flipped) - 1):
        changed = bytearray(flipped)
        changed[position] ^= 1
        with pytest.raises(SignatureError):
            cipher.decrypt(
                nonce=pv.GCM_IV, associated_data=pv.GCM_AAD, ciphertext=base64.b64encode(changed).decode()
            )


def test_aead_decrypts_the_wechatpay_go_vector() -> None:
    cipher = AeadAes256Gcm(pv.GO_AES_KEY)
    plain = cipher.decrypt(
        nonce=pv.GO_AES_NONCE, associated_data=pv.GO_AES_ASSOCIATED_DATA, ciphertext=pv.GO_AES_CIPHERTEXT
    )
    assert plain == pv.GO_AES_PLAINTEXT
    with pytest.raises(SignatureError):
        AeadAes256Gcm(b"testAPIv3Key1111").decrypt(
            nonce=pv.GO_AES_NONCE, associated_data=pv.GO_AES_ASSOCIATED_DATA, ciphertext=pv.GO_AES_CIPHERTEXT
        )
    with pytest.raises(DecodeError):
        cipher.decrypt(nonce=pv.GO_AES_NONCE, associated_data="", ciphertext="invalid cipher")
    # Shorter than a tag: cannot even be tried (wechatpay-go's "invalid ciphertext" case).
    with pytest.raises(DecodeError, match="shorter"):
        cipher.decrypt(
            nonce=pv.GO_AES_NONCE, associated_data=pv.GO_AES_ASSOCIATED_DATA, ciphertext="SGVsbG8gV29ybGQK"
        )


def test_apiv3_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AeadAes256Gcm.for_apiv3_key("testMchAPIv3Key0")
    assert AeadAes256Gcm.for_apiv3_key(APIV3_KEY)


# -- the wechatpay-go notification ----------------------------------------------------------------


def _go_certificate_keyring() -> KeyRing:
    certificate = x509.load_pem_x509_certificate(pv.GO_NOTIFY_CERTIFICATE.encode())
    key = certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    keys = KeyRing(use_certificates=True)
    keys.install(
        [
            PlatformCertificate(
                serial_no=format(certificate.serial_number, "X"),
                not_before=certificate.not_valid_before_utc.timestamp(),
                not_after=certificate.not_valid_after_utc.timestamp(),
                pem=pv.GO_NOTIFY_CERTIFICATE.encode(),
                verifier=Sha256WithRsaVerifier(key),
            )
        ],
        now=pv.GO_NOTIFY_TIMESTAMP,
    )
    return keys


def test_the_wechatpay_go_notification_verifies_and_decrypts() -> None:
    keys = _go_certificate_keyring()
    headers = lower_headers(pv.GO_NOTIFY_HEADERS)
    at = float(pv.GO_NOTIFY_TIMESTAMP)
    assert verify_signed(headers, pv.GO_NOTIFY_BODY, keys, now=at) == pv.GO_NOTIFY_SERIAL
    # Within ±300 s it verifies; beyond, it is refused as stale.
    verify_signed(headers, pv.GO_NOTIFY_BODY, keys, now=at + 300)
    verify_signed(headers, pv.GO_NOTIFY_BODY, keys, now=at - 300)
    for now in (at + 301, at - 301, time.time()):
        with pytest.raises(SignatureError, match="300 s"):
            verify_signed(headers, pv.GO_NOTIFY_BODY, keys, now=now)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signed(headers, pv.GO_NOTIFY_BODY.replace(b"payscore", b"payscorf", 1), keys, now=at)
    resource = json.loads(pv.GO_NOTIFY_BODY)["resource"]
    plain = AeadAes256Gcm(pv.GO_NOTIFY_APIV3_KEY).decrypt(
        nonce=resource["nonce"],
        associated_data=resource["associated_data"],
        ciphertext=resource["ciphertext"],
    )
    assert plain == pv.GO_NOTIFY_PLAINTEXT


def test_the_wechatpay_go_notification_is_verified_then_refused_as_not_a_refund() -> None:
    parser = NotificationParser(
        keys=_go_certificate_keyring(),
        cipher=AeadAes256Gcm(pv.GO_NOTIFY_APIV3_KEY),
        mchid="1234567890",
        sub_mchid=None,
        wall_clock=lambda: float(pv.GO_NOTIFY_TIMESTAMP),
    )
    with pytest.raises(DecodeError, match="not a refund notification"):
        parser.parse(pv.GO_NOTIFY_HEADERS, pv.GO_NOTIFY_BODY)


# -- a refund notification built in the test from the spec ----------------------------------------


def _notification(resource: dict[str, object], **headers: str) -> tuple[dict[str, str], bytes]:
    body = spec.notification_body(APIV3_KEY.encode(), resource)
    signed = spec.signed_headers(_go_key(), PUBLIC_KEY_ID, body)
    signed.update(headers)
    return signed, body


def test_refund_notification_built_from_the_spec_parses_with_int_amounts() -> None:
    client = _client()
    headers, body = _notification(spec.refund_resource(mchid="1900000109", refund=100, total=300))
    note = client.parse_refund_notification(headers, body)
    assert note.id == "EV-2018022511223320873"
    assert note.event_type == "REFUND.SUCCESS"
    assert note.out_refund_no == "1217752501201407033233368018"
    assert note.refund_status == "SUCCESS"
    assert note.refund_status_known
    assert note.mchid == "1900000109"
    assert note.amount is not None
    assert (note.amount.refund, note.amount.total, note.amount.payer_refund) == (100, 300, 100)
    assert isinstance(note.amount.refund, int)
    assert note.success_at is not None
    assert note.success_at.utcoffset() is not None
    assert note.raw["user_received_account"] == "招商银行信用卡0403"
    # Header names are case-insensitive; (name, value) pairs work too.
    assert client.parse_refund_notification(list(headers.items()), body) == note


def test_refund_notification_refusals() -> None:
    client = _client()
    resource = spec.refund_resource(mchid="1900000109")
    headers, body = _notification(resource)
    cases: list[tuple[dict[str, str], bytes, type[Exception], str]] = []
    tampered = body.replace(b'"refund"', b'"refunD"', 1)
    cases.append((headers, tampered, SignatureError, "does not verify"))
    for name in ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial"):
        partial = {k: v for k, v in headers.items() if k != name}
        cases.append((partial, body, SignatureError, "not signed"))
    cases.append(
        ({**headers, "Wechatpay-Signature": "WECHATPAY/SIGNTEST/" + "A" * 40}, body, SignatureError, "probe")
    )
    stale = spec.signed_headers(_go_key(), PUBLIC_KEY_ID, body, timestamp=int(time.time()) - 301)
    cases.append((stale, body, SignatureError, "300 s"))
    future = spec.signed_headers(_go_key(), PUBLIC_KEY_ID, body, timestamp=int(time.time()) + 400)
    cases.append((future, body, SignatureError, "300 s"))
    other_id = spec.signed_headers(_go_key(), "PUB_KEY_ID_0000000000000000000000000000", body)
    cases.append((other_id, body, SignatureError, "public key"))
    other_key = spec.signed_headers(spec.new_key(), PUBLIC_KEY_ID, body)
    cases.append((other_key, body, SignatureError, "does not verify"))
    cert_serial = spec.signed_headers(_go_key(), "5157F09EFDC096DE15EBE81A47057A7232F1B8E1", body)
    cases.append((cert_serial, body, SignatureError, "platform certificate"))
    # Authentic signature, but the resource is not for this merchant / under this key.
    for other in (
        spec.refund_resource(mchid="1900000999"),
        spec.refund_resource(mchid="1900000109", sp_mchid="1900000109", sub_mchid="1"),
    ):
        other_body = spec.notification_body(APIV3_KEY.encode(), other)
        cases.append(
            (
                spec.signed_headers(_go_key(), PUBLIC_KEY_ID, other_body),
                other_body,
                SignatureError,
                "merchant",
            )
        )
    wrong_key_body = spec.notification_body(b"A" * 32, resource)
    cases.append(
        (
            spec.signed_headers(_go_key(), PUBLIC_KEY_ID, wrong_key_body),
            wrong_key_body,
            SignatureError,
            "AEAD",
        )
    )
    document = json.loads(body)
    document["resource"]["associated_data"] = "transaction"
    changed_aad = json.dumps(document).encode()
    cases.append(
        (spec.signed_headers(_go_key(), PUBLIC_KEY_ID, changed_aad), changed_aad, SignatureError, "AEAD")
    )
    for headers_, body_, error, match in cases:
        with pytest.raises(error, match=match):
            client.parse_refund_notification(headers_, body_)


def test_partner_notifications_check_sp_mchid_and_sub_mchid() -> None:
    client = _client(sub_mchid="1900000001")
    good = spec.refund_resource(mchid=None, sp_mchid="1900000109", sub_mchid="1900000001")
    del good["mchid"]
    headers, body = _notification(good)
    note = client.parse_refund_notification(headers, body)
    assert (note.sp_mchid, note.sub_mchid) == ("1900000109", "1900000001")
    for sp, sub in (("1900000109", "1900000002"), ("1900000999", "1900000001")):
        bad = {**good, "sp_mchid": sp, "sub_mchid": sub}
        headers, body = _notification(bad)
        with pytest.raises(SignatureError, match="another"):
            client.parse_refund_notification(headers, body)


def test_public_key_file_and_certificate_pem_load() -> None:
    assert load_public_key(pv.GO_PUBLIC_KEY.encode()).key_size == 2048
    assert load_public_key(pv.GO_NOTIFY_CERTIFICATE).key_size == 2048
