"""Notification endpoints for ASGI frameworks (extra ``asgi``: Starlette).

:func:`notification_app` turns a provider client and ``async def handler(notification)`` into an
ASGI app that accepts the provider's POSTs at its root and does the parts users most often get
wrong by hand:

1. reads the body with a size cap (a ``Content-Length`` over ``max_body`` is refused before
   reading, a streamed body as soon as it passes the cap: HTTP 413);
2. verifies it with the client — WeChat Pay v2 and v3 by ``receive_refund_notification``, which
   also confirms the refund with a verified query (v2 notifications are not authenticated by the
   protocol); PAYJS and eftPay by ``parse_notification`` (signature checked);
3. deduplicates redeliveries through an :class:`~paykit_async.IdempotencyStore` (the handler
   runs once per notification identity, see below; with ``RedisStore`` or ``SQLiteStore`` also
   across processes);
4. calls the handler and answers in the provider's exact success format; when the handler
   raises, in the provider's failure format, so that the provider redelivers (and the handler
   runs again: a failed run is never recorded as done); when verification fails, HTTP 400 with
   the provider's failure body and a reason-free message (the reason is logged on
   ``paykit_async.asgi`` at WARNING, without secrets).

**Notification identity** — what "the same notification" means, per provider (the merchant part
is the client's own, which verification has matched):

========================  ===============================================================
WeChat Pay v2             ``mch_id``, ``sub_mch_id``, ``out_refund_no``, ``refund_status``
WeChat Pay v3             ``mchid``, ``sub_mchid``, ``out_refund_no``, ``refund_status``
PAYJS                     ``mchid``, ``payjs_order_id``, ``return_code``
eftPay                    ``user_confirm_key``, ``trade_type``, ``refund_no`` (else
                          ``out_trade_no``), ``trade_status``
========================  ===============================================================

The status is part of the identity because one refund may be notified more than once for
different reasons (v3 ``REFUND.ABNORMAL``, later ``REFUND.SUCCESS``): each state reaches the
handler once, every redelivery of a state is answered without calling it again.

Concurrent deliveries of one notification use the store's atomic claim: one runs the handler,
the other waits up to ``wait`` seconds for it and then answers success (handled) or the failure
reply (still running: the provider redelivers later). A handler that ran longer than ``lease``
seconds, or a process that died mid-handler, lets a later delivery run it again.

Mount it in FastAPI or Starlette with ``app.add_route("/notify/payjs", endpoint,
methods=["POST"])`` (also on an ``APIRouter``), or ``app.mount("/notify/payjs", endpoint)`` —
with a mount, Starlette redirects ``/notify/payjs`` to ``/notify/payjs/`` and providers do not
follow redirects, so register the notify_url with the trailing slash.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, cast, overload

import anyio
import attrs
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from .errors import DecodeError, PaykitError, SignatureError, ValidationError
from .notification_reply import NotificationReply
from .pipeline.idempotency import despite_native_cancellation
from .pipeline.stores.base import IdempotencyStore, RecordedOutcome, RecordState
from .pipeline.stores.memory import MemoryStore
from .providers.eftpay import EftPayClient
from .providers.payjs import PayJSClient
from .providers.wechatpay import WeChatPayClient
from .providers.wechatpay_v3 import WeChatPayV3Client

if TYPE_CHECKING:
    from .providers.eftpay.models import RefundNotification as EftPayRefundNotification
    from .providers.payjs.models import PaymentNotification
    from .providers.wechatpay.models import RefundNotification as WeChatPayRefundNotification
    from .providers.wechatpay_v3.models import RefundNotification as WeChatPayV3RefundNotification

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_REMEMBERED_NOTIFICATIONS",
    "NotificationApp",
    "notification_app",
    "notification_identity",
]

logger = logging.getLogger("paykit_async.asgi")

#: The default body cap: real notifications are a few KiB; 64 KiB leaves ample room.
DEFAULT_MAX_BODY = 64 * 1024
#: How many handled notifications the default in-memory store remembers (redeliveries come
#: within about a day; a few hundred bytes each).
DEFAULT_REMEMBERED_NOTIFICATIONS = 100_000

#: Every notification record carries this fingerprint: the key alone is the identity.
_FINGERPRINT = "paykit-notification-v1"
_KEY_PREFIX = "notification:"
#: How long bookkeeping with the store may take when the request is being cancelled.
_SHIELDED_SECONDS = 10.0

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]


class _Provider(Protocol):
    """What the endpoint needs from a provider client: verify (and confirm), identify, answer."""

    @property
    def name(self) -> str: ...

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Any: ...

    def identity(self, notification: Any) -> tuple[str, list[str]]: ...

    def success(self) -> NotificationReply: ...

    def failure(self, message: str) -> NotificationReply: ...


@attrs.frozen(kw_only=True)
class _Adapter:
    """The part every provider shares: each client answers in its own exact reply format."""

    client: Any

    def success(self) -> NotificationReply:
        return cast(NotificationReply, self.client.notification_success_reply())

    def failure(self, message: str) -> NotificationReply:
        return cast(NotificationReply, self.client.notification_failure_reply(message))


@attrs.frozen(kw_only=True)
class _WeChatPay(_Adapter):
    client: WeChatPayClient
    name: ClassVar[str] = "wechatpay"

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Any:
        return await self.client.receive_refund_notification(body)

    def identity(self, notification: Any) -> tuple[str, list[str]]:
        client, reference = self.client, notification.out_refund_no
        return reference, [client.mch_id, client.sub_mch_id or "", reference, notification.refund_status]


@attrs.frozen(kw_only=True)
class _WeChatPayV3(_Adapter):
    client: WeChatPayV3Client
    name: ClassVar[str] = "wechatpay-v3"

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Any:
        return await self.client.receive_refund_notification(headers, body)

    def identity(self, notification: Any) -> tuple[str, list[str]]:
        client, reference = self.client, notification.out_refund_no
        return reference, [client.mchid, client.sub_mchid or "", reference, notification.refund_status]


@attrs.frozen(kw_only=True)
class _PayJS(_Adapter):
    client: PayJSClient
    name: ClassVar[str] = "payjs"

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Any:
        return self.client.parse_notification(body)

    def identity(self, notification: Any) -> tuple[str, list[str]]:
        order = notification.payjs_order_id
        return order, [self.client.mchid, order, str(notification.return_code)]


@attrs.frozen(kw_only=True)
class _EftPay(_Adapter):
    client: EftPayClient
    name: ClassVar[str] = "eftpay"

    async def receive(self, headers: Mapping[str, str], body: bytes) -> Any:
        return self.client.parse_notification(body)

    def identity(self, notification: Any) -> tuple[str, list[str]]:
        reference = notification.refund_no or notification.out_trade_no or ""
        parts = [
            self.client.user_confirm_key,
            notification.trade_type or "",
            reference,
            str(notification.trade_status),
        ]
        return reference, parts


_ADAPTERS: tuple[tuple[type, Callable[..., _Provider]], ...] = (
    (WeChatPayClient, _WeChatPay),
    (WeChatPayV3Client, _WeChatPayV3),
    (PayJSClient, _PayJS),
    (EftPayClient, _EftPay),
)


def _provider_of(client: object) -> _Provider:
    for kind, adapter in _ADAPTERS:
        if isinstance(client, kind):
            return adapter(client=client)
    raise TypeError(
        "notification_app needs a WeChatPayClient, WeChatPayV3Client, PayJSClient or EftPayClient, "
        f"not {type(client).__name__}"
    )


def notification_identity(provider: str, parts: list[str]) -> str:
    """The idempotency-store key of one notification: readable and unambiguous (a JSON list)."""
    return _KEY_PREFIX + json.dumps([provider, *parts], ensure_ascii=False, separators=(",", ":"))


class _TooLarge(Exception):
    pass


class NotificationApp:
    """The ASGI app :func:`notification_app` returns (see the module docstring for what it does).

    Attributes: ``provider`` (``"wechatpay"``, ``"wechatpay-v3"``, ``"payjs"``, ``"eftpay"``),
    ``idempotency_store``, ``max_body``, ``lease`` and ``wait``. It owns neither the client nor
    the store: close them yourself (e.g. in your app's lifespan).
    """

    def __init__(
        self,
        provider: _Provider,
        handler: Callable[[Any], Awaitable[object]],
        *,
        idempotency_store: IdempotencyStore | None,
        max_body: int,
        lease: float,
        wait: float,
    ) -> None:
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 1:
            raise ValidationError("must be an int >= 1 (bytes)", field="max_body")
        if not lease > 0:
            raise ValidationError("must be > 0 (seconds)", field="lease")
        if not wait >= 0:
            raise ValidationError("must be >= 0 (seconds)", field="wait")
        if not callable(handler):
            raise ValidationError("must be an async function of the notification", field="handler")
        self._provider = provider
        self._handler = handler
        self.provider = provider.name
        self.idempotency_store: IdempotencyStore = (
            idempotency_store
            if idempotency_store is not None
            else MemoryStore(max_finished=DEFAULT_REMEMBERED_NOTIFICATIONS)
        )
        self.max_body = max_body
        self.lease = lease
        self.wait = wait

    def __repr__(self) -> str:
        return f"<NotificationApp {self.provider} store={self.idempotency_store!r} max_body={self.max_body}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind == "websocket":
            # Anyone can ask to upgrade the notify_url (mounted apps get those scopes too):
            # refused as the ASGI spec says — closed before accepting — not with a traceback.
            await _refuse_websocket(receive, send)
            return
        if kind != "http":
            raise RuntimeError(f"notification endpoints serve HTTP, not {kind}")
        response = await self._respond(Request(cast(Any, scope), cast(Any, receive)))
        await response(cast(Any, scope), cast(Any, receive), cast(Any, send))

    async def _respond(self, request: Request) -> Response:
        if request.method != "POST":
            return Response(b"Method Not Allowed", status_code=405, headers={"allow": "POST"})
        try:
            body = await self._read_body(request)
        except _TooLarge:
            logger.warning("%s notification refused: body over %d bytes", self.provider, self.max_body)
            return _response(self._provider.failure("invalid notification"), status_code=413)
        except ClientDisconnect:
            return Response(status_code=400)
        try:
            notification = await self._provider.receive(request.headers, body)
        except (SignatureError, DecodeError, ValidationError) as error:
            logger.warning(
                "%s notification rejected: %s: %s", self.provider, type(error).__name__, error.message
            )
            return _response(self._provider.failure("invalid notification"), status_code=400)
        except PaykitError as error:
            # The provider could not confirm it now (network, provider busy): ask for a redelivery.
            logger.warning(
                "%s notification not confirmed yet: %s: %s",
                self.provider,
                type(error).__name__,
                error.message,
            )
            return _response(self._provider.failure("please retry"))
        return await self._handle_once(notification)

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise _TooLarge  # not a length at all: refuse it like one over the cap
            # Compared by its digits first: int() of thousands of them is a ValueError (Python's
            # limit on integer strings) and of millions super-linear work.
            digits = declared.lstrip("0")
            if len(digits) > len(str(self.max_body)) or int(digits or "0") > self.max_body:
                raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    async def _handle_once(self, notification: Any) -> Response:
        provider = self._provider
        reference, parts = provider.identity(notification)
        key = notification_identity(provider.name, parts)
        owner = secrets.token_hex(16)
        try:
            claim = await self._claim(key, reference, owner)
        except Exception:
            logger.exception(
                "%s notification: the idempotency store failed; asking for a redelivery", provider.name
            )
            return _response(provider.failure("please retry"))
        if claim == "busy":
            logger.info("%s notification %s is being handled; asking for a redelivery", provider.name, key)
            return _response(provider.failure("please retry"))
        if claim == "handled":
            logger.info("%s notification %s was handled already", provider.name, key)
            return _response(provider.success())
        try:
            await self._handler(notification)
        except Exception:
            logger.exception(
                "%s notification handler failed for %s; the provider will redeliver", provider.name, key
            )
            await self._release(key, owner)
            return _response(provider.failure("please retry"))
        except BaseException:
            await self._release(key, owner)
            raise
        await self._finish(key, owner)
        return _response(provider.success())

    async def _claim(self, key: str, reference: str, owner: str) -> Literal["acquired", "handled", "busy"]:
        """Whether this delivery may run the handler: ``acquired``; ``handled`` when a delivery
        before it did; ``busy`` when another one still holds the claim after ``wait`` seconds."""
        store = self.idempotency_store
        pause = 0.02
        with anyio.move_on_after(self.wait):
            while True:
                try:
                    with anyio.CancelScope(shield=True), anyio.fail_after(_SHIELDED_SECONDS):
                        claim = await store.claim(
                            key, refund_no=reference, fingerprint=_FINGERPRINT, owner=owner, lease=self.lease
                        )
                except BaseException:
                    # Timed out, failed, or cancelled through the shield (asyncio's Task.cancel(),
                    # which a server uses on a lost client): the store may have made the claim
                    # unseen. Release it, or redeliveries would be turned away for the whole lease.
                    await self._release(key, owner)
                    raise
                if claim.acquired:
                    return "acquired"
                if claim.record.state is not RecordState.IN_FLIGHT:
                    return "handled"
                await anyio.sleep(pause)
                pause = min(pause * 2, 0.25)
        return "busy"

    async def _finish(self, key: str, owner: str) -> None:
        # Also when asyncio's Task.cancel() interrupts it (anyio's shield does not hold that): a
        # handled notification left unrecorded would run the handler again once the lease ends.
        await despite_native_cancellation(lambda: self._finish_once(key, owner))

    async def _finish_once(self, key: str, owner: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SHIELDED_SECONDS):
            try:
                await self.idempotency_store.finish(
                    key, owner=owner, result=RecordedOutcome(fields={"notification": key})
                )
            except Exception:
                # The handler did its work; the claim lapses after ``lease`` seconds.
                logger.exception("%s notification %s: could not record it as handled", self.provider, key)

    async def _release(self, key: str, owner: str) -> None:
        await despite_native_cancellation(lambda: self._release_once(key, owner))

    async def _release_once(self, key: str, owner: str) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(_SHIELDED_SECONDS):
            try:
                await self.idempotency_store.release(key, owner=owner)
            except Exception:
                logger.exception("%s notification %s: could not release its claim", self.provider, key)


def _response(reply: NotificationReply, *, status_code: int | None = None) -> Response:
    return Response(
        reply.body,
        status_code=reply.status_code if status_code is None else status_code,
        headers=dict(reply.headers),
    )


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    """Close a WebSocket handshake before accepting it (the server answers HTTP 403)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": 1008})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Served on its own, the app has nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@overload
def notification_app(
    client: WeChatPayClient,
    handler: Callable[[WeChatPayRefundNotification], Awaitable[object]],
    *,
    idempotency_store: IdempotencyStore | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lease: float = 120.0,
    wait: float = 2.0,
) -> NotificationApp: ...


@overload
def notification_app(
    client: WeChatPayV3Client,
    handler: Callable[[WeChatPayV3RefundNotification], Awaitable[object]],
    *,
    idempotency_store: IdempotencyStore | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lease: float = 120.0,
    wait: float = 2.0,
) -> NotificationApp: ...


@overload
def notification_app(
    client: PayJSClient,
    handler: Callable[[PaymentNotification], Awaitable[object]],
    *,
    idempotency_store: IdempotencyStore | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lease: float = 120.0,
    wait: float = 2.0,
) -> NotificationApp: ...


@overload
def notification_app(
    client: EftPayClient,
    handler: Callable[[EftPayRefundNotification], Awaitable[object]],
    *,
    idempotency_store: IdempotencyStore | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lease: float = 120.0,
    wait: float = 2.0,
) -> NotificationApp: ...


def notification_app(
    client: WeChatPayClient | WeChatPayV3Client | PayJSClient | EftPayClient,
    handler: Callable[[Any], Awaitable[object]],
    *,
    idempotency_store: IdempotencyStore | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    lease: float = 120.0,
    wait: float = 2.0,
) -> NotificationApp:
    """An ASGI app that receives ``client``'s provider notifications at its root (POST).

    ``handler`` is ``async def handler(notification)``, called once per notification identity
    with the verified (for WeChat Pay, confirmed) notification: WeChat Pay v2 and v3 refund
    notifications, PAYJS payment notifications, eftPay notifications. ``idempotency_store``
    remembers what was handled (default: a :class:`~paykit_async.MemoryStore` of this app that
    remembers the last :data:`DEFAULT_REMEMBERED_NOTIFICATIONS` handled notifications, so one
    process and bounded memory; give a ``RedisStore`` or ``SQLiteStore`` shared by every process
    that serves the endpoint). ``max_body`` caps the body in bytes (413 beyond it). ``lease`` is how long a
    running handler keeps its claim; ``wait`` how long a concurrent redelivery waits for it.
    """
    return NotificationApp(
        _provider_of(client),
        handler,
        idempotency_store=idempotency_store,
        max_body=max_body,
        lease=lease,
        wait=wait,
    )
