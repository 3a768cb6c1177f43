"""``notification_app`` under the worst a caller can send (issue 12's property suite, for the
endpoint): any bytes, streamed in any chunks, with any headers (a lying or malformed
``content-length``, forged ``wechatpay-*`` signature headers) and bodies shaped like each
provider's notification but not signed by it. Every request is answered — 413 past the cap,
otherwise 400 with the provider's failure body and no reason — the handler never runs, and the
work grows linearly with the body. On asyncio and trio."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async.asgi import notification_app
from paykit_async.simulator import DEMO_EFTPAY, DEMO_PAYJS, DEMO_WECHATPAY

from ..hostile.support import HOSTILE, fill, growth_ratio
from .helpers import PROVIDERS, Calls, call_raw, simulator

BACKENDS = ["asyncio", "trio"]
NAMES = list(PROVIDERS)
MAX_BODY = 512

#: One simulator for the whole module: its v3 keys are generated once.
SIM = simulator()
V3_KEYS = SIM.wechatpay_v3_keys()

_TEXT = st.text(max_size=40)
_B64 = st.binary(max_size=96).map(lambda raw: base64.b64encode(raw).decode())


def _wechat_body(draw: st.DrawFn) -> bytes:
    """The v2 envelope of this merchant, with a ``req_info`` that is not encrypted under its key."""
    fields = {
        "return_code": draw(st.sampled_from(["SUCCESS", "FAIL", ""])),
        "appid": DEMO_WECHATPAY.appid,
        "mch_id": DEMO_WECHATPAY.mch_id,
        "nonce_str": draw(_TEXT),
        "req_info": draw(st.one_of(_B64, _TEXT)),
    }
    inner = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<xml>{inner}</xml>".encode("utf-8", "surrogatepass")


def _v3_body(draw: st.DrawFn) -> bytes:
    resource = {
        "algorithm": draw(st.sampled_from(["AEAD_AES_256_GCM", "", "none"])),
        "ciphertext": draw(_B64),
        "nonce": draw(_TEXT),
        "associated_data": draw(st.sampled_from(["refund", ""])),
    }
    document = {
        "id": draw(_TEXT),
        "event_type": draw(st.sampled_from(["REFUND.SUCCESS", "REFUND.ABNORMAL", "x"])),
        "resource_type": "encrypt-resource",
        "resource": draw(st.one_of(st.just(resource), st.none(), _TEXT)),
    }
    return json.dumps(document).encode("utf-8", "surrogatepass")


def _payjs_body(draw: st.DrawFn) -> bytes:
    names = ["return_code", "total_fee", "out_trade_no", "payjs_order_id", "transaction_id", "openid"]
    fields = {name: draw(_TEXT) for name in names}
    fields |= {
        "mchid": DEMO_PAYJS.mchid,
        "sign": draw(st.one_of(_TEXT, st.text("0123456789ABCDEF", min_size=32, max_size=32))),
    }
    return urlencode(fields).encode("utf-8", "surrogatepass")


def _eftpay_body(draw: st.DrawFn) -> bytes:
    names = ["out_trade_no", "refund_no", "trade_status", "trade_type", "transaction_amount"]
    fields: dict[str, Any] = {name: draw(st.one_of(_TEXT, st.integers(), st.none())) for name in names}
    fields |= {"user_confirm_key": DEMO_EFTPAY.user_confirm_key, "sign": draw(st.text("0123456789abcdef"))}
    return json.dumps(fields).encode("utf-8", "surrogatepass")


SHAPED: dict[str, Callable[[st.DrawFn], bytes]] = {
    "wechatpay": _wechat_body,
    "wechatpay-v3": _v3_body,
    "payjs": _payjs_body,
    "eftpay": _eftpay_body,
}
_HEADER_NAMES = st.sampled_from(
    [
        b"content-type",
        b"wechatpay-serial",
        b"wechatpay-signature",
        b"wechatpay-signature-type",
        b"wechatpay-timestamp",
        b"wechatpay-nonce",
        b"x-anything",
    ]
)
_HEADER_VALUES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            V3_KEYS.wechatpay_public_key_id.encode(),
            b"WECHATPAY2-SHA256-RSA2048",
            b"application/json",
            b"application/x-www-form-urlencoded",
            b"text/xml",
        ]
    ),
    st.integers(0, 2**40).map(lambda n: str(n).encode()),
    _B64.map(str.encode),
)
#: A content-length header: absent, honest (filled in later), or any bytes at all.
_DECLARED = st.one_of(
    st.none(),
    st.just(b"honest"),
    st.integers(0, 2 * MAX_BODY).map(lambda n: str(n).encode()),
    st.binary(max_size=8),
)


@st.composite
def requests(draw: st.DrawFn, name: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """Headers (at most one content-length) and a body split into chunks."""
    body = draw(st.one_of(st.binary(max_size=2 * MAX_BODY), st.composite(lambda d: SHAPED[name](d))()))
    headers = draw(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8))
    if name == "wechatpay-v3" and draw(st.booleans()):
        # Well-formed signature headers for this merchant's WeChat Pay key, with a signature it never made.
        headers += [
            (b"wechatpay-serial", V3_KEYS.wechatpay_public_key_id.encode()),
            (b"wechatpay-timestamp", str(int(time.time())).encode()),
            (b"wechatpay-nonce", draw(_TEXT).encode("utf-8", "surrogatepass")),
            (b"wechatpay-signature", draw(_B64).encode()),
        ]
    declared = draw(_DECLARED)
    if declared is not None:
        headers.append((b"content-length", str(len(body)).encode() if declared == b"honest" else declared))
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    return headers, chunks


def _chunks(chunks: list[bytes]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` streaming ``chunks``, then a disconnect."""
    todo = list(chunks)

    async def receive() -> dict[str, Any]:
        if not todo:
            return {"type": "http.disconnect"}
        chunk = todo.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(todo)}

    return receive


def _over_the_cap(headers: list[tuple[bytes, bytes]], body: bytes, max_body: int) -> bool:
    declared = next((value for key, value in headers if key == b"content-length"), None)
    if declared is not None:
        text = declared.decode("latin-1")
        if not (text.isascii() and text.isdigit()) or int(text) > max_body:
            return True
    return len(body) > max_body


async def _answer(name: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> None:
    setup = PROVIDERS[name](SIM)
    calls = Calls()
    async with setup.client:
        app = notification_app(setup.client, calls, max_body=MAX_BODY)
        status, reply = await call_raw(app, _chunks(chunks), headers)
        refused = setup.client.notification_failure_reply("invalid notification")
    body = b"".join(chunks)
    assert status == (413 if _over_the_cap(headers, body, MAX_BODY) else 400), (status, reply)
    assert reply == refused.body  # the provider's failure body, no reason given
    assert calls.notifications == []


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
@HOSTILE
@given(data=st.data())
def test_any_request_is_answered_413_or_a_reasonless_400_and_never_handled(
    name: str, backend: str, data: st.DataObject
) -> None:
    headers, chunks = data.draw(requests(name))
    anyio.run(_answer, name, headers, chunks, backend=backend)


#: Bodies that are worst for each provider's parser: deep nesting, many fields, one huge value.
WORST: dict[str, Callable[[int], bytes]] = {
    "wechatpay nested": lambda n: fill(b"<xml>", b"<a>", b"</xml>", n),
    "wechatpay req_info": lambda n: fill(b"<xml><req_info><![CDATA[", b"QUJD", b"]]></req_info></xml>", n),
    "wechatpay-v3 nested": lambda n: fill(b"", b"[", b"", n),
    "wechatpay-v3 escapes": lambda n: fill(b'{"a":"', b"\\u00e9", b'"}', n),
    "payjs fields": lambda n: fill(b"", b"a=&", b"sign=x", n),
    "payjs escapes": lambda n: fill(b"a=", b"%41", b"", n),
    "eftpay nested": lambda n: fill(b"", b"[", b"", n),
    "eftpay fields": lambda n: fill(b"{", b'"a":1,', b'"b":2}', n),
}


@pytest.mark.parametrize("shape", list(WORST))
def test_the_endpoint_reads_and_refuses_a_large_hostile_body_in_linear_time(shape: str) -> None:
    """Streamed in 1 KiB chunks through the whole app (read, verify, refuse): doubling the body
    about doubles the CPU time (a ratio, never a threshold on seconds)."""
    max_body = 1 << 20
    setup = PROVIDERS[shape.split()[0]](SIM)
    statuses: list[int] = []

    async def main(body: bytes) -> None:
        app = notification_app(setup.client, Calls(), max_body=max_body)
        chunks = [body[i : i + 1024] for i in range(0, len(body), 1024)]
        status, _ = await call_raw(app, _chunks(chunks), [(b"content-length", str(len(body)).encode())])
        statuses.append(status)

    ratio = growth_ratio(lambda body: anyio.run(main, body), WORST[shape], max_body)
    assert ratio < 3.0, f"{shape}: doubling the body multiplied the time by {ratio:.2f}"
    assert set(statuses) == {400}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("declared", "status"),
    [(b"1" * 5000, 413), (b"9" * 200_000, 413), (b"0" * 5000 + b"3", 400), (b"0" * 5000, 400)],
)
def test_a_content_length_of_thousands_of_digits_is_answered_not_a_crash(
    backend: str, declared: bytes, status: int
) -> None:
    # int() of more than 4300 digits raises ValueError: it escaped the app (an HTTP 500 and a
    # traceback for one header). A huge length is over the cap; leading zeros are still a length.
    async def main() -> None:
        setup = PROVIDERS["payjs"](SIM)
        async with setup.client:
            app = notification_app(setup.client, Calls(), max_body=MAX_BODY)
            answered, _ = await call_raw(app, _chunks([b"a=1"]), [(b"content-length", declared)])
        assert answered == status

    anyio.run(main, backend=backend)
