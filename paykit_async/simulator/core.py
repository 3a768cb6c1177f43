"""The :class:`Simulator`: the Python API around the app, ledger, clock and notification sender.

Threading: the app may be served by uvicorn in another thread (one event loop per server) while
tests seed orders and read snapshots from theirs; all shared state sits behind locks that are
never held across an ``await``.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from decimal import Decimal

import anyio
import httpx

from ..transport.httpx_transport import HttpxTransport
from ..transport.tls import build_ssl_context
from .app import SimulatorApp
from .clock import SimulatorClock, SystemClock
from .config import SimulatorConfig
from .eftpay import EftPayHandler
from .faults import FaultInjector, FaultPlan
from .http import IN_PROCESS_KEY, ConnectionDropped, Receive, Scope, Send
from .ledger import LedgerSnapshot, Order, to_cents
from .notifications import Delivery, deliver_due
from .payjs import PayJSHandler
from .state import RequestRecord, SimulatorState
from .wechatpay import WeChatPayHandler
from .wechatpay_v3 import PlatformCertificate, WeChatPayV3Handler, WeChatPayV3Keys

__all__ = ["IN_PROCESS_BASE_URL", "Simulator"]

#: The base URL clients use with the in-process transport (any host works; this one is explicit).
IN_PROCESS_BASE_URL = "http://paykit-simulator.invalid"
PROVIDERS = ("wechatpay", "wechatpay-v3", "payjs", "eftpay")


class _InProcessTransport(httpx.ASGITransport):
    """``httpx.ASGITransport`` on the simulator app, turning simulated drops into httpx errors.

    An ``ASGITransport`` (no network, no TLS), so ``HttpxTransport`` knows it runs in process.
    """

    def __init__(self, app: SimulatorApp) -> None:
        async def marked(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, IN_PROCESS_KEY: True}, receive, send)

        super().__init__(app=marked)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a complete response", request=request
            ) from exc


class Simulator:
    """Fake PAYJS, WeChat Pay v2 and v3, and eftPay for tests and demos.

    Use in process::

        sim = Simulator(SimulatorConfig(auto_orders=True))
        client = WeChatPayClient(..., base_url=sim.base_url("wechatpay"), transport=sim.transport())

    or serve ``sim.app`` with any ASGI server. ``async with sim.running():`` delivers refund
    notifications in the background (a lifespan-enabled server does that by itself).
    """

    def __init__(self, config: SimulatorConfig | None = None, *, clock: SimulatorClock | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.clock: SimulatorClock = clock if clock is not None else SystemClock()
        self._state = SimulatorState(self.config, self.clock)
        for handler_class in (WeChatPayHandler, WeChatPayV3Handler, PayJSHandler, EftPayHandler):
            handler = handler_class(self._state)
            self._state.handlers[handler.name] = handler
        self.app = SimulatorApp(self._state, background=self.run_notifier)

    def __repr__(self) -> str:
        return f"<Simulator auto_orders={self.config.auto_orders}>"

    # -- pointing clients at it ---------------------------------------------------------------

    @staticmethod
    def base_url(provider: str, root: str = IN_PROCESS_BASE_URL) -> str:
        """A client's ``base_url`` for ``provider`` on a simulator at ``root``."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
        return f"{root.rstrip('/')}/{provider}"

    def httpx_transport(self) -> httpx.AsyncBaseTransport:
        """An in-process httpx transport to the app (simulated drops become httpx errors)."""
        return _InProcessTransport(self.app)

    def transport(self) -> HttpxTransport:
        """A fresh paykit transport to the app in process, for one client's ``transport=``."""
        return HttpxTransport(httpx_transport=self.httpx_transport())

    # -- seeding ------------------------------------------------------------------------------

    def add_wechatpay_order(
        self,
        out_trade_no: str,
        total_fee: int,
        *,
        transaction_id: str | None = None,
        paid: bool = True,
        created_at: float | None = None,
    ) -> None:
        """Seed a WeChat Pay order of ``total_fee`` fen (paid unless ``paid=False``)."""
        self._add_wechat_order("wechatpay", out_trade_no, total_fee, transaction_id, paid, created_at)

    def add_wechatpay_v3_order(
        self,
        out_trade_no: str,
        total: int,
        *,
        transaction_id: str | None = None,
        paid: bool = True,
        created_at: float | None = None,
    ) -> None:
        """Seed a WeChat Pay v3 order of ``total`` fen (paid unless ``paid=False``)."""
        self._add_wechat_order("wechatpay-v3", out_trade_no, total, transaction_id, paid, created_at)

    def _add_wechat_order(
        self,
        provider: str,
        out_trade_no: str,
        total: int,
        transaction_id: str | None,
        paid: bool,
        created_at: float | None,
    ) -> None:
        ledger = self._state.ledger
        ledger.add_order(
            Order(
                provider=provider,
                order_no=out_trade_no,
                provider_no=transaction_id or f"42000{ledger.next_id():023d}",
                total=_whole(total),
                paid=paid,
                created_at=self.clock.now() if created_at is None else created_at,
            )
        )

    def wechatpay_v3_keys(self) -> WeChatPayV3Keys:
        """The merchant key, APIv3 key and WeChat Pay public key a v3 client needs (generated on
        first use): ``WeChatPayV3Client(**sim.wechatpay_v3_keys().client_kwargs(), ...)``."""
        return self._v3_handler().material.keys()

    def rotate_wechatpay_v3_certificate(self) -> PlatformCertificate:
        """Issue a new platform certificate and sign with it from now on (certificate mode)."""
        return self._v3_handler().material.rotate()

    def _v3_handler(self) -> WeChatPayV3Handler:
        handler = self._state.handlers["wechatpay-v3"]
        assert isinstance(handler, WeChatPayV3Handler)
        return handler

    def add_payjs_order(
        self,
        payjs_order_id: str,
        total_fee: int,
        *,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        kind: str = "native",
        paid: bool = True,
        created_at: float | None = None,
        attach: str | None = None,
        alipay: bool = False,
        notify_url: str | None = None,
    ) -> None:
        """Seed a PAYJS order (``kind`` ``micropay``/``facepay`` can be reversed).

        With ``notify_url`` a paid order's signed payment notification is queued.
        """
        ledger = self._state.ledger
        serial = ledger.next_id()
        extra = {"out_trade_no": out_trade_no or f"sim{serial:012d}", "openid": "o7LFAwSimulatorOpenid"}
        if attach is not None:
            extra["attach"] = attach
        order = ledger.add_order(
            Order(
                provider="payjs",
                order_no=payjs_order_id,
                provider_no=transaction_id or f"42000{serial:023d}",
                total=_whole(total_fee),
                paid=paid,
                kind=kind,
                paytype="Alipay" if alipay else "WeChat",
                created_at=self.clock.now() if created_at is None else created_at,
                extra=extra,
            )
        )
        if notify_url and paid:
            handler = self._state.handlers["payjs"]
            assert isinstance(handler, PayJSHandler)
            handler.payment_notification(order, notify_url)

    def add_eftpay_order(
        self,
        out_trade_no: str,
        total_fee: Decimal | str,
        *,
        paytype: str = "WeChat",
        payment_type: str = "WECHATCN",
        created_at: float | None = None,
    ) -> None:
        """Seed an eftPay sale of ``total_fee`` (a Decimal or string with at most 2 decimals)."""
        cents = to_cents(str(total_fee))
        if cents is None:
            raise ValueError("total_fee must be an amount with at most 2 decimals")
        ledger = self._state.ledger
        ledger.add_order(
            Order(
                provider="eftpay",
                order_no=out_trade_no,
                provider_no=f"EFT{ledger.next_id():020d}",
                total=cents,
                paytype=paytype,
                payment_type=payment_type,
                created_at=self.clock.now() if created_at is None else created_at,
            )
        )

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan from now on (``FaultPlan()``: no more faults)."""
        self._state.faults = FaultInjector(plan)

    def set_balance(self, provider: str, cents: int | None) -> None:
        """Set a merchant's refundable balance in fen/cents (``None``: unlimited)."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}")
        self._state.set_balance(provider, cents)

    def balance(self, provider: str) -> int | None:
        """A merchant's refundable balance in fen/cents (``None``: unlimited)."""
        return self._state.balance(provider)

    # -- inspection ---------------------------------------------------------------------------

    def snapshot(self) -> LedgerSnapshot:
        """A frozen copy of orders, refunds and payouts (refunds that are due are completed first)."""
        self._state.settle_due()
        return self._state.ledger.snapshot()

    def requests(self) -> tuple[RequestRecord, ...]:
        """Every request handled so far, oldest first."""
        return self._state.requests()

    def over_limit_replies(self, provider: str | None = None) -> int:
        """How many requests (to ``provider``, or to any) got the over-limit reply of the
        merchant's rate limit (``SimulatorConfig.rate_limit``) so far."""
        return self._state.rate_limits.refused(provider)

    def deliveries(self) -> tuple[Delivery, ...]:
        """Every notification queued so far with its delivery state."""
        return self._state.outbox.deliveries()

    # -- time and notifications ---------------------------------------------------------------

    def settle_due(self) -> None:
        """Complete the refunds whose delay has passed (queries do this by themselves)."""
        self._state.settle_due()

    async def deliver_due(self, client: httpx.AsyncClient | None = None) -> int:
        """Complete due refunds and POST due notifications once; return how many were acknowledged."""
        self._state.settle_due()
        if client is not None:
            return await deliver_due(self._state.outbox, client, self.clock.now())
        async with self._notify_client() as own:
            return await deliver_due(self._state.outbox, own, self.clock.now())

    async def run_notifier(self) -> None:
        """Forever: complete due refunds and deliver due notifications, every poll interval."""
        async with self._notify_client() as client:
            while True:
                self._state.settle_due()
                await deliver_due(self._state.outbox, client, self.clock.now())
                await anyio.sleep(self.config.notify_poll_interval)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Simulator]:
        """Run the notification sender in a task group for the duration of the block."""
        async with anyio.create_task_group() as group:
            group.start_soon(self.run_notifier)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()

    async def wait_delivered(self, count: int, *, poll: float = 0.02) -> tuple[Delivery, ...]:
        """Wait until ``count`` notifications were acknowledged (bound it with ``anyio.fail_after``)."""
        while True:
            done = tuple(d for d in self.deliveries() if d.delivered)
            if len(done) >= count:
                return done
            await anyio.sleep(poll)

    async def wait_notifications_done(self, *, poll: float = 0.02) -> tuple[Delivery, ...]:
        """Wait until every queued notification was acknowledged or given up on."""
        while True:
            if not self._state.outbox.pending():
                return self.deliveries()
            await anyio.sleep(poll)

    def _notify_client(self) -> httpx.AsyncClient:
        context: ssl.SSLContext = build_ssl_context(ca_file=self.config.notify_ca_file)
        return httpx.AsyncClient(verify=context, timeout=3.0, trust_env=False, follow_redirects=False)


def _whole(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("amounts in fen are non-negative ints")
    return value
