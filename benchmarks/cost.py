"""Cost per operation: sign + encode + decode + verify + structure of one refund, no network.

Each paykit figure drives the real code path: the provider client's ``refund`` through its whole
pipeline with an in-memory transport that returns a canned, correctly signed reply
(:class:`CannedTransport`), and separately the dialect's pure encode + decode. Peers do the same
work through their own code with the HTTP call replaced: ``wechatpy``'s ``WeChatPay.refund.apply``
(its ``calculate_signature``, ``dict_to_xml`` and ``xmltodict`` parse) and the PyPI ``payjs``
package's ``PayJS.refund`` (its ``get_signature``, form encoding, JSON parse and
``check_signature``). Figures are the median over repeats of the mean time per call, in µs.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs

from . import fixtures as fx

__all__ = ["CannedTransport", "CostRow", "measure_async", "measure_sync", "run_cost"]


@attrs.frozen(kw_only=True)
class CostRow:
    """One line of the cost table; ``peer_us`` is None when no peer can do the work."""

    operation: str
    paykit_us: float | None
    peer: str = ""
    peer_us: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.paykit_us is None or self.peer_us is None:
            return None
        return self.paykit_us / self.peer_us


class CannedTransport:
    """An in-memory :class:`~paykit_async.Transport` answering every request with one reply.

    Like the real transports (whose total timeout bounds every send) it states ``attempt_bound``:
    it answers at once, so the retry layer takes the path it takes in production.
    """

    attempt_bound = 0.0

    def __init__(self, content: bytes, *, status_code: int = 200, content_type: str = "text/xml") -> None:
        from paykit_async.transport import WireResponse

        self.response = WireResponse(
            status_code=status_code, headers={"content-type": content_type}, content=content
        )
        self.requests = 0

    def configure(self, settings: object) -> None:
        """Nothing to set up: no sockets, no TLS."""

    async def send(self, request: object) -> Any:
        self.requests += 1
        return self.response

    async def aclose(self) -> None:
        """Nothing to close."""


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def measure_sync(fn: Callable[[], object], *, number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the mean seconds per call of ``number`` calls, in µs."""
    for _ in range(max(1, number // 10)):
        fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return _median_us(samples)


async def measure_async(fn: Callable[[], Awaitable[object]], *, number: int, repeat: int) -> float:
    """As :func:`measure_sync` for a coroutine function, inside one running event loop."""
    for _ in range(max(1, number // 10)):
        await fn()
    samples = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            await fn()
        samples.append((time.perf_counter() - start) / number)
    return _median_us(samples)


# ------------------------------------------------------------------------------------ paykit


REFUND_NO = "R0000000000000001"
OUT_TRADE_NO = "1217752501201407033233368018"
PAYJS_ORDER_ID = "2019052709732678859"


@contextmanager
def _client_certificate() -> Iterator[Any]:
    """A trustme client certificate for clients that insist on one for refunds (loaded once)."""
    from paykit_async import ClientCertificate

    with tempfile.TemporaryDirectory() as directory:
        tls = fx.make_tls_material(Path(directory))
        yield ClientCertificate.from_pem(tls.client_cert_file, tls.client_key_file)


def client_class(name: str, provider: str) -> Any:
    return fx.paykit_name(name, f"providers.{provider}")


def wechat_client(cert: Any, transport: Any) -> Any:
    WeChatPayClient = client_class("WeChatPayClient", "wechatpay")
    return WeChatPayClient(
        fx.WECHAT_APPID, fx.WECHAT_MCH_ID, fx.WECHAT_API_KEY, cert=cert, transport=transport
    )


async def wechat_refund(client: Any) -> Any:
    return await client.refund(
        total_fee=100,
        refund_fee=100,
        out_trade_no=OUT_TRADE_NO,
        out_refund_no=REFUND_NO,
        refund_fee_type="CNY",
        refund_account="REFUND_SOURCE_UNSETTLED_FUNDS",
    )


class _Capture:
    """A middleware that keeps the last operation it saw (to time the dialect on its own)."""

    def __init__(self) -> None:
        self.operation: Any = None

    async def __call__(self, operation: Any, call_next: Any) -> Any:
        self.operation = operation
        return await call_next(operation)


async def _paykit_rows(number: int, repeat: int) -> dict[str, float | None]:
    """Time the three clients and their dialects; a client not yet importable gives None."""
    results: dict[str, float | None] = {}
    with _client_certificate() as cert:
        # WeChat Pay: client path and dialect path.
        try:
            transport = CannedTransport(fx.wechat_refund_reply(REFUND_NO))
            capture = _Capture()
            WeChatPayClient = client_class("WeChatPayClient", "wechatpay")
            async with WeChatPayClient(
                fx.WECHAT_APPID,
                fx.WECHAT_MCH_ID,
                fx.WECHAT_API_KEY,
                cert=cert,
                transport=transport,
                middleware=[capture],
            ) as client:
                await wechat_refund(client)
                operation = capture.operation
            async with wechat_client(cert, CannedTransport(fx.wechat_refund_reply(REFUND_NO))) as client:
                results["wechat_client"] = await measure_async(
                    lambda: wechat_refund(client), number=number, repeat=repeat
                )
            dialect = client.dialect
            response = transport.response
            results["wechat_dialect"] = measure_sync(
                lambda: (dialect.encode(operation), dialect.decode(operation, response)),
                number=number,
                repeat=repeat,
            )
        except ImportError:
            results["wechat_client"] = results["wechat_dialect"] = None

        # PAYJS.
        try:
            PayJSClient = client_class("PayJSClient", "payjs")

            transport = CannedTransport(
                fx.payjs_refund_reply(PAYJS_ORDER_ID), content_type="application/json"
            )
            capture = _Capture()
            async with PayJSClient(
                fx.PAYJS_MCHID, fx.PAYJS_KEY, transport=transport, middleware=[capture]
            ) as pj:
                await pj.refund(payjs_order_id=PAYJS_ORDER_ID)
                operation = capture.operation
            async with PayJSClient(fx.PAYJS_MCHID, fx.PAYJS_KEY, transport=transport) as pj:
                results["payjs_client"] = await measure_async(
                    lambda: pj.refund(payjs_order_id=PAYJS_ORDER_ID), number=number, repeat=repeat
                )
            dialect = pj.dialect
            response = transport.response
            results["payjs_dialect"] = measure_sync(
                lambda: (dialect.encode(operation), dialect.decode(operation, response)),
                number=number,
                repeat=repeat,
            )
        except ImportError:
            results["payjs_client"] = results["payjs_dialect"] = None

        # WeChat Pay API v3 (RSA: fewer calls, each one is ~10x a v2 refund).
        results.update(await _v3_rows(max(50, number // 4), repeat))

        # eftPay.
        try:
            from decimal import Decimal

            EftPayClient = client_class("EftPayClient", "eftpay")

            transport = CannedTransport(fx.eftpay_refund_reply(REFUND_NO), content_type="application/json")
            capture = _Capture()

            async def eft_refund(client: Any) -> Any:
                return await client.refund(
                    paytype="WeChat",
                    payment_type="WECHATCN",
                    out_trade_no=OUT_TRADE_NO,
                    transaction_amount=Decimal("0.50"),
                    total_fee=Decimal("1.00"),
                    refund_no=REFUND_NO,
                )

            kwargs: dict[str, Any] = {"base_url": "https://vmp.eftpay.com.cn/VMP", "transport": transport}
            async with EftPayClient(
                fx.EFTPAY_USER_CONFIRM_KEY, fx.EFTPAY_SECRET, middleware=[capture], **kwargs
            ) as eft:
                await eft_refund(eft)
                operation = capture.operation
            async with EftPayClient(fx.EFTPAY_USER_CONFIRM_KEY, fx.EFTPAY_SECRET, **kwargs) as eft:
                results["eftpay_client"] = await measure_async(
                    lambda: eft_refund(eft), number=number, repeat=repeat
                )
            dialect = eft.dialect
            response = transport.response
            results["eftpay_dialect"] = measure_sync(
                lambda: (dialect.encode(operation), dialect.decode(operation, response)),
                number=number,
                repeat=repeat,
            )
        except ImportError:
            results["eftpay_client"] = results["eftpay_dialect"] = None
    return results


async def _v3_rows(number: int, repeat: int) -> dict[str, float | None]:
    """The v3 client end to end, its dialect, and the two RSA operations on their own."""
    names = ("v3_client", "v3_dialect", "v3_sign", "v3_verify")
    try:
        WeChatPayV3Client = client_class("WeChatPayV3Client", "wechatpay_v3")
    except ImportError:
        return dict.fromkeys(names)
    from paykit_async.transport import WireResponse

    with tempfile.TemporaryDirectory() as directory:
        keys = fx.v3_keys(Path(directory))
        headers, body = fx.v3_refund_reply(keys.platform_key_file)
        transport = CannedTransport(body, content_type="application/json")
        transport.response = WireResponse(status_code=200, headers=headers, content=body)
        capture = _Capture()
        options: dict[str, Any] = {
            "wechatpay_public_key": keys.platform_public_key_file,
            "wechatpay_public_key_id": fx.V3_PUBLIC_KEY_ID,
            "transport": transport,
        }
        client = WeChatPayV3Client(
            fx.V3_MCHID,
            keys.merchant_key_file,
            fx.V3_SERIAL,
            fx.V3_APIV3_KEY,
            middleware=[capture],
            **options,
        )

        async def refund() -> Any:
            return await client.refund(
                refund=100, total=100, out_trade_no=OUT_TRADE_NO, out_refund_no=REFUND_NO
            )

        async with client:
            await refund()
            operation = capture.operation
            results: dict[str, float | None] = {
                "v3_client": await measure_async(refund, number=number, repeat=repeat)
            }
            dialect = client.dialect
            response = transport.response
            results["v3_dialect"] = measure_sync(
                lambda: (dialect.encode(operation), dialect.decode(operation, response)),
                number=number,
                repeat=repeat,
            )
        from paykit_async.signing import Sha256WithRsaSigner, Sha256WithRsaVerifier
        from paykit_async.signing.rsa import reply_message, request_message

        signer = Sha256WithRsaSigner.from_pem(keys.merchant_key_file)
        message = request_message("POST", "/v3/refund/domestic/refunds", 1700000000, "N" * 32, body[:200])
        results["v3_sign"] = measure_sync(lambda: signer.sign(message), number=number, repeat=repeat)
        verifier = Sha256WithRsaVerifier.from_pem(keys.platform_public_key_file)
        signed = reply_message(headers["wechatpay-timestamp"], headers["wechatpay-nonce"], body)
        signature = headers["wechatpay-signature"]
        assert verifier.verify(signed, signature)
        results["v3_verify"] = measure_sync(
            lambda: verifier.verify(signed, signature), number=number, repeat=repeat
        )
    return results


# ------------------------------------------------------------------------------------- peers


class _FakeRequestsResponse:
    """Just enough of ``requests.Response`` for the peers' result handling."""

    def __init__(self, content: bytes, url: str) -> None:
        self.content = content
        self.status_code = 200
        self.url = url
        self.headers: dict[str, str] = {}
        self.encoding: str | None = None
        self.request = None

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8")

    def raise_for_status(self) -> None:
        return None


class _FakeSession:
    """Stands in for ``requests.Session``: the request body is built, nothing is sent."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply

    def request(self, method: str, url: str, data: Any = None, **_kwargs: Any) -> _FakeRequestsResponse:
        return _FakeRequestsResponse(self.reply, url)


def wechatpy_rows(number: int, repeat: int) -> tuple[float | None, float | None]:
    """(as shipped: no reply verification, with its own ``check_signature`` added)."""
    try:
        from wechatpy.pay import WeChatPay
    except ImportError:
        return None, None
    pay = WeChatPay(fx.WECHAT_APPID, fx.WECHAT_API_KEY, fx.WECHAT_MCH_ID)
    pay._http = _FakeSession(fx.wechat_refund_reply(REFUND_NO))

    def apply() -> Any:
        return pay.refund.apply(
            total_fee=100, refund_fee=100, out_refund_no=REFUND_NO, out_trade_no=OUT_TRADE_NO
        )

    def apply_and_verify() -> Any:
        data = apply()
        if not pay.check_signature(data):
            raise RuntimeError("wechatpy says the canned reply is not signed correctly")
        return data

    apply_and_verify()
    return measure_sync(apply, number=number, repeat=repeat), measure_sync(
        apply_and_verify, number=number, repeat=repeat
    )


def payjs_row(number: int, repeat: int) -> float | None:
    """The PyPI ``payjs`` package's ``PayJS.refund`` with ``requests.post`` replaced."""
    try:
        import payjs.base as payjs_base
        from payjs import PayJS
    except ImportError:
        return None
    reply = fx.payjs_refund_reply(PAYJS_ORDER_ID)

    class _FakeRequests:
        @staticmethod
        def post(url: str, data: Any = None, **_kwargs: Any) -> _FakeRequestsResponse:
            urlencode(data)  # what requests does with a dict body
            return _FakeRequestsResponse(reply, url)

    saved = payjs_base.requests
    payjs_base.requests = _FakeRequests  # type: ignore[assignment]
    try:
        client = PayJS(fx.PAYJS_MCHID, fx.PAYJS_KEY)
        result = client.refund(PAYJS_ORDER_ID)
        if not result or getattr(result, "error_msg", None):
            raise RuntimeError(f"payjs rejected the canned reply: {result!r}")
        return measure_sync(lambda: client.refund(PAYJS_ORDER_ID), number=number, repeat=repeat)
    finally:
        payjs_base.requests = saved


# -------------------------------------------------------------------------------------- run


def run_cost(*, quick: bool = False, number: int | None = None, repeat: int | None = None) -> list[CostRow]:
    """Measure every row; ``quick`` uses few iterations (for development and the smoke test)."""
    number = number if number is not None else (200 if quick else 2000)
    repeat = repeat if repeat is not None else (5 if quick else 15)
    ours = asyncio.run(_paykit_rows(number, repeat))
    shipped, verified = wechatpy_rows(number, repeat)
    payjs_us = payjs_row(number, repeat)
    return [
        CostRow(
            operation="WeChat refund: client.refund() end to end (in-memory transport)",
            paykit_us=ours["wechat_client"],
            peer="wechatpy 1.8 refund.apply + check_signature",
            peer_us=verified,
            note="the goal: library CPU per refund ≤ 60 µs",
        ),
        CostRow(
            operation="WeChat refund: client.refund() vs wechatpy as shipped",
            paykit_us=ours["wechat_client"],
            peer="wechatpy refund.apply (never verifies the reply)",
            peer_us=shipped,
        ),
        CostRow(
            operation="WeChat refund: dialect encode + decode only",
            paykit_us=ours["wechat_dialect"],
            peer="wechatpy refund.apply + check_signature",
            peer_us=verified,
        ),
        CostRow(
            operation="PAYJS refund: client.refund() end to end",
            paykit_us=ours["payjs_client"],
            peer="payjs (PyPI) PayJS.refund",
            peer_us=payjs_us,
        ),
        CostRow(
            operation="PAYJS refund: dialect encode + decode only",
            paykit_us=ours["payjs_dialect"],
            peer="payjs (PyPI) PayJS.refund",
            peer_us=payjs_us,
        ),
        CostRow(
            operation="WeChat Pay v3 refund: client.refund() end to end (in-memory transport)",
            paykit_us=ours["v3_client"],
            peer="paykit WeChat Pay v2 client.refund()",
            peer_us=ours["wechat_client"],
            note="RSA-2048 signing dominates; no Python v3 peer measured",
        ),
        CostRow(
            operation="WeChat Pay v3 refund: dialect encode + decode only",
            paykit_us=ours["v3_dialect"],
            peer="paykit WeChat Pay v2 dialect",
            peer_us=ours["wechat_dialect"],
        ),
        CostRow(
            operation="WeChat Pay v3: of which RSA-2048 sign of the request",
            paykit_us=ours["v3_sign"],
            note="one private-key operation per attempt",
        ),
        CostRow(
            operation="WeChat Pay v3: of which RSA-2048 verify of the reply",
            paykit_us=ours["v3_verify"],
        ),
        CostRow(
            operation="eftPay refund: client.refund() end to end",
            paykit_us=ours["eftpay_client"],
            note="no Python peer",
        ),
        CostRow(
            operation="eftPay refund: dialect encode + decode only",
            paykit_us=ours["eftpay_dialect"],
            note="no Python peer",
        ),
    ]


if __name__ == "__main__":
    for row in run_cost(quick="--quick" in sys.argv):
        sys.stdout.write(f"{row}\n")
