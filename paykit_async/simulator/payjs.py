"""The fake PAYJS: refund (always the whole order), close, reverse and check, plus payment notifications.

Failures answer ``{"return_code": 0, "return_msg": ...}``; authentication failures are unsigned,
business failures are signed. A second refund of the same order answers ``return_code=1``
*without* a signature when :attr:`SimulatorConfig.payjs_unsigned_duplicate` is set, as the
real service has been seen to do — clients must not take that as a verified success.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..codecs import decode_form, encode_form
from ..errors import DecodeError
from ..signing import KeyedMd5Signer, is_php_empty
from .clock import china_time
from .faults import Fault, FaultKind
from .http import HttpReply, HttpRequest
from .ledger import Order, Refund
from .state import Handled, ProviderHandler, tamper

__all__ = ["PayJSHandler"]

JSON = "application/json; charset=utf-8"
FORM = "application/x-www-form-urlencoded"
UNSETTLED_FUNDS = "未结算金额不足，无法退款"
ALREADY_REFUNDED = "订单已退款"
_KINDS_THAT_REVERSE = ("micropay", "facepay")
_UNSIGNED = "\0unsigned"  # marks the duplicate-refund answer, which goes out without a sign


class _Refused(Exception):
    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.message = message
        self.outcome = outcome


class PayJSHandler(ProviderHandler):
    """PAYJS under ``/payjs``."""

    name = "payjs"
    prefix = "/payjs"
    routes: Mapping[str, str] = {
        "/api/refund": "refund",
        "/api/close": "close",
        "/api/reverse": "reverse",
        "/api/check": "check",
    }

    @property
    def signer(self) -> KeyedMd5Signer:
        """PAYJS's MD5 signer with PHP ``array_filter`` empties."""
        return KeyedMd5Signer(key=self.state.config.payjs.key, is_empty=is_php_empty)

    def server_error_reply(self, status: int) -> HttpReply:
        return HttpReply(status=status, content_type="text/html", body=b"<h1>Server Error</h1>")

    async def handle(self, endpoint: str, request: HttpRequest, fault: Fault) -> Handled:
        try:
            fields = decode_form(request.body)
        except DecodeError:
            return self._failure("参数错误", {}, outcome="BAD_FORM")
        if fields.get("mchid") != self.state.config.payjs.mchid:
            return self._failure("商户号错误", fields, outcome="BAD_MCHID")
        if not self.signer.verify(fields, fields.get("sign", "")):
            return self._failure("签名错误", fields, outcome="SIGNERROR")
        if fault.kind is FaultKind.RATE_LIMITED:
            return Handled(
                reply=HttpReply(
                    status=429,
                    content_type=JSON,
                    body=_json({"return_code": 0, "return_msg": "请求过于频繁"}),
                    headers={"retry-after": str(fault.retry_after)},
                ),
                fields=fields,
                outcome="RATE_LIMITED",
            )
        if fault.kind is FaultKind.RETRYABLE_CODE:
            return Handled(reply=self.server_error_reply(503), fields=fields, outcome="RETRYABLE")
        order_id = fields.get("payjs_order_id", "")
        if not order_id:
            return self._failure("payjs_order_id不能为空", fields, outcome="PARAM_ERROR", signed=True)
        try:
            with self.state.ledger.lock:
                self.state.settle_due()
                if endpoint == "refund":
                    reply = self._refund(order_id)
                    self.state.settle_due()
                elif endpoint == "close":
                    reply = self._close(order_id)
                elif endpoint == "reverse":
                    reply = self._reverse(order_id)
                    self.state.settle_due()
                else:
                    reply = self._check(order_id)
        except _Refused as refused:
            return self._failure(refused.message, fields, outcome=refused.outcome, signed=True, fault=fault)
        if reply.pop(_UNSIGNED, False):
            return Handled(
                reply=HttpReply(content_type=JSON, body=_json(reply)), fields=fields, outcome="DUPLICATE"
            )
        return Handled(reply=self._signed(reply, fault), fields=fields)

    def _signed(self, reply: dict[str, Any], fault: Fault) -> HttpReply:
        sign = self.signer.sign(reply)
        reply["sign"] = tamper(sign) if fault.kind is FaultKind.BAD_SIGNATURE else sign
        return HttpReply(content_type=JSON, body=_json(reply))

    def _failure(
        self,
        message: str,
        fields: Mapping[str, str],
        *,
        outcome: str,
        signed: bool = False,
        fault: Fault | None = None,
    ) -> Handled:
        reply: dict[str, Any] = {"return_code": 0, "return_msg": message}
        if signed:
            return Handled(reply=self._signed(reply, fault or Fault()), fields=fields, outcome=outcome)
        return Handled(reply=HttpReply(content_type=JSON, body=_json(reply)), fields=fields, outcome=outcome)

    def _order(self, order_id: str, *, kind: str = "native", paid: bool = True) -> Order:
        ledger = self.state.ledger
        order = ledger.order(self.name, order_no=order_id)
        if order is None and self.state.config.auto_orders:
            serial = ledger.next_id()
            order = ledger.add_order(
                Order(
                    provider=self.name,
                    order_no=order_id,
                    provider_no=f"42000{serial:023d}",
                    total=self.state.config.payjs_auto_order_amount,
                    created_at=self.state.now(),
                    paid=paid,
                    kind=kind,
                    extra={"out_trade_no": f"sim{serial:012d}", "openid": "o7LFAwSimulatorOpenid"},
                )
            )
        if order is None:
            raise _Refused("订单不存在", "ORDERNOTEXIST")
        return order

    def _identity(self, order: Order) -> dict[str, Any]:
        return {
            "payjs_order_id": order.order_no,
            "out_trade_no": order.extra.get("out_trade_no", ""),
            "transaction_id": order.provider_no,
        }

    def _refund(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id)
        existing = self.state.ledger.refund(self.name, order_id)
        if existing is not None:
            self.state.ledger.count_repeat_request(existing)
            if self.state.config.payjs_unsigned_duplicate:
                return {"return_code": 1, "return_msg": ALREADY_REFUNDED, "refund": 1, _UNSIGNED: True}
            raise _Refused(ALREADY_REFUNDED, "ALREADY_REFUNDED")
        if not order.paid or order.closed:
            raise _Refused("订单未支付", "NOTPAID")
        self._pay_out(order)
        return {"return_code": 1, "return_msg": "退款成功"} | self._identity(order)

    def _pay_out(self, order: Order) -> None:
        if not self.state.spend(self.name, order.total, strictly_more=True):
            raise _Refused(UNSETTLED_FUNDS, "NOTENOUGH")
        now = self.state.now()
        self.state.ledger.add_refund(
            order,
            Refund(
                provider=self.name,
                refund_no=order.order_no,
                refund_id=order.order_no,
                order_no=order.order_no,
                amount=order.total,
                order_total=order.total,
                created_at=now,
                complete_at=now + self.state.config.completion_delay,
            ),
        )

    def _close(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id, paid=False)
        if self.state.now() - order.created_at > self.state.config.payjs_close_within:
            raise _Refused("订单超过30天，无法关闭", "TOO_OLD")
        if order.paid:
            raise _Refused("订单已支付，无法关闭", "ORDERPAID")
        self.state.ledger.close_order(order)
        return {"return_code": 1, "return_msg": "关闭成功", "payjs_order_id": order.order_no}

    def _reverse(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id, kind="micropay")
        if order.kind not in _KINDS_THAT_REVERSE:
            raise _Refused("仅付款码和刷脸订单可撤销", "NOT_REVERSIBLE")
        if self.state.now() - order.created_at > self.state.config.payjs_reverse_within:
            raise _Refused("订单超过7天，无法撤销", "TOO_OLD")
        if order.paid and self.state.ledger.refund(self.name, order_id) is None:
            self._pay_out(order)
        self.state.ledger.close_order(order)
        return {"return_code": 1, "return_msg": "撤销成功", "payjs_order_id": order.order_no}

    def _check(self, order_id: str) -> dict[str, Any]:
        order = self._order(order_id)
        reply: dict[str, Any] = {
            "return_code": 1,
            "mchid": self.state.config.payjs.mchid,
            **self._identity(order),
            "status": 1 if order.paid else 0,
            "openid": order.extra.get("openid", ""),
            "total_fee": order.total,
            "paid_time": china_time(order.created_at, "%Y-%m-%d %H:%M:%S") if order.paid else "",
            "attach": order.extra.get("attach", ""),
        }
        if self.state.ledger.refund(self.name, order_id) is not None:
            # Newer PAYJS replies mark refunded orders; clients use it to settle lost refund replies.
            reply["refund"] = 1
        return reply

    # -- notifications ------------------------------------------------------------------------

    def refund_completed(self, refund: Refund) -> None:
        """PAYJS sends no refund notification."""

    def payment_notification(self, order: Order, notify_url: str) -> None:
        """Queue the signed form notification of a paid order."""
        fields: dict[str, str] = {
            "return_code": "1",
            "total_fee": str(order.total),
            "out_trade_no": order.extra.get("out_trade_no", ""),
            "payjs_order_id": order.order_no,
            "transaction_id": order.provider_no,
            "time_end": china_time(order.created_at, "%Y-%m-%d %H:%M:%S"),
            "openid": order.extra.get("openid", ""),
            "mchid": self.state.config.payjs.mchid,
        }
        if order.extra.get("attach"):
            fields["attach"] = order.extra["attach"]
        if order.paytype == "Alipay":
            fields["type"] = "alipay"
        fields["sign"] = self.signer.sign(fields)
        self.state.outbox.add(
            provider=self.name,
            kind="payment",
            reference=order.order_no,
            url=notify_url,
            body=encode_form(fields),
            content_type=FORM,
            acknowledged=lambda status, _body: status == 200,
            now=self.state.now(),
        )


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
