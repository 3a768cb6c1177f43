"""The simulator's shared HTTP layer (``simulator/http.py`` and the routing in ``app.py``) on the
worst requests a client can send: any path, query string and header bytes, a body in any number
of pieces — cut off by a disconnect, or past the 1 MiB read cap. Every request gets one complete
HTTP answer (never an exception out of the app, never a 5xx the simulator did not choose), and
the work grows no faster than the request.

The provider bodies themselves are covered by ``tests/hostile/test_simulator_requests.py``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async.simulator import DEMO_PAYJS, Simulator, SimulatorConfig
from paykit_async.simulator.http import MAX_BODY

from ..hostile.support import FEW, HOSTILE, growth_ratio

SIM = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))

#: Every provider's routes, the v3 ones with path parameters included, and near misses.
PATHS = [
    "/wechatpay/secapi/pay/refund",
    "/wechatpay/pay/refundquery",
    "/wechatpay-v3/v3/refund/domestic/refunds",
    "/wechatpay-v3/v3/refund/domestic/refunds/R1",
    "/wechatpay-v3/v3/pay/transactions/out-trade-no/T1",
    "/payjs/api/refund",
    "/eftpay/Servlet/JSAPIService.do",
    "/",
    "",
    "/wechatpay",
    "/wechatpay-v3/",
    "/eftpay/Servlet/JSAPIService.do/",
]


def call(
    path: str,
    chunks: list[bytes],
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    method: str = "POST",
    raw_path: bytes | None = None,
    disconnect: bool = False,
    app: Any = None,
) -> tuple[int, bytes]:
    """One request straight through the ASGI app; the status and body it answered with.

    An exception raised by the app fails the test; so does a reply without exactly one start
    and a complete body.
    """
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    incoming: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or disconnect}
        for i, chunk in enumerate(chunks or [b""])
    ]
    if disconnect:
        incoming.append({"type": "http.disconnect"})
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        if incoming:
            return incoming.pop(0)
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    anyio.run(app or SIM.app, scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len(starts) == 1, sent
    assert bodies, sent
    assert not bodies[-1].get("more_body", False), sent
    body = b"".join(m.get("body", b"") for m in bodies)
    declared = dict(starts[0]["headers"]).get(b"content-length")
    assert declared is None or int(declared) == len(body)
    return starts[0]["status"], body


_HEADER_NAME = st.binary(min_size=1, max_size=24)
_HEADER_VALUE = st.binary(max_size=64)
_HEADERS = st.lists(
    st.one_of(
        st.tuples(_HEADER_NAME, _HEADER_VALUE),
        st.tuples(
            st.sampled_from(
                [b"content-type", b"Content-Type", b"authorization", b"wechatpay-serial", b"content-length"]
            ),
            _HEADER_VALUE,
        ),
    ),
    max_size=8,
)


@HOSTILE
@given(
    path=st.one_of(
        st.sampled_from(PATHS), st.text(max_size=64), st.sampled_from(PATHS).map(lambda p: p + "%00")
    ),
    raw_path=st.one_of(st.none(), st.binary(max_size=64)),
    query=st.binary(max_size=64),
    headers=_HEADERS,
    method=st.sampled_from(["POST", "GET", "PUT", "HEAD", "OPTIONS", "X"]),
    chunks=st.lists(st.binary(max_size=256), max_size=6),
    disconnect=st.booleans(),
)
def test_any_request_gets_one_complete_answer(
    path: str,
    raw_path: bytes | None,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    method: str,
    chunks: list[bytes],
    disconnect: bool,
) -> None:
    status, _ = call(
        path, chunks, query=query, headers=headers, method=method, raw_path=raw_path, disconnect=disconnect
    )
    assert 200 <= status < 500


@FEW
@given(
    path=st.sampled_from(PATHS),
    pieces=st.integers(1, 64),
    filler=st.sampled_from([b"<", b"[", b"a=&", b"\xff"]),
)
def test_a_body_past_the_read_cap_gets_an_answer(path: str, pieces: int, filler: bytes) -> None:
    # More than MAX_BODY in total, in pieces of any size: an endpoint answers 413 (a prefix of the
    # body is never handled as if it were the request), anything else 404.
    size = MAX_BODY + 1
    piece = filler * (size // (len(filler) * pieces) + 1)
    status, body = call(path, [piece] * pieces)
    assert (status, body) in ((413, b"request body too large"), (404, b"not a simulator endpoint"))
    if path in PATHS[:3] or path in ("/payjs/api/refund", "/eftpay/Servlet/JSAPIService.do"):
        assert status == 413


def test_a_signed_request_past_the_read_cap_is_not_executed() -> None:
    # A genuine refund request padded past the cap (a trailing field): refused whole, nothing paid.
    sim = Simulator(SimulatorConfig(auto_orders=True, completion_delay=0.0))
    fields = {"mchid": DEMO_PAYJS.mchid, "payjs_order_id": "P1", "pad": "x" * MAX_BODY}
    body = "&".join(f"{k}={v}" for k, v in fields.items()).encode()
    status, _ = call("/payjs/api/refund", [body], app=sim.app)
    assert status == 413
    assert [record.outcome for record in sim.requests()] == ["TOO_LARGE"]


@pytest.mark.parametrize("piece", [None, 64])
def test_reading_a_body_takes_time_linear_in_its_size(piece: int | None) -> None:
    def run(body: bytes) -> int:
        chunks = [body] if piece is None else [body[i : i + piece] for i in range(0, len(body), piece)]
        return call("/payjs/api/refund", chunks)[0]

    ratio = growth_ratio(run, lambda n: b"x" * n, MAX_BODY // 2, min_time=0.01)
    assert ratio < 3.0
