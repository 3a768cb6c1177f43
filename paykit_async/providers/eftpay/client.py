"""``EftPayClient``: refunds, refund applications, queries and notifications for eftPay VMP."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from ...client_base import BaseClient, ClientOptions, read_refund_reply
from ...errors import DecodeError, ValidationError
from ...notification_reply import NotificationReply
from ...pipeline.core import Operation, Outcome
from ...refund_numbers import RefundNumberRule
from .amounts import format_amount
from .dialect import EftPayDialect, EftPayOutcome, ReplyVerifier, SignatureRule, utc_now
from .fields import (
    PAYMENT_TYPES,
    QUERY_PATH,
    REFUND_SERVICES,
    SERVICE_APPLY_REFUND,
    SERVICE_PATH,
    SERVICE_REFUND_STATUS,
    PaymentType,
    PayType,
    check_identifier,
    check_notify_url,
    check_pay_type,
    check_text,
)
from .models import QueryResult, RefundNotification, RefundResult, RefundStatusResult, structure_reply
from .notifications import build_notification_reply, parse_notification

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["EftPayClient"]

Amount = Decimal | int | str
"""An amount as the caller may give it: ``Decimal``, ``int`` or a digit string — never ``float``."""

_REFUND_NO_LENGTH = 28
_JSON_HEADERS = {"content-type": "application/json; charset=utf-8"}


class EftPayClient(BaseClient):
    """An asyncio-native client for eftPay's VMP JSAPI refund services (WeChat Pay and Alipay).

    ``user_confirm_key`` is the merchant key id eftPay issued (at most 12 characters) and
    ``secret`` the signing secret (never logged or shown). ``base_url`` is required because the
    production domain is per merchant; the test domain is ``https://vmp.eftpay.com.cn/VMP``.
    ``tid`` is a default terminal number sent with refunds. eftPay documents no transient
    ``return_status`` codes, so no refusal is retried unless listed in ``retryable_codes`` (retries
    reuse the refund number, which eftPay treats as the idempotency key).
    """

    provider = "eftpay"
    refund_number_rule: ClassVar[RefundNumberRule] = RefundNumberRule(
        field="refund_no",
        max_length=_REFUND_NO_LENGTH,
        provider="eftpay",
        identity=("out_trade_no", "transaction_amount", "total_fee", "refund_no"),
        amounts=("transaction_amount", "total_fee"),
        orders=("out_trade_no",),
    )

    def __init__(
        self,
        user_confirm_key: str,
        secret: str,
        *,
        base_url: str,
        tid: str | None = None,
        retryable_codes: Iterable[str] = (),
        **options: Unpack[ClientOptions],
    ) -> None:
        self.user_confirm_key = check_identifier(user_confirm_key, field="user_confirm_key", max_chars=12)
        if not isinstance(secret, str) or not secret:
            raise ValidationError("must be a non-empty string", field="secret")
        self.tid = None if tid is None else check_identifier(tid, field="tid", max_chars=20)
        self.refund_merchant = self.user_confirm_key
        transient = frozenset(retryable_codes)
        if any(not isinstance(code, str) or not code or code == "00" for code in transient):
            raise ValidationError(
                "must be non-empty return_status codes other than '00'", field="retryable_codes"
            )
        self._verifier = ReplyVerifier(secret=secret)
        dialect = EftPayDialect(verifier=self._verifier, retryable_codes=transient)
        super().__init__(dialect=dialect, base_url=base_url, **options)
        self._service_url = self._url(SERVICE_PATH)
        self._query_url = self._url(QUERY_PATH)

    def __repr__(self) -> str:
        return f"<EftPayClient user_confirm_key={self.user_confirm_key!r} base_url={self.base_url!r}>"

    async def refund(
        self,
        *,
        paytype: PayType,
        payment_type: PaymentType,
        out_trade_no: str,
        transaction_amount: Amount,
        total_fee: Amount,
        refund_no: str | None = None,
        tid: str | None = None,
        refund_desc: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Refund ``transaction_amount`` of the order ``out_trade_no`` (originally ``total_fee``).

        The service (``service.wechat.jsapi.Refund`` or ``service.alipay.jsapi.Refund``) follows
        ``paytype``. ``refund_no`` is generated when omitted — derived from ``idempotency_key``
        when one is given (:meth:`derived_refund_no`) — and is reused by every retry; an outcome
        left unknown is settled by querying that refund. The result means eftPay
        accepted the refund: check ``trade_status`` for where it stands.
        """
        check_pay_type(paytype, payment_type)
        fields = self._refund_fields(
            REFUND_SERVICES[paytype],
            paytype=paytype,
            payment_type=payment_type,
            out_trade_no=out_trade_no,
            transaction_amount=transaction_amount,
            total_fee=total_fee,
            refund_no=self._refund_number(refund_no, idempotency_key),
            tid=tid,
            refund_desc=refund_desc,
        )
        return await self._send_refund("refund", fields, idempotency_key, generated=refund_no is None)

    async def apply_refund(
        self,
        *,
        paytype: PayType,
        payment_type: PaymentType,
        out_trade_no: str,
        transaction_amount: Amount,
        total_fee: Amount,
        notify_url: str,
        refund_no: str | None = None,
        tid: str | None = None,
        refund_desc: str | None = None,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Apply for an asynchronous refund (``service.wechat.jsapi.ApplyRefund``).

        eftPay answers ``APPLY_SUCCESS`` and later POSTs the result to ``notify_url`` (read it
        with :meth:`parse_notification`). eftPay documents this service for WeChat Pay only, so
        ``paytype`` must be ``"WeChat"``; use :meth:`refund` for Alipay.
        """
        check_pay_type(paytype, payment_type)
        if paytype != "WeChat":
            raise ValidationError(
                "eftPay documents refund applications for WeChat only; use refund() for Alipay",
                field="paytype",
            )
        fields = self._refund_fields(
            SERVICE_APPLY_REFUND,
            paytype=paytype,
            payment_type=payment_type,
            out_trade_no=out_trade_no,
            transaction_amount=transaction_amount,
            total_fee=total_fee,
            refund_no=self._refund_number(refund_no, idempotency_key),
            tid=tid,
            refund_desc=refund_desc,
        )
        fields["notify_url"] = check_notify_url(notify_url)
        return await self._send_refund("apply_refund", fields, idempotency_key, generated=refund_no is None)

    async def query(
        self,
        *,
        out_trade_no: str,
        paytype: PayType,
        payment_type: PaymentType,
        refund_no: str | None = None,
    ) -> QueryResult:
        """Query an order (``QRcodeTradeQuery.do``, ``querytype=OUT_TRADE``): the sale's status,
        or with ``refund_no`` that refund's status (``trade_type`` ``REFUND``)."""
        check_pay_type(paytype, payment_type)
        operation = self._query_operation(out_trade_no, paytype, payment_type, refund_no)
        outcome = await self._call(operation)
        _check_echo(outcome.fields, "refund_no", refund_no)
        return structure_reply(QueryResult, outcome.fields, signature_rule=_rule(outcome))

    async def refund_status(
        self,
        *,
        refund_no: str,
        out_trade_no: str | None = None,
        paytype: PayType | None = None,
        payment_type: PaymentType | None = None,
    ) -> RefundStatusResult:
        """Ask ``service.unified.RefundStatusQuery`` for ``refund_status`` (SUCCESS, PROCESSING, FAIL).

        eftPay does not publish this service's request fields; ``refund_no`` (with
        ``user_confirm_key``) identifies the refund and the order fields are sent when given.
        """
        fields = {
            "service": SERVICE_REFUND_STATUS,
            "user_confirm_key": self.user_confirm_key,
            "refund_no": check_identifier(refund_no, field="refund_no", max_chars=28),
        }
        if out_trade_no is not None:
            fields["out_trade_no"] = check_identifier(out_trade_no, field="out_trade_no", max_chars=28)
        if paytype is not None or payment_type is not None:
            _check_optional_pay_type(paytype, payment_type)
            if paytype is not None:
                fields["paytype"] = paytype
            if payment_type is not None:
                fields["payment_type"] = payment_type
        operation = Operation(
            provider=self.provider, name="refund_status", url=self._service_url, fields=fields
        )
        outcome = await self._call(operation)
        _check_echo(outcome.fields, "refund_no", refund_no)
        return structure_reply(RefundStatusResult, outcome.fields, signature_rule=_rule(outcome))

    def parse_notification(self, body: bytes | str | Mapping[str, Any]) -> RefundNotification:
        """Verify a notification POSTed to ``notify_url`` and return it typed.

        ``body`` is the raw request body (``bytes``, preferred), the same as ``str``, or the JSON
        object your framework parsed (a mapping; a float in it is refused as inexact — pass the
        bytes). Raises :class:`SignatureError` for a missing or wrong ``sign`` or a signed string
        that reads as another field set or that names another ``user_confirm_key`` than this
        client's, and :class:`DecodeError` for anything that is not a JSON object. Redeliveries
        happen: handle by ``refund_no``.
        """
        return parse_notification(self._verifier, body, user_confirm_key=self.user_confirm_key)

    def notification_reply(self, *, now: datetime | None = None) -> bytes:
        """The signed JSON body to answer a notification with, telling eftPay to stop resending."""
        return build_notification_reply(self._verifier, utc_now() if now is None else now)

    def notification_success_reply(self, *, now: datetime | None = None) -> NotificationReply:
        """:meth:`notification_reply` as a :class:`NotificationReply` (HTTP 200, signed JSON)."""
        return NotificationReply(headers=_JSON_HEADERS, body=self.notification_reply(now=now))

    @staticmethod
    def notification_failure_reply(message: str = "fail") -> NotificationReply:
        """A reply that makes eftPay redeliver later: HTTP 500 ``{"return_code": "fail"}``.

        ``message`` is not sent, so a forger learns nothing about what failed."""
        del message
        return NotificationReply(status_code=500, headers=_JSON_HEADERS, body=b'{"return_code":"fail"}')

    def _refund_fields(
        self,
        service: str,
        *,
        paytype: str,
        payment_type: str,
        out_trade_no: str,
        transaction_amount: Amount,
        total_fee: Amount,
        refund_no: str,
        tid: str | None,
        refund_desc: str | None,
    ) -> dict[str, str]:
        refund_text = format_amount(transaction_amount, field="transaction_amount")
        total_text = format_amount(total_fee, field="total_fee")
        if Decimal(refund_text) > Decimal(total_text):
            raise ValidationError(
                f"refund {refund_text} exceeds the order total {total_text}", field="transaction_amount"
            )
        fields = {
            "service": service,
            "user_confirm_key": self.user_confirm_key,
            "transaction_amount": refund_text,
            "total_fee": total_text,
            "out_trade_no": check_identifier(out_trade_no, field="out_trade_no", max_chars=28),
            "paytype": paytype,
            "payment_type": payment_type,
            "refund_no": check_identifier(refund_no, field="refund_no", max_chars=_REFUND_NO_LENGTH),
        }
        terminal = self.tid if tid is None else check_identifier(tid, field="tid", max_chars=20)
        if terminal is not None:
            fields["tid"] = terminal
        if refund_desc is not None:
            fields["refund_desc"] = check_text(refund_desc, field="refund_desc", max_chars=256)
        return fields

    async def _send_refund(
        self, name: str, fields: dict[str, str], idempotency_key: str | None, *, generated: bool
    ) -> RefundResult:
        operation = Operation(
            provider=self.provider,
            name=name,
            url=self._service_url,
            fields=fields,
            refund_no_field="refund_no",
            refund_no_generated=generated,
            idempotency_key=idempotency_key,
            settle=self._settle_refund,
        )
        outcome = await self._call(operation)
        # The number sent: an idempotency store may have resumed an earlier one than the one
        # minted here (the reply echoes it too, verified against what was sent). A verified reply
        # that cannot be typed is RefundOutcomeUnknown carrying the number (never a bare
        # DecodeError that would leave a caller without the number to retry or query with).
        sent = outcome.refund_no or operation.refund_no
        return read_refund_reply(
            operation,
            lambda: structure_reply(
                RefundResult,
                outcome.fields,
                refund_no=outcome.fields.get("refund_no") or sent,
                signature_rule=_rule(outcome),
                attempts=outcome.attempts,
                settled_by_query=outcome.settled_by_query,
                replayed=outcome.replayed,
            ),
            refund_no=sent,
        )

    async def _settle_refund(self, operation: Operation) -> Outcome | None:
        """Settle an unknown refund outcome with a verified query of the same refund number.

        Found → that query's outcome (the refund result is built from its fields). eftPay
        documents no "no such refund" code, so this never answers None: a refund the query
        cannot confirm raises, and the caller gets ``RefundOutcomeUnknown`` to retry with the
        same ``refund_no``.
        """
        fields = operation.fields
        refund_no = operation.refund_no
        query = self._query_operation(
            fields["out_trade_no"], fields["paytype"], fields["payment_type"], refund_no
        )
        outcome = await self._call(query)
        _check_echo(outcome.fields, "refund_no", refund_no)
        trade_type = outcome.fields.get("trade_type")
        if trade_type and trade_type != "REFUND":
            raise DecodeError(
                f"the query for refund {refund_no} answered trade_type {trade_type!r}", after_send=True
            )
        if not trade_type and outcome.fields.get("refund_no") != refund_no:
            # Neither says the reply is about this refund (the spec always sends trade_type): it
            # may describe the sale, and cannot settle the refund either way.
            raise DecodeError(
                f"the query for refund {refund_no} answered neither trade_type REFUND nor the refund_no",
                after_send=True,
            )
        return outcome

    def _query_operation(
        self, out_trade_no: str, paytype: str, payment_type: str, refund_no: str | None
    ) -> Operation:
        fields = {
            "querytype": "OUT_TRADE",
            "user_confirm_key": self.user_confirm_key,
            "out_trade_no": check_identifier(out_trade_no, field="out_trade_no", max_chars=28),
            "paytype": paytype,
            "payment_type": payment_type,
        }
        if refund_no is not None:
            fields["refund_no"] = check_identifier(refund_no, field="refund_no", max_chars=28)
        return Operation(provider=self.provider, name="query", url=self._query_url, fields=fields)


def _rule(outcome: Outcome) -> SignatureRule | None:
    """The signature rule an outcome was verified with (None when replayed from a store)."""
    return outcome.signature_rule if isinstance(outcome, EftPayOutcome) else None


def _check_echo(fields: Any, name: str, sent: str | None) -> None:
    received = fields.get(name)
    if sent is not None and received and received != sent:
        raise DecodeError(f"eftPay answered for {name} {received!r}, not {sent!r}", after_send=True)


def _check_optional_pay_type(paytype: str | None, payment_type: str | None) -> None:
    if paytype is not None and payment_type is not None:
        check_pay_type(paytype, payment_type)
    elif paytype is not None:
        if paytype not in PAYMENT_TYPES:
            raise ValidationError(f"must be 'WeChat' or 'Alipay', got {paytype!r}", field="paytype")
    elif not any(payment_type in wallets for wallets in PAYMENT_TYPES.values()):
        raise ValidationError(f"not a known wallet: {payment_type!r}", field="payment_type")
