"""Shared pieces of the hostile-input suite: hypothesis settings, growth-ratio timing, secret
hunting in exception chains, inline reference signers and in-memory reply transports.

Signatures here are computed inline with hashlib/hmac from the specs' rules, never with the
library's signers, so a test that a forged message is refused does not trust the code under test.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, settings

from paykit_async import EftPayClient, HttpxTransport, PayJSClient, RetryPolicy, WeChatPayClient
from paykit_async.providers.eftpay import RefundResult as EftPayRefundResult

#: Fixed seed, no example database, bounded examples: the suite is reproducible and fast.
HOSTILE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)
FEW = settings(HOSTILE, max_examples=40)

NO_RETRY = RetryPolicy.none()

# Throwaway credentials, recognisable in any string they leak into.
WECHAT_APPID = "wx8888888888888888"
WECHAT_MCH_ID = "1900000109"
WECHAT_KEY = "WECHATKEY0secret0000000000000000"
PAYJS_MCHID = "1230000109"
PAYJS_KEY = "PAYJSKEY-secret-0123456789"
EFT_UCK = "S0003469"
EFT_SECRET = "EFTSECRET-9f3a-secret"
SECRETS = (WECHAT_KEY, PAYJS_KEY, EFT_SECRET)


# -- growth ratio ----------------------------------------------------------------------------

_Body = TypeVar("_Body", bytes, str)


def _best_time(work: Callable[[], object], repeats: int) -> float:
    # As timeit does, with the cyclic garbage collector off: a collection landing in one
    # measurement but not the other would fake a growth ratio.
    gc.disable()
    try:
        best = float("inf")
        for _ in range(repeats):
            # CPU time of this thread: time spent waiting for a core on a busy machine is not
            # work done by the parser and must not count.
            start = time.thread_time()
            work()
            best = min(best, time.thread_time() - start)
        return best
    finally:
        gc.enable()


def growth_ratio(
    run: Callable[[_Body], object], make: Callable[[int], _Body], max_size: int, *, min_time: float = 0.002
) -> float:
    """Best-of-several time on a body twice as large over the time on the smaller one.

    Time is the thread's CPU time (not wall-clock: no threshold on seconds is ever asserted, and
    waiting for a core does not count). Linear work gives about 2, quadratic about 4. The smaller
    size starts at 4 KiB and doubles until one run takes ``min_time`` (above timer noise) or the
    larger body would pass ``max_size`` — so a quadratic parser fails fast, on small bodies. The
    ratio is measured up to three times (best of five runs per size) and the smallest kept: a
    burst of load cannot fake a superlinear ratio, and a quadratic parser never gets near 2.
    """
    gc.collect()
    size = 4096
    while 4 * size <= max_size:
        if _best_time(functools.partial(run, make(size)), 3) >= min_time:
            break
        size *= 2
    small, large = make(size), make(2 * size)
    ratios = []
    for _ in range(3):
        t_small = _best_time(lambda: run(small), 5)
        t_large = _best_time(lambda: run(large), 5)
        ratios.append(t_large / max(t_small, 1e-7))
        if ratios[-1] < 2.6:
            break
    return min(ratios)


def fill(prefix: bytes, unit: bytes, suffix: bytes, size: int) -> bytes:
    """``prefix + unit * k + suffix`` of about ``size`` bytes."""
    return prefix + unit * max(1, (size - len(prefix) - len(suffix)) // len(unit)) + suffix


def swallow(
    parse: Callable[[bytes], object], exceptions: type[BaseException] | tuple[type[BaseException], ...]
) -> Callable[[bytes], object]:
    def run(body: bytes) -> object:
        try:
            return parse(body)
        except exceptions as error:
            return error

    return run


# -- secrets in exceptions ---------------------------------------------------------------------


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything reachable through ``__cause__``, ``__context__`` and groups."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo.extend(x for x in (item.__cause__, item.__context__) if x is not None)
        todo.extend(getattr(item, "exceptions", ()))


def assert_no_secret(error: BaseException, secrets: tuple[str, ...] = SECRETS) -> None:
    """No secret (nor its UTF-8 bytes) in the repr, str, args or notes of anything in the chain."""
    for item in exception_chain(error):
        texts = [repr(item), str(item), repr(item.args), *map(repr, getattr(item, "__notes__", ()))]
        if hasattr(item, "__dict__"):
            texts.extend(repr(value) for value in vars(item).values())
        for text in texts:
            for secret in secrets:
                assert secret not in text, f"{type(item).__name__} holds a secret: {text[:200]}"
                assert repr(secret.encode())[2:-1] not in text


# -- reference signing (independent of the library) --------------------------------------------


def _pairs(fields: Mapping[str, Any], empty: Callable[[Any], bool]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and not empty(fields[k]))


def wechat_sign(fields: Mapping[str, str], key: str = WECHAT_KEY) -> str:
    text = _pairs(fields, lambda v: v == "") + f"&key={key}"
    return hashlib.md5(text.encode()).hexdigest().upper()


def wechat_hmac_sign(fields: Mapping[str, str], key: str = WECHAT_KEY) -> str:
    text = _pairs(fields, lambda v: v == "") + f"&key={key}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


def payjs_sign(fields: Mapping[str, Any], key: str = PAYJS_KEY) -> str:
    """Flat fields only: PHP array_filter empties dropped."""
    text = _pairs(fields, lambda v: v in ("", "0", 0, None, False)) + f"&key={key}"
    return hashlib.md5(text.encode()).hexdigest().upper()


def eft_sign(fields: Mapping[str, str], secret: str = EFT_SECRET) -> str:
    return hashlib.sha256((secret + _pairs(fields, lambda v: v == "")).encode()).hexdigest()


def xml_of(fields: Mapping[str, str]) -> bytes:
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items()) + "</xml>").encode()


#: The envelope of a WeChat reply that succeeded, for this test merchant.
WECHAT_SUCCESS = {
    "return_code": "SUCCESS",
    "return_msg": "OK",
    "appid": WECHAT_APPID,
    "mch_id": WECHAT_MCH_ID,
    "nonce_str": "n",
    "result_code": "SUCCESS",
}


def signed_wechat_reply(**fields: str) -> bytes:
    """A WeChat SUCCESS reply holding ``fields`` (which may override any default), signed inline."""
    reply = {**WECHAT_SUCCESS, **fields}
    reply["sign"] = wechat_sign(reply)
    return xml_of(reply)


def json_of(fields: Mapping[str, Any]) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


# -- in-memory transports ------------------------------------------------------------------------

Reply = tuple[int, Mapping[str, str], bytes]


def mock_transport(answer: Callable[[httpx.Request], Reply]) -> HttpxTransport:
    """A paykit transport whose replies come from ``answer`` (a narrow unit-test double)."""

    def handler(request: httpx.Request) -> httpx.Response:
        status, headers, body = answer(request)
        return httpx.Response(status, headers=dict(headers), content=body)

    return HttpxTransport(httpx_transport=httpx.MockTransport(handler))


def always(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> HttpxTransport:
    """A transport answering every request with the same reply."""
    return mock_transport(lambda _request: (status, headers or {}, body))


# -- clients on a transport double (no retries, so every reply is decided at once) ------------


def wechat_client(transport: Any) -> WeChatPayClient:
    """A WeChat client on ``transport``; plain http, which refunds accept in process."""
    return WeChatPayClient(
        WECHAT_APPID,
        WECHAT_MCH_ID,
        WECHAT_KEY,
        base_url="http://wx.example",
        transport=transport,
        retry=NO_RETRY,
    )


def payjs_client(transport: Any) -> PayJSClient:
    return PayJSClient(
        PAYJS_MCHID, PAYJS_KEY, base_url="https://payjs.example", transport=transport, retry=NO_RETRY
    )


def eftpay_client(transport: Any) -> EftPayClient:
    return EftPayClient(
        EFT_UCK, EFT_SECRET, base_url="https://eft.example", transport=transport, retry=NO_RETRY
    )


def eft_refund(client: EftPayClient) -> Awaitable[EftPayRefundResult]:
    """The eftPay refund the hostile tests send: refund R1 of 0.01 on WeChat order T1."""
    return client.refund(
        paytype="WeChat",
        payment_type="WECHATCN",
        out_trade_no="T1",
        transaction_amount="0.01",
        total_fee="0.01",
        refund_no="R1",
    )
