"""Hostile bytes: every v3 parser returns a result or raises a PaykitError, never anything else.

Replies are signed correctly by the test (so the parsers past the signature check are reached):
WeChat's own key signing garbage must still not crash the client or be believed as a refund.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paykit_async import (
    DecodeError,
    HTTPStatusError,
    PaykitError,
    RefundOutcomeUnknown,
    WeChatPayV3Client,
)
from paykit_async.codecs.json import MAX_JSON_DEPTH
from paykit_async.pipeline.core import Operation
from paykit_async.providers.wechatpay_v3 import WeChatPayV3Error
from paykit_async.providers.wechatpay_v3.parsing import json_object, parse_refund
from paykit_async.transport.wire import WireRequest, WireResponse

from . import spec

APIV3_KEY = "v3SecretKeyOf32CharactersExactly"
PUBLIC_KEY_ID = "PUB_KEY_ID_0001"
MERCHANT = spec.new_key()
PLATFORM = spec.new_key()


def _client(transport: Any = None) -> WeChatPayV3Client:
    """The suite's public-key-mode client (over ``transport`` when given)."""
    return WeChatPayV3Client(
        "1900000109",
        spec.private_pem(MERCHANT),
        "ABCDEF",
        APIV3_KEY,
        wechatpay_public_key=spec.public_pem(PLATFORM),
        wechatpay_public_key_id=PUBLIC_KEY_ID,
        transport=transport,
    )


CLIENT = _client()
REFUND_OP = Operation(
    provider="wechatpay-v3",
    name="refund",
    url="https://api.mch.weixin.qq.com/v3/refund/domestic/refunds",
    fields={
        "out_trade_no": "T1",
        "out_refund_no": "R1",
        "amount": '{"refund":100,"total":300,"currency":"CNY"}',
    },
    refund_no_field="out_refund_no",
)
QUERY_OP = Operation(
    provider="wechatpay-v3",
    name="query_refund",
    url="https://api.mch.weixin.qq.com/v3/refund/domestic/refunds/R1",
    fields={"out_refund_no": "R1"},
)
# Fixed seed and no example database, as the hostile suite: reproducible in CI.
SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _signed(status: int, body: bytes) -> WireResponse:
    headers = {k.lower(): v for k, v in spec.signed_headers(PLATFORM, PUBLIC_KEY_ID, body).items()}
    return WireResponse(status_code=status, headers=headers, content=body)


def _decode_to_result(operation: Operation, response: WireResponse) -> None:
    """The client's whole reply path: verify, decode, classify, type."""
    try:
        outcome = CLIENT.dialect.decode(operation, response)
        parse_refund(outcome.fields, out_refund_no="R1")
    except PaykitError:
        pass


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function: hypothesis could not read the multi-line lambda's source and warned that
    # it "doesn't use its argument", i.e. that it might not recurse.
    return st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _containers,
    max_leaves=20,
)
refund_like = st.fixed_dictionaries(
    {},
    optional={
        "out_refund_no": st.just("R1") | json_values,
        "refund_id": json_values,
        "status": json_values,
        "amount": st.fixed_dictionaries(
            {}, optional={"refund": st.just(100) | json_values, "total": json_values, "from": json_values}
        )
        | json_values,
        "promotion_detail": st.lists(
            st.dictionaries(st.sampled_from(["amount", "goods_detail", "type"]), json_values)
        )
        | json_values,
        "create_time": json_values,
    },
)


@SETTINGS
@given(body=st.binary(max_size=300))
def test_signed_garbage_bytes(body: bytes) -> None:
    for status in (200, 204, 400, 500):
        _decode_to_result(REFUND_OP, _signed(status, body))


@SETTINGS
@given(document=refund_like)
def test_signed_json_of_any_shape(document: dict[str, Any]) -> None:
    body = json.dumps(document).encode()
    for operation in (REFUND_OP, QUERY_OP):
        _decode_to_result(operation, _signed(200, body))
        _decode_to_result(operation, _signed(403, body))


def _definite(error: PaykitError) -> bool:
    """Whether a refund reply's error reports the refund as certainly not made (a retryable one
    too: when the retries run out, it is what the caller gets)."""
    return not error.outcome_unknown


WECHATPAY_HEADERS = ["wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial", "wechatpay-signature"]


@SETTINGS
@given(
    status=st.sampled_from([200, 201, 204, 400, 401, 403, 404, 429, 500, 502]) | st.integers(100, 599),
    body=st.binary(max_size=300)
    | st.builds(
        lambda code, message: json.dumps({"code": code, "message": message}).encode(),
        st.sampled_from(["PARAM_ERROR", "NOT_ENOUGH", "SIGN_ERROR", "RESOURCE_NOT_EXISTS", "X"]) | st.text(),
        st.text(max_size=20),
    ),
    headers=st.dictionaries(st.sampled_from([*WECHATPAY_HEADERS, "retry-after", "x"]), st.text(max_size=40)),
    signed=st.booleans(),
)
def test_a_refund_reply_is_a_definite_failure_only_when_verified(
    status: int, body: bytes, headers: dict[str, str], signed: bool
) -> None:
    """Any status, headers and body (hostile headers, or a valid signature over garbage): a result,
    or a PaykitError — and a definite failure only when WeChat's signature verified the error
    (or it is WeChat's unsigned 401 for a request it could not authenticate)."""
    response = (
        _signed(status, body) if signed else WireResponse(status_code=status, headers=headers, content=body)
    )
    try:
        CLIENT.dialect.decode(REFUND_OP, response)
    except PaykitError as caught:
        error: PaykitError | None = caught
    else:
        error = None
    if error is not None and _definite(error):
        assert not 200 <= status < 300
        assert isinstance(error, WeChatPayV3Error)
        assert (signed and error.signed) or (status == 401 and not error.signed)


@pytest.mark.parametrize("status", [400, 403, 404, 401, 429])
def test_an_error_page_after_a_refund_is_not_a_definite_failure(status: int) -> None:
    page = b"<html><body>request blocked</body></html>"
    error = CLIENT.dialect.error(REFUND_OP, WireResponse(status_code=status, headers={}, content=page))
    assert isinstance(error, HTTPStatusError)
    assert error.outcome_unknown
    # A query or close-order refusal is reported as it is: the page's status, retried only if 429
    # (whether its outcome counts as unknown is HTTPStatusError's rule for every provider).
    query_error = CLIENT.dialect.error(QUERY_OP, WireResponse(status_code=status, headers={}, content=page))
    assert isinstance(query_error, HTTPStatusError)
    assert query_error.status_code == status
    assert query_error.retryable is (status == 429)


@SETTINGS
@given(
    headers=st.dictionaries(
        st.sampled_from(
            ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial", "Wechatpay-Signature", "X"]
        ),
        st.text(max_size=40),
    ),
    body=st.binary(max_size=200),
)
def test_notifications_with_hostile_headers_and_bodies(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(PaykitError):
        CLIENT.parse_refund_notification(headers, body)


@SETTINGS
@given(resource=refund_like | json_values)
def test_authentic_notifications_with_hostile_resources(resource: Any) -> None:
    """Signed and encrypted correctly, but the decrypted resource is anything at all."""
    plaintext = json.dumps(resource).encode()
    body = json.dumps(
        {
            "id": "EV-1",
            "resource": {
                "algorithm": "AEAD_AES_256_GCM",
                "nonce": "0123456789ab",
                "associated_data": "refund",
                "ciphertext": spec.encrypt(
                    APIV3_KEY.encode(), plaintext, nonce="0123456789ab", associated_data="refund"
                ),
            },
        }
    ).encode()
    headers = spec.signed_headers(PLATFORM, PUBLIC_KEY_ID, body)
    try:
        note = CLIENT.parse_refund_notification(headers, body)
    except PaykitError:
        return
    assert note.mchid == "1900000109"
    assert isinstance(note.out_refund_no, str)


@pytest.mark.parametrize("nonce", ["a", "abcdefg", "é" * 3, "x" * 65])
def test_a_resource_nonce_aes_gcm_cannot_take_is_a_decode_error(nonce: str) -> None:
    """Under 8 bytes the AES-GCM primitive raises ValueError: it escaped as such (a 500 from the
    notification endpoint; before the signature check when downloading certificates)."""
    from paykit_async.providers.wechatpay_v3.aead import AeadAes256Gcm

    sealed = spec.encrypt(APIV3_KEY.encode(), b"{}", nonce="0123456789ab", associated_data="refund")
    with pytest.raises(DecodeError, match="nonce"):
        AeadAes256Gcm.for_apiv3_key(APIV3_KEY).decrypt(
            nonce=nonce, associated_data="refund", ciphertext=sealed
        )
    body = json.dumps(
        {
            "id": "EV-1",
            "resource": {
                "algorithm": "AEAD_AES_256_GCM",
                "nonce": nonce,
                "associated_data": "refund",
                "ciphertext": sealed,
            },
        }
    ).encode()
    with pytest.raises(DecodeError, match="nonce"):
        CLIENT.parse_refund_notification(spec.signed_headers(PLATFORM, PUBLIC_KEY_ID, body), body)


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 200_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
        b'{"a":' + b"9" * 5000 + b"}",
        b'{"a":"\\ud800"}',
        b'{"a":NaN}',
        b'{"a":Infinity}',
        b"\xff\xfe{}",
        b"[]",
        b'"x"',
        b"",
        b"{" + b'"k":1,' * 10 + b"}",
    ],
)
def test_json_guard_refuses_hostile_documents(data: bytes) -> None:
    with pytest.raises(DecodeError, match=r"^the reply: ") as caught:
        json_object(data, what="reply")
    assert not caught.value.retryable


def test_json_guard_depth_limit() -> None:
    ok = b'{"a":' * (MAX_JSON_DEPTH - 1) + b"{}" + b"}" * (MAX_JSON_DEPTH - 1)
    assert json_object(ok, what="reply")
    too_deep = b'{"a":' * MAX_JSON_DEPTH + b"{}" + b"}" * MAX_JSON_DEPTH
    with pytest.raises(DecodeError, match="nested"):
        json_object(too_deep, what="reply")
    with pytest.raises(DecodeError, match="too large") as caught:
        CLIENT.parse_refund_notification({}, b" " * (2 << 20))
    assert not caught.value.outcome_unknown


def test_fractional_and_boolean_amounts_are_refused_not_rounded() -> None:
    for amount in ('{"refund":1.5}', '{"refund":true}', '{"refund":"1e2"}', '{"refund":[1]}'):
        body = b'{"out_refund_no":"R1","amount":' + amount.encode() + b"}"
        outcome = CLIENT.dialect.decode(QUERY_OP, _signed(200, body))
        with pytest.raises(DecodeError):
            parse_refund(outcome.fields, out_refund_no="R1")


def test_a_deeply_nested_signed_reply_is_a_decode_error() -> None:
    body = b'{"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(DecodeError, match="nested"):
        CLIENT.dialect.decode(QUERY_OP, _signed(200, body))


class _Replies:
    """A transport answering every request with the next scripted reply."""

    in_process = True

    def __init__(self, *replies: WireResponse) -> None:
        self.replies = list(replies)
        self.sent: list[WireRequest] = []

    def configure(self, settings: object) -> None:
        pass

    async def send(self, request: WireRequest) -> WireResponse:
        self.sent.append(request)
        return self.replies.pop(0)

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
@pytest.mark.parametrize(
    "field",
    ['"amount":{"refund":100,"total":1.5}', '"amount":{"refund":100,"total":"lots"}', '"refund_id":[1]'],
)
async def test_a_verified_refund_reply_that_cannot_be_typed_is_an_unknown_outcome(field: str) -> None:
    """Signed by WeChat, so the refund may have been made: never a plain DecodeError (no refund
    number to retry with) and never a failure."""
    transport = _Replies(_signed(200, b'{"out_refund_no":"R1",' + field.encode() + b"}"))
    client = _client(transport)
    async with client:
        with pytest.raises(RefundOutcomeUnknown) as caught:
            await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
    assert caught.value.refund_no == "R1"
    assert isinstance(caught.value.__cause__, DecodeError)
    assert len(transport.sent) == 1


@pytest.mark.anyio
async def test_an_error_page_after_a_refund_is_settled_by_a_verified_query() -> None:
    query = b'{"out_refund_no":"R1","refund_id":"50000","status":"SUCCESS"}'
    transport = _Replies(
        WireResponse(status_code=403, headers={}, content=b"<html>blocked</html>"), _signed(200, query)
    )
    client = _client(transport)
    async with client:
        result = await client.refund(refund=100, total=300, out_trade_no="T1", out_refund_no="R1")
    assert result.settled_by_query
    assert result.refund_id == "50000"
    assert [r.method for r in transport.sent] == ["POST", "GET"]
