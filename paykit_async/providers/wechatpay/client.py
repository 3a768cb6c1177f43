"""``WeChatPayClient``: refunds (incl. single-product refundv2), refund query, close order and
refund notifications over WeChat Pay API v2 (XML, MD5 or HMAC-SHA256 signatures, mutual TLS)."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ...client_base import BaseClient, ClientOptions, read_refund_reply
from ...errors import DecodeError, ProviderError, SignatureError, ValidationError
from ...notification_reply import NotificationReply
from ...pipeline.core import Operation, Outcome
from ...refund_numbers import RefundNumberRule
from ...transport.tls import ClientCertificate, is_loopback_url
from .dialect import SIGN_TYPES, WeChatPayDialect
from .failover import BACKUP_BASE_URL, FailoverMiddleware
from .models import CloseOrderResult, RefundDetail, RefundNotification, RefundQueryResult, RefundResult
from .notifications import (
    NotificationDecryptor,
    confirm_refund_notification,
    notification_reply,
    notification_reply_of,
)
from .parsing import (
    indexed_name,
    parse_close_order,
    parse_refund,
    parse_refund_query,
    query_record_as_refund_fields,
)
from .requests import check_merchant_id, close_order_fields, refund_fields, refund_query_fields

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["BACKUP_BASE_URL", "DEFAULT_BASE_URL", "WeChatPayClient"]

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"

_REFUND_PATH = "/secapi/pay/refund"
_REFUNDV2_PATH = "/secapi/pay/refundv2"
_QUERY_PATH = "/pay/refundquery"
_CLOSE_PATH = "/pay/closeorder"


class WeChatPayClient(BaseClient):
    """A WeChat Pay v2 merchant (or service provider with ``sub_mch_id``) client.

    Refunds need the merchant API certificate: ``cert=ClientCertificate.from_pem(...)`` or
    ``ClientCertificate.from_pkcs12(...)``, or simply the path of ``apiclient_cert.p12``, which is
    opened with the ``mch_id`` as its password (WeChat's default). Without it ``refund`` raises
    :class:`ValidationError` before any I/O. A plain ``http://`` ``base_url`` is for a simulator
    only: refunds go to it only on a loopback host (127.0.0.0/8, ::1, localhost) or through an
    in-process transport, and are refused before any I/O otherwise. ``out_refund_no`` is fixed
    before the first attempt and every retry re-sends it with identical amounts; a refund whose
    reply was lost is settled by a refund query on that number. With ``backup_base_url`` (WeChat's is
    :data:`BACKUP_BASE_URL`) an attempt whose connection to ``base_url`` failed before anything
    was sent is re-sent there.

    The API key is used for signing and notification decryption only; it never appears in
    ``repr``, logs or error messages.
    """

    provider = "wechatpay"
    refund_number_rule: ClassVar[RefundNumberRule] = RefundNumberRule(
        field="out_refund_no",
        max_length=64,
        provider="wechatpay",
        identity=("out_trade_no", "transaction_id", "total_fee", "refund_fee", "out_refund_no"),
        orders=("out_trade_no", "transaction_id"),
    )

    def __init__(
        self,
        appid: str,
        mch_id: str,
        api_key: str,
        *,
        sign_type: str = "MD5",
        cert: ClientCertificate | str | os.PathLike[str] | None = None,
        sub_appid: str | None = None,
        sub_mch_id: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        backup_base_url: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        check_merchant_id(appid, "appid")
        check_merchant_id(mch_id, "mch_id")
        if sub_appid is not None:
            check_merchant_id(sub_appid, "sub_appid")
        if sub_mch_id is not None:
            check_merchant_id(sub_mch_id, "sub_mch_id")
        elif sub_appid is not None:
            raise ValidationError("sub_appid needs sub_mch_id (service-provider mode)", field="sub_appid")
        if not isinstance(api_key, str) or not api_key:
            raise ValidationError("must be the non-empty v2 API key", field="api_key")
        if sign_type not in SIGN_TYPES:
            raise ValidationError(f"must be one of {', '.join(SIGN_TYPES)}", field="sign_type")
        if isinstance(cert, str | os.PathLike):
            # WeChat's apiclient_cert.p12 is protected by the merchant id.
            try:
                cert = ClientCertificate.from_pkcs12(cert, mch_id)
            except ValidationError as error:
                raise ValidationError(
                    f"{error.message} (a .p12 path opens with the mch_id)", field="cert"
                ) from None
        if cert is not None and not isinstance(cert, ClientCertificate):
            raise ValidationError(
                "must be a ClientCertificate (from_pem / from_pkcs12) or the path of apiclient_cert.p12",
                field="cert",
            )
        middleware = list(options.get("middleware", ()))
        if backup_base_url is not None:
            if not backup_base_url.startswith("https://"):
                raise ValidationError("must start with https://", field="backup_base_url")
            middleware.append(FailoverMiddleware(primary_base_url=base_url, backup_base_url=backup_base_url))
        self.appid = appid
        self.mch_id = mch_id
        self.sub_appid = sub_appid
        self.sub_mch_id = sub_mch_id
        self.sign_type = sign_type
        self.backup_base_url = backup_base_url
        self.refund_merchant = mch_id if sub_mch_id is None else f"{mch_id}/{sub_mch_id}"
        dialect = WeChatPayDialect(api_key=api_key, sign_type=sign_type)
        options["middleware"] = middleware
        super().__init__(dialect=dialect, base_url=base_url, cert=cert, **options)
        self._notifications = NotificationDecryptor.for_api_key(
            api_key, appid=appid, mch_id=mch_id, sub_mch_id=sub_mch_id, sub_appid=sub_appid
        )
        base = {"appid": appid, "mch_id": mch_id}
        if sub_appid is not None:
            base["sub_appid"] = sub_appid
        if sub_mch_id is not None:
            base["sub_mch_id"] = sub_mch_id
        self._base_fields: Mapping[str, str] = base
        self._refund_url = self._url(_REFUND_PATH)
        self._refundv2_url = self._url(_REFUNDV2_PATH)
        self._query_url = self._url(_QUERY_PATH)
        self._close_url = self._url(_CLOSE_PATH)
        self._refund_refusal = _refund_refusal(self.base_url, cert, self.transport)
        self._settle = self._settle_refund

    def __repr__(self) -> str:
        return (
            f"<WeChatPayClient appid={self.appid} mch_id={self.mch_id} sign_type={self.sign_type} "
            f"base_url={self.base_url}>"
        )

    async def refund(
        self,
        *,
        total_fee: int,
        refund_fee: int,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        out_refund_no: str | None = None,
        refund_fee_type: str | None = None,
        refund_desc: str | None = None,
        refund_account: str | None = None,
        notify_url: str | None = None,
        detail: RefundDetail | Mapping[str, object] | None = None,
        idempotency_key: str | None = None,
    ) -> RefundResult:
        """Refund ``refund_fee`` fen of an order paid ``total_fee`` fen.

        With ``detail`` (single-product refund) the request goes to ``/secapi/pay/refundv2``,
        otherwise to ``/secapi/pay/refund``. ``out_refund_no`` is generated when omitted and is
        on the result. A successful result means *accepted*; the final state arrives by refund
        query or notification. Raises :class:`ProviderError` (``.code`` = ``err_code``),
        :class:`RefundOutcomeUnknown` (retry with ``.refund_no``), or another
        :class:`PaykitError`.
        """
        if self._refund_refusal is not None:
            # A fresh copy per call: re-raising one instance would grow its traceback every time.
            raise copy.copy(self._refund_refusal)
        number = self._refund_number(out_refund_no, idempotency_key)
        fields = refund_fields(
            self._base_fields,
            total_fee=total_fee,
            refund_fee=refund_fee,
            out_trade_no=out_trade_no,
            transaction_id=transaction_id,
            out_refund_no=number,
            refund_fee_type=refund_fee_type,
            refund_desc=refund_desc,
            refund_account=refund_account,
            notify_url=notify_url,
            detail=detail,
        )
        operation = Operation(
            provider="wechatpay",
            name="refund",
            url=self._refund_url if detail is None else self._refundv2_url,
            fields=fields,
            refund_no_field="out_refund_no",
            refund_no_generated=out_refund_no is None,
            idempotency_key=idempotency_key,
            settle=self._settle,
        )
        outcome = await self._call(operation)
        # The number sent: an idempotency store may have resumed an earlier one than ``number``.
        sent = outcome.refund_no or number
        return read_refund_reply(
            operation,
            lambda: parse_refund(
                outcome.fields,
                out_refund_no=sent,
                attempts=outcome.attempts,
                settled_by_query=outcome.settled_by_query,
                replayed=outcome.replayed,
            ),
            refund_no=sent,
        )

    async def query_refund(
        self,
        *,
        out_refund_no: str | None = None,
        refund_id: str | None = None,
        transaction_id: str | None = None,
        out_trade_no: str | None = None,
        offset: int | None = None,
    ) -> RefundQueryResult:
        """Query the refunds of an order by exactly one identifier (``offset`` pages orders with
        many refunds). An unknown refund raises :class:`ProviderError` with code REFUNDNOTEXIST."""
        fields = refund_query_fields(
            self._base_fields,
            out_refund_no=out_refund_no,
            refund_id=refund_id,
            transaction_id=transaction_id,
            out_trade_no=out_trade_no,
            offset=offset,
        )
        outcome = await self._call(
            Operation(provider="wechatpay", name="query_refund", url=self._query_url, fields=fields)
        )
        return parse_refund_query(outcome.fields)

    async def close_order(self, *, out_trade_no: str) -> CloseOrderResult:
        """Close an unpaid order (at least 5 minutes after it was created). Refusals such as
        ORDERPAID and ORDERCLOSED raise :class:`ProviderError`."""
        fields = close_order_fields(self._base_fields, out_trade_no=out_trade_no)
        outcome = await self._call(
            Operation(provider="wechatpay", name="close_order", url=self._close_url, fields=fields)
        )
        return parse_close_order(outcome.fields)

    def parse_refund_notification(self, body: bytes | str | Mapping[str, str]) -> RefundNotification:
        """Decrypt and check a refund notification POSTed to ``notify_url`` — UNCONFIRMED.

        WeChat's v2 refund notifications are **not authenticated by the protocol**: ``req_info``
        is AES-256-ECB without a MAC and the envelope is unsigned, so blocks of two genuine
        notifications can be spliced into a third that decrypts cleanly (say, your refund's number
        with another refund's REFUNDCLOSE). Act on :meth:`receive_refund_notification`, which
        confirms the notification with a refund query; use this only to look at what arrived.

        ``body`` is the raw body (bytes, preferred), the same as ``str``, or the envelope's fields
        as a mapping. Raises :class:`SignatureError` when ``req_info`` does not decrypt under this
        merchant's key or the notification names another merchant (``appid``, ``mch_id``, and
        ``sub_mch_id``/``sub_appid`` when configured), :class:`DecodeError` when the body is not a
        notification. The result has ``confirmed`` False.
        """
        return self._notifications.parse(body)

    async def receive_refund_notification(self, body: bytes | str | Mapping[str, str]) -> RefundNotification:
        """Decrypt, check and CONFIRM a refund notification: the method to act on.

        Does what :meth:`parse_refund_notification` does, then queries the refund by its
        ``out_refund_no`` (a signed, verified reply) and compares: refund id, amounts, status,
        order numbers and totals must agree, or :class:`SignatureError` is raised (a spliced or
        replayed notification, or one the provider does not know). The returned record has
        ``confirmed`` True and its fields come from the provider's query. Query failures
        (network, provider errors) propagate: answer WeChat with
        :meth:`notification_failure_reply` and it will redeliver later. Handle the result
        idempotently by ``out_refund_no``; a certificate is not needed.
        """
        notification = self._notifications.parse(body)
        refund_no = notification.out_refund_no
        try:
            query = await self.query_refund(out_refund_no=refund_no)
        except ValidationError:
            query = None  # not even a possible refund number
        except ProviderError as error:
            if error.code != "REFUNDNOTEXIST":
                raise
            query = None
        if query is None:
            raise SignatureError(f"the provider has no refund {refund_no!r}: not trusting the notification")
        return confirm_refund_notification(notification, query)

    notification_reply = staticmethod(notification_reply)

    @staticmethod
    def notification_success_reply() -> NotificationReply:
        """The reply that stops WeChat redelivering: HTTP 200, ``return_code`` SUCCESS."""
        return notification_reply_of(True)

    @staticmethod
    def notification_failure_reply(message: str = "FAIL") -> NotificationReply:
        """A reply that makes WeChat redeliver later: HTTP 200, ``return_code`` FAIL, ``message``."""
        return notification_reply_of(False, message)

    async def _settle_refund(self, operation: Operation) -> Outcome | None:
        """Settle a refund whose outcome is unknown by querying its ``out_refund_no``.

        Returns an outcome shaped like a refund reply (plus ``refund_status``) when WeChat lists
        the refund, None when it answers REFUNDNOTEXIST; raises otherwise.
        """
        refund_no = operation.refund_no or ""
        fields = dict(self._base_fields)
        fields["out_refund_no"] = refund_no
        query = Operation(provider="wechatpay", name="query_refund", url=self._query_url, fields=fields)
        try:
            outcome = await self._call(query)
        except ProviderError as error:
            if error.code == "REFUNDNOTEXIST":
                return None
            raise
        index = _record_index(outcome.fields, refund_no)
        if index is None:
            raise DecodeError(f"the refund query for {refund_no} did not list it")
        record = query_record_as_refund_fields(outcome.fields, index)
        return Outcome(fields=record, status_code=outcome.status_code)


def _refund_refusal(
    base_url: str, cert: ClientCertificate | None, transport: object
) -> ValidationError | None:
    """Why refunds cannot be sent with this configuration (checked before any I/O), or None.

    Over ``https://`` a refund needs the merchant certificate. A plain ``http://`` base URL
    carries no TLS at all, so it is allowed only for a simulator on this machine (a loopback
    host) or in process (a mock or ASGI transport): never to a remote host, certificate or not.
    """
    if base_url.startswith("http://"):
        if is_loopback_url(base_url) or getattr(transport, "in_process", False) is True:
            return None
        return ValidationError(
            "refunds are never sent over plain http:// to a remote host; use https:// (plain "
            "http:// is for a simulator on this machine: 127.0.0.1, ::1, localhost, or in process)",
            field="base_url",
        )
    if cert is None:
        return ValidationError(
            "refunds need the merchant API certificate: pass "
            "cert='apiclient_cert.p12' (password: the mch_id) or a ClientCertificate",
            field="cert",
        )
    return None


def _record_index(fields: Mapping[str, str], out_refund_no: str) -> int | None:
    """The ``$n`` of the refund record ``out_refund_no_$n == out_refund_no`` of a query reply."""
    for name, value in fields.items():
        if value == out_refund_no:
            indexed = indexed_name(name)
            if indexed is not None and indexed[0] == "out_refund_no" and indexed[2] is None:
                return indexed[1]
    return None
