"""What the provider handlers share: config, clock, ledger, balances, outbox, faults, request log."""

from __future__ import annotations

import abc
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from .clock import SimulatorClock
from .config import SimulatorConfig
from .faults import Fault, FaultInjector
from .http import HttpReply, HttpRequest
from .ledger import Ledger, Order, Refund, to_cents
from .notifications import Outbox
from .ratelimit import RateLimits

__all__ = ["Handled", "ProviderHandler", "RequestRecord", "SimulatorState", "WeChatRefundRefused", "tamper"]

_OUTCOMES = {"success": "SUCCESS", "closed": "CLOSED", "change": "CHANGE", "fail": "FAIL"}


@attrs.frozen(kw_only=True)
class RequestRecord:
    """One request as the simulator handled it (for test inspection).

    ``fields`` are the decoded request fields (the request's ``sign`` included — it is not a
    secret); ``outcome`` is a short label such as ``SUCCESS``, ``SIGNERROR`` or ``NOTENOUGH``.
    """

    provider: str
    endpoint: str
    path: str
    fields: Mapping[str, Any]
    status: int
    outcome: str
    fault: str | None
    at: float
    over_limit: bool = False
    """The merchant's rate limit refused it (``SimulatorConfig.rate_limit``)."""
    arrived: float = 0.0
    """When it arrived (``at`` is when it was answered, after any latency fault); the rate limit
    counts arrivals."""


@attrs.frozen(kw_only=True)
class Handled:
    """A provider handler's answer: the reply, the decoded request, and what happened."""

    reply: HttpReply
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    outcome: str = "SUCCESS"


class SimulatorState:
    """The mutable world of one simulator. Every method is thread-safe."""

    def __init__(self, config: SimulatorConfig, clock: SimulatorClock) -> None:
        self.config = config
        self.clock = clock
        self.ledger = Ledger()
        self.outbox = Outbox(config.notify_schedule)
        self.faults = FaultInjector(config.faults)
        self.rate_limits = RateLimits(config.rate_limit)
        self.handlers: dict[str, ProviderHandler] = {}
        eft_balance = config.eftpay.balance
        self._balances: dict[str, int | None] = {
            "wechatpay": config.wechatpay.balance,
            "wechatpay-v3": config.wechatpay_v3.balance,
            "payjs": config.payjs.unsettled_balance,
            "eftpay": None if eft_balance is None else to_cents(str(eft_balance)),
        }
        self._log: list[RequestRecord] = []
        self._log_lock = threading.Lock()

    def now(self) -> float:
        """The simulator clock's time."""
        return self.clock.now()

    def outcome_state(self) -> str:
        """The ledger state a refund ends in, from the configuration."""
        return _OUTCOMES[self.config.refund_outcome]

    def settle_due(self) -> None:
        """Complete every refund whose delay has passed and queue its notification."""
        for refund in self.ledger.complete_due(self.now(), self.outcome_state()):
            if refund.state in ("CLOSED", "FAIL"):
                self.refund_back(refund.provider, refund.amount)
            self.handlers[refund.provider].refund_completed(refund)

    def balance(self, provider: str) -> int | None:
        """The merchant's refundable balance in cents (None: unlimited)."""
        with self.ledger.lock:
            return self._balances[provider]

    def set_balance(self, provider: str, cents: int | None) -> None:
        """Set the merchant's refundable balance (None: unlimited)."""
        with self.ledger.lock:
            self._balances[provider] = cents

    def spend(self, provider: str, cents: int, *, strictly_more: bool = False) -> bool:
        """Take ``cents`` from the balance; False (nothing taken) when it does not cover them.

        PAYJS refunds need the unsettled funds to *exceed* the refund (``strictly_more``).
        """
        with self.ledger.lock:
            balance = self._balances[provider]
            if balance is None:
                return True
            if balance < cents or (strictly_more and balance == cents):
                return False
            self._balances[provider] = balance - cents
            return True

    def refund_back(self, provider: str, cents: int) -> None:
        """Return the money of a refund that failed to the balance."""
        with self.ledger.lock:
            balance = self._balances[provider]
            if balance is not None:
                self._balances[provider] = balance + cents

    def log(self, record: RequestRecord) -> None:
        """Append to the request log."""
        with self._log_lock:
            self._log.append(record)

    def requests(self) -> tuple[RequestRecord, ...]:
        """The request log, oldest first."""
        with self._log_lock:
            return tuple(self._log)


class ProviderHandler(abc.ABC):
    """One provider's endpoints. ``routes`` maps a path under ``prefix`` to an endpoint name."""

    name: str
    prefix: str
    routes: Mapping[str, str]

    def __init__(self, state: SimulatorState) -> None:
        self.state = state

    @abc.abstractmethod
    async def handle(self, endpoint: str, request: HttpRequest, fault: Fault) -> Handled:
        """Answer one request; apply ``fault`` when it is one the provider expresses itself
        (retryable codes, rate limiting, bad signatures)."""

    @abc.abstractmethod
    def refund_completed(self, refund: Refund) -> None:
        """A refund reached its final state: queue its notification when one was asked for."""

    @abc.abstractmethod
    def server_error_reply(self, status: int) -> HttpReply:
        """The body this provider's front end shows with a 5xx."""

    def match_route(self, path: str) -> str | None:
        """The endpoint of a ``path`` (under ``prefix``) that is not in ``routes``, if any."""
        return None

    def find_wechat_order(
        self, out_trade_no: str, transaction_id: str, *, total: int | None, paid: bool
    ) -> Order | None:
        """This provider's order by either identifier; with ``auto_orders``, an unknown one is
        created first (paid, or unpaid and old enough to be closed), as WeChat Pay v2 and v3 do."""
        ledger = self.state.ledger
        order = ledger.order(self.name, order_no=out_trade_no, provider_no=transaction_id)
        if order is None and self.state.config.auto_orders and total is not None:
            now = self.state.now()
            order = ledger.add_order(
                Order(
                    provider=self.name,
                    order_no=out_trade_no or f"sim{ledger.next_id():020d}",
                    provider_no=transaction_id or f"42000{ledger.next_id():023d}",
                    total=total,
                    paid=paid,
                    created_at=now if paid else now - self.state.config.wechatpay_close_after,
                )
            )
        return order

    def execute_wechat_refund(
        self,
        order: Order,
        *,
        refund_no: str,
        refund_fee: int,
        total: int,
        refund_id_prefix: str,
        notify_url: str,
        fields: Mapping[str, str],
        refund_within: float | None = None,
    ) -> Refund:
        """WeChat Pay's refund ledger rules, the same in v2 and v3: a known ``out_refund_no`` is the
        same refund again (counted as a repeat), refused when its order or amounts differ; a new
        one needs a paid order of ``total``, under the refund count limit, with ``refund_fee``
        still refundable and covered by the merchant's balance, and (with ``refund_within``) an
        order no older than that. Raises
        :class:`WeChatRefundRefused` naming the rule (each API words the refusal its own way)."""
        ledger = self.state.ledger
        existing = ledger.refund(self.name, refund_no)
        if existing is not None:
            if (
                existing.order_no != order.order_no
                or existing.amount != refund_fee
                or existing.order_total != total
            ):
                raise WeChatRefundRefused("mismatch")
            return ledger.count_repeat_request(existing)
        if not order.paid:
            raise WeChatRefundRefused("unpaid")
        now = self.state.now()
        if refund_within is not None and now - order.created_at > refund_within:
            raise WeChatRefundRefused("overdue")
        if total != order.total:
            raise WeChatRefundRefused("total")
        if len(order.refund_nos) >= self.state.config.wechatpay_max_refunds:
            raise WeChatRefundRefused("too_many")
        if ledger.refunded(order) + refund_fee > order.total:
            raise WeChatRefundRefused("over")
        if not self.state.spend(self.name, refund_fee):
            raise WeChatRefundRefused("balance")
        return ledger.add_refund(
            order,
            Refund(
                provider=self.name,
                refund_no=refund_no,
                refund_id=f"{refund_id_prefix}{ledger.next_id():024d}",
                order_no=order.order_no,
                amount=refund_fee,
                order_total=total,
                created_at=now,
                complete_at=now + self.state.config.completion_delay,
                notify_url=notify_url,
                fields=fields,
            ),
        )


class WeChatRefundRefused(Exception):
    """:meth:`ProviderHandler.execute_wechat_refund` refused: ``rule`` is mismatch, unpaid, total,
    too_many, over, balance or overdue."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def tamper(signature: str) -> str:
    """A signature with its last character changed (same length and case): verifiably wrong."""
    if not signature:
        return "0"
    last = signature[-1]
    replacement = "0" if last != "0" else "1"
    return signature[:-1] + replacement
