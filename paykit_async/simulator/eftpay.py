"""The fake eftPay VMP: JSAPI refunds, refund applications, refund status and trade queries.

Replies are JSON with ``return_status`` (``"00"`` = accepted) and ``return_char``. Accepted and
business-refused requests are answered with ``time`` and a lowercase SHA-256 ``sign``; requests
that fail authentication (unknown ``user_confirm_key``, bad signature, ``time`` more than ten
minutes from now in UTC+8) are answered unsigned. The non-``00`` codes are the simulator's own —
eftPay's appendix is not public — and clients must only rely on "not ``00``".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..codecs import decode_json, encode_json
from ..errors import DecodeError
from ..signing import PrefixedSha256Signer
from .clock import CHINA, china_time
from .faults import Fault, FaultKind
from .http import HttpReply, HttpRequest
from .ledger import Order, Refund, cents_text, to_cents
from .state import Handled, ProviderHandler, tamper

__all__ = ["STATUS", "EftPayHandler"]

JSON = "application/json; charset=utf-8"

#: The simulator's failure codes (all but ``"00"`` are failures).
STATUS = {
    "OK": "00",
    "PARAM_ERROR": "01",
    "SIGN_ERROR": "02",
    "MERCHANT_ERROR": "03",
    "TIME_ERROR": "04",
    "ORDER_NOT_EXIST": "05",
    "AMOUNT_EXCEEDED": "06",
    "REFUND_NO_CONFLICT": "07",
    "BALANCE_NOT_ENOUGH": "08",
    "SYSTEM_BUSY": "99",
}
_SERVICES = {
    "service.wechat.jsapi.Refund": "WeChat",
    "service.alipay.jsapi.Refund": "Alipay",
    "service.wechat.jsapi.ApplyRefund": "WeChat",
}
_REFUND_STATUS = {"PROCESSING": "PROCESSING", "SUCCESS": "SUCCESS"}
#: Refund request fields' longest lengths (specs/eftpay.md, "Request": String(n)).
_LENGTHS = {
    "out_trade_no": 28,
    "refund_no": 28,
    "tid": 20,
    "transaction_amount": 8,
    "total_fee": 8,
    "refund_desc": 256,
    "notify_url": 240,
}
_PAYMENT_TYPES = frozenset({"WECHATCN", "WECHATHK", "ALIPAYCN", "ALIPAYHK"})


class _Refused(Exception):
    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message


class EftPayHandler(ProviderHandler):
    """eftPay under ``/eftpay``."""

    name = "eftpay"
    prefix = "/eftpay"
    routes: Mapping[str, str] = {
        "/Servlet/JSAPIService.do": "JSAPIService",
        "/Servlet/QRcodeTradeQuery.do": "QRcodeTradeQuery",
    }

    @property
    def signer(self) -> PrefixedSha256Signer:
        """eftPay's prefixed SHA-256 signer."""
        return PrefixedSha256Signer(secret=self.state.config.eftpay.secret)

    def server_error_reply(self, status: int) -> HttpReply:
        return HttpReply(
            status=status, content_type="text/html", body=b"<html><body>Server Error</body></html>"
        )

    async def handle(self, endpoint: str, request: HttpRequest, fault: Fault) -> Handled:
        try:
            raw = decode_json(request.body)
        except DecodeError:
            return self._unsigned("PARAM_ERROR", "invalid JSON", {})
        fields = {k: v if isinstance(v, str) else str(v) for k, v in raw.items() if v is not None}
        if fields.get("user_confirm_key") != self.state.config.eftpay.user_confirm_key:
            return self._unsigned("MERCHANT_ERROR", "user_confirm_key is invalid", fields)
        if not self.signer.verify(fields, fields.get("sign", "")):
            return self._unsigned("SIGN_ERROR", "sign is invalid", fields)
        if not self._time_ok(fields.get("time", "")):
            return self._unsigned("TIME_ERROR", "time is invalid or too far from now (UTC+8)", fields)
        if fault.kind is FaultKind.RATE_LIMITED:
            limited = HttpReply(
                status=429,
                content_type=JSON,
                body=_json({"return_status": "98", "return_char": "too many requests"}),
                headers={"retry-after": str(fault.retry_after)},
            )
            return Handled(reply=limited, fields=fields, outcome="RATE_LIMITED")
        if fault.kind is FaultKind.RETRYABLE_CODE:
            return self._signed_failure("SYSTEM_BUSY", "system busy, please retry", fields, fault)
        try:
            with self.state.ledger.lock:
                self.state.settle_due()
                if endpoint == "QRcodeTradeQuery":
                    reply = self._trade_query(fields)
                else:
                    service = fields.get("service", "")
                    if service in _SERVICES:
                        self._refund(fields, service)
                        self.state.settle_due()
                        reply = self._refund_reply(fields)
                    elif service == "service.unified.RefundStatusQuery":
                        reply = self._refund_status(fields)
                    else:
                        raise _Refused("PARAM_ERROR", "unknown service")
        except _Refused as refused:
            return self._signed_failure(refused.outcome, refused.message, fields, fault)
        body = {"return_status": "00", "return_char": ""} | reply
        return Handled(reply=self._signed(body, fault), fields=fields)

    # -- envelope -----------------------------------------------------------------------------

    def _time_ok(self, text: str) -> bool:
        try:
            when = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
        except ValueError:
            return False
        return abs(when.timestamp() - self.state.now()) <= self.state.config.eftpay_time_tolerance

    def _signed(self, reply: dict[str, str], fault: Fault) -> HttpReply:
        reply["time"] = china_time(self.state.now())
        sign = self.signer.sign(reply)
        reply["sign"] = tamper(sign) if fault.kind is FaultKind.BAD_SIGNATURE else sign
        return HttpReply(content_type=JSON, body=encode_json(reply))

    def _unsigned(self, outcome: str, message: str, fields: Mapping[str, str]) -> Handled:
        body = _json({"return_status": STATUS[outcome], "return_char": message})
        return Handled(reply=HttpReply(content_type=JSON, body=body), fields=fields, outcome=outcome)

    def _signed_failure(self, outcome: str, message: str, fields: Mapping[str, str], fault: Fault) -> Handled:
        reply = {"return_status": STATUS[outcome], "return_char": message}
        for name in ("out_trade_no", "refund_no", "user_confirm_key"):
            if fields.get(name):
                reply[name] = fields[name]
        return Handled(reply=self._signed(reply, fault), fields=fields, outcome=outcome)

    # -- business rules -----------------------------------------------------------------------

    def _refund(self, fields: Mapping[str, str], service: str) -> None:
        for name in (
            "out_trade_no",
            "refund_no",
            "transaction_amount",
            "total_fee",
            "paytype",
            "payment_type",
        ):
            if not fields.get(name):
                raise _Refused("PARAM_ERROR", f"{name} is required")
        if fields["paytype"] != _SERVICES[service]:
            raise _Refused("PARAM_ERROR", "paytype does not match the service")
        if fields["payment_type"] not in _PAYMENT_TYPES:
            raise _Refused("PARAM_ERROR", "payment_type is invalid")
        for name, longest in _LENGTHS.items():
            if len(fields.get(name, "")) > longest:
                raise _Refused("PARAM_ERROR", f"{name} is longer than {longest} characters")
        amount = to_cents(fields["transaction_amount"])
        total = to_cents(fields["total_fee"])
        if amount is None or total is None or amount <= 0 or amount > total:
            raise _Refused(
                "PARAM_ERROR", "transaction_amount/total_fee must be amounts with at most 2 decimals"
            )
        ledger = self.state.ledger
        order = ledger.order(self.name, order_no=fields["out_trade_no"])
        if order is None and self.state.config.auto_orders:
            order = ledger.add_order(
                Order(
                    provider=self.name,
                    order_no=fields["out_trade_no"],
                    provider_no=f"EFT{ledger.next_id():020d}",
                    total=total,
                    created_at=self.state.now(),
                    paytype=fields["paytype"],
                    payment_type=fields["payment_type"],
                )
            )
        if order is None:
            raise _Refused("ORDER_NOT_EXIST", "order does not exist")
        existing = ledger.refund(self.name, fields["refund_no"])
        if existing is not None:
            if (
                existing.order_no != order.order_no
                or existing.amount != amount
                or existing.order_total != total
            ):
                raise _Refused("REFUND_NO_CONFLICT", "refund_no was used with different amounts")
            ledger.count_repeat_request(existing)
            return
        if total != order.total:
            raise _Refused("PARAM_ERROR", "total_fee does not match the order")
        if ledger.refunded(order) + amount > order.total:
            raise _Refused("AMOUNT_EXCEEDED", "refund amount exceeds the refundable amount")
        if not self.state.spend(self.name, amount):
            raise _Refused("BALANCE_NOT_ENOUGH", "merchant balance is not enough")
        now = self.state.now()
        kept = {
            "service": service,
            "tid": fields.get("tid", ""),
            "transaction_amount": fields["transaction_amount"],
        }
        ledger.add_refund(
            order,
            Refund(
                provider=self.name,
                refund_no=fields["refund_no"],
                refund_id=f"R{ledger.next_id():020d}",
                order_no=order.order_no,
                amount=amount,
                order_total=total,
                created_at=now,
                complete_at=now + self.state.config.completion_delay,
                notify_url=fields.get("notify_url", "") if service.endswith("ApplyRefund") else "",
                fields=kept,
            ),
        )

    def _trade_status(self, refund: Refund) -> str:
        if refund.state == "PROCESSING":
            return (
                "APPLY_SUCCESS"
                if refund.fields.get("service", "").endswith("ApplyRefund")
                else "TRADE_PROCESSING"
            )
        if refund.state == "SUCCESS":
            return refund.fields.get("final_status", "TRADE_REFUND")
        return "TRADE_FAIL"

    def _refund_fields(self, order: Order, refund: Refund) -> dict[str, str]:
        reply = {
            "out_trade_no": order.order_no,
            "trade_status": self._trade_status(refund),
            "user_confirm_key": self.state.config.eftpay.user_confirm_key,
            "paytype": order.paytype,
            "payment_type": order.payment_type,
            "refund_no": refund.refund_no,
            "transaction_amount": cents_text(refund.amount),
            "total_fee": cents_text(order.total),
            "eftpay_trade_no": order.provider_no,
            "refund_trade_no": refund.refund_id,
        }
        if refund.fields.get("tid"):
            reply["tid"] = refund.fields["tid"]
        return reply

    def _refund_reply(self, fields: Mapping[str, str]) -> dict[str, str]:
        refund = self.state.ledger.refund(self.name, fields["refund_no"])
        assert refund is not None
        order = self.state.ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        return self._refund_fields(order, refund)

    def _refund_status(self, fields: Mapping[str, str]) -> dict[str, str]:
        refund = self.state.ledger.refund(self.name, fields.get("refund_no", ""))
        if refund is None:
            raise _Refused("ORDER_NOT_EXIST", "refund does not exist")
        order = self.state.ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        reply = self._refund_fields(order, refund)
        reply["refund_status"] = _REFUND_STATUS.get(refund.state, "FAIL")
        return reply

    def _trade_query(self, fields: Mapping[str, str]) -> dict[str, str]:
        if fields.get("querytype", "OUT_TRADE") != "OUT_TRADE":
            raise _Refused("PARAM_ERROR", "querytype must be OUT_TRADE")
        order = self.state.ledger.order(self.name, order_no=fields.get("out_trade_no", ""))
        if order is None:
            raise _Refused("ORDER_NOT_EXIST", "order does not exist")
        if fields.get("refund_no"):
            refund = self.state.ledger.refund(self.name, fields["refund_no"])
            if refund is None or refund.order_no != order.order_no:
                raise _Refused("ORDER_NOT_EXIST", "refund does not exist")
            return self._refund_fields(order, refund) | {
                "trade_type": "REFUND",
                "extra_trade_no": refund.refund_id,
            }
        # "Refund done" only: a refund still processing (or one that failed) leaves the sale as it was.
        done = self._refunded_done(order)
        status = "TRADE_SUCCESS" if done == 0 else ("TRADE_CLOSED" if done >= order.total else "TRADE_REFUND")
        return {
            "out_trade_no": order.order_no,
            "trade_status": status,
            "trade_type": "SALE",
            "user_confirm_key": self.state.config.eftpay.user_confirm_key,
            "paytype": order.paytype,
            "payment_type": order.payment_type,
            "total_fee": cents_text(order.total),
            "eftpay_trade_no": order.provider_no,
            "extra_trade_no": order.provider_no,
        }

    def _refunded_done(self, order: Order) -> int:
        """What the refunds of ``order`` that succeeded have given back (cents)."""
        return sum(r.amount for r in self.state.ledger.refunds_of(order) if r.state == "SUCCESS")

    # -- notifications ------------------------------------------------------------------------

    def refund_completed(self, refund: Refund) -> None:
        ledger = self.state.ledger
        order = ledger.order(self.name, order_no=refund.order_no)
        assert order is not None
        if refund.state == "SUCCESS":
            done = self._refunded_done(order)
            final_status = "TRADE_CLOSED" if done >= order.total else "TRADE_REFUND"
            refund = ledger.annotate_refund(refund, final_status=final_status)
        if not refund.notify_url:
            return
        body: dict[str, str] = self._refund_fields(order, refund) | {
            "trade_type": "REFUND",
            "time": china_time(self.state.now()),
        }
        body["sign"] = self.signer.sign(body)
        self.state.outbox.add(
            provider=self.name,
            kind="refund",
            reference=refund.refund_no,
            url=refund.notify_url,
            body=encode_json(body),
            content_type=JSON,
            acknowledged=self._acknowledged,
            now=self.state.now(),
        )

    def _acknowledged(self, status: int, body: bytes) -> bool:
        if status != 200:
            return False
        try:
            reply = decode_json(body)
        except DecodeError:
            return False
        if str(reply.get("return_code", "")).lower() != "success":
            return False
        sign = reply.get("sign")
        if sign is None:
            return True
        text_fields = {k: v if isinstance(v, str) else str(v) for k, v in reply.items()}
        return self.signer.verify(text_fields, str(sign))


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
