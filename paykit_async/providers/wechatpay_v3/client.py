"""``WeChatPayV3Client``: refunds, refund query, close order and refund notifications over WeChat Pay
API v3 (JSON, SHA256-with-RSA signatures, AEAD_AES_256_GCM notifications)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import attrs

from ...client_base import BaseClient, ClientOptions, read_refund_reply
from ...errors import PaykitError, SignatureError, ValidationError
from ...notification_reply import NotificationReply
from ...pipeline.core import Exchange, Operation, Outcome, Pipeline
from ...refund_numbers import RefundNumberRule
from ...signing.rsa import KeySource, Sha256WithRsaSigner, load_public_key
from ...transport.wire import WireResponse
from ..wechatpay.requests import check_merchant_number
from .aead import AeadAes256Gcm
from .certificates import PlatformCertificates, parse_certificates
from .dialect import WeChatPayV3Dialect
from .errors import WeChatPayV3Error
from .models import CloseOrderResult, FundsFrom, RefundGoodsDetail, RefundNotification, RefundResult
from .notifications import NotificationParser, failure_reply, success_reply
from .parsing import parse_refund
from .requests import check_ids, close_order_fields, path_segment, refund_fields
from .verification import KeyRing, PlatformCertificate, UnknownSerial

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "WeChatPayV3Client"]

DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"
PROVIDER = "wechatpay-v3"

_REFUNDS_PATH = "/v3/refund/domestic/refunds"
_CERTIFICATES_PATH = "/v3/certificates"
_SERIAL = re.compile(r"[0-9A-Fa-f]{1,64}\Z")
_KEY_ID = re.compile(r"[0-9A-Za-z_\-]{1,64}\Z")


@attrs.frozen(kw_only=True)
class _V3Exchange(Exchange):
    """The exchange, with platform certificates ready first (when they are used at all).

    A reply naming a platform certificate the client has not downloaded yet is verified again
    after one (bounded) refresh — the same reply, never a re-sent request.
    """

    certificates: PlatformCertificates

    def __call__(self, operation: Operation) -> Coroutine[Any, Any, Outcome]:
        # Not a coroutine of its own: with nothing to download, the exchange runs as it is.
        if self.certificates.ready():
            return Exchange.__call__(self, operation)
        return self._when_ready(operation)

    async def _when_ready(self, operation: Operation) -> Outcome:
        await self.certificates.ensure_ready()
        return await Exchange.__call__(self, operation)

    async def decode_again(self, operation: Operation, response: WireResponse, error: PaykitError) -> Outcome:
        if isinstance(error, UnknownSerial) and await self.certificates.refresh_for(error.serial):
            return self.dialect.decode(operation, response)
        raise error

    def attempt_bound(self) -> float | None:
        """The transport's bound only when no certificate is ever downloaded (public-key mode):
        a download (before the send, or after a reply naming an unknown certificate) is a
        request of its own, so the retry layer keeps its deadline scope around those attempts."""
        return None if self.certificates.keys.use_certificates else Exchange.attempt_bound(self)


class WeChatPayV3Client(BaseClient):
    """A WeChat Pay API v3 merchant (or service provider with ``sub_mchid``) client.

    ``private_key`` is the merchant API private key (``apiclient_key.pem``: a path or PEM) and
    ``certificate_serial_no`` the serial number of the matching merchant API certificate;
    ``apiv3_key`` (32 characters) decrypts notifications and platform certificates. WeChat's
    replies and notifications are verified with the WeChat Pay public key
    (``wechatpay_public_key`` + ``wechatpay_public_key_id``, the only mode for merchants since
    2025) or, without one, with platform certificates downloaded from ``/v3/certificates`` on
    first use (never in the constructor) and refreshed before they expire or when an unknown
    serial appears. ``platform_certificates=True`` with a public key accepts both (a
    migration); the ``Wechatpay-Serial`` of each message picks the key.

    Refunds: ``out_refund_no`` is fixed before the first attempt (derived from
    ``idempotency_key`` with :func:`~paykit_async.derive_refund_no` when one is given, else
    random) and every retry re-sends the identical body; an outcome left unknown is settled by a
    verified refund query. No secret (private key, APIv3 key) ever appears in ``repr``, logs or
    error messages. ``wall_clock`` (epoch seconds) is for tests.
    """

    provider = PROVIDER
    refund_number_rule: ClassVar[RefundNumberRule] = RefundNumberRule(
        field="out_refund_no",
        max_length=64,
        provider=PROVIDER,
        identity=("out_trade_no", "transaction_id", "refund", "total", "out_refund_no"),
        orders=("out_trade_no", "transaction_id"),
    )

    def __init__(
        self,
        mchid: str,
        private_key: KeySource,
        certificate_serial_no: str,
        apiv3_key: str,
        *,
        wechatpay_public_key: KeySource | None = None,
        wechatpay_public_key_id: str | None = None,
        sub_mchid: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        platform_certificates: bool | None = None,
        wall_clock: Callable[[], float] | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        check_ids(mchid, sub_mchid)
        if not isinstance(certificate_serial_no, str) or not _SERIAL.match(certificate_serial_no):
            raise ValidationError(
                "must be the merchant API certificate's serial number (hex)", field="certificate_serial_no"
            )
        cipher = AeadAes256Gcm.for_apiv3_key(apiv3_key)
        signer = Sha256WithRsaSigner.from_pem(private_key, field="private_key")
        if (wechatpay_public_key is None) != (wechatpay_public_key_id is None):
            raise ValidationError(
                "wechatpay_public_key and wechatpay_public_key_id go together",
                field="wechatpay_public_key_id",
            )
        public_key = None
        if wechatpay_public_key is not None:
            if not isinstance(wechatpay_public_key_id, str) or not _KEY_ID.match(wechatpay_public_key_id):
                raise ValidationError(
                    "must be the public key's id (PUB_KEY_ID_…)", field="wechatpay_public_key_id"
                )
            public_key = load_public_key(wechatpay_public_key, field="wechatpay_public_key")
        use_certificates = (
            public_key is None if platform_certificates is None else bool(platform_certificates)
        )
        if public_key is None and not use_certificates:
            raise ValidationError(
                "without wechatpay_public_key, replies can only be verified with platform certificates",
                field="platform_certificates",
            )
        self.mchid = mchid
        self.sub_mchid = sub_mchid
        self.certificate_serial_no = certificate_serial_no.upper()
        self.wechatpay_public_key_id = wechatpay_public_key_id
        self._clock: Callable[[], float] = wall_clock if wall_clock is not None else time.time
        self._cipher = cipher
        self._keys = KeyRing(
            public_key=public_key, public_key_id=wechatpay_public_key_id, use_certificates=use_certificates
        )
        dialect = WeChatPayV3Dialect(
            mchid=mchid,
            serial_no=self.certificate_serial_no,
            signer=signer,
            keys=self._keys,
            wall_clock=self._clock,
        )
        super().__init__(dialect=dialect, base_url=base_url, **options)
        self._dialect = dialect
        self.certificates = PlatformCertificates(
            keys=self._keys, download=self._download_certificates, wall_clock=self._clock
        )
        self.pipeline = Pipeline(
            self.pipeline.middlewares,
            _V3Exchange(dialect=dialect, transport=self.transport, certificates=self.certificates),
        )
        self._notifications = NotificationParser(
            keys=self._keys, cipher=cipher, mchid=mchid, sub_mchid=sub_mchid, wall_clock=self._clock
        )
        partner = sub_mchid is not None
        self._merchant = mchid if sub_mchid is None else f"{mchid}/{sub_mchid}"
        self.refund_merchant = self._merchant
        self._refund_url = self._url(_REFUNDS_PATH)
        self._certificates_url = self._url(_CERTIFICATES_PATH)
        self._close_prefix = self._url(
            "/v3/pay/partner/transactions/out-trade-no/" if partner else "/v3/pay/transactions/out-trade-no/"
        )
        self._query_suffix = "" if sub_mchid is None else f"?sub_mchid={quote(sub_mchid, safe='')}"
        self._close_fields = close_order_fields(mchid=mchid, sub_mchid=sub_mchid)
        self._settle = self._settle_refund

    @property
    def mode(self) -> str:
        """``public-key``, ``platform-certificate`` or ``public-key+platform-certificate``."""
        modes = []
        if self._keys.public_key_id is not None:
            modes.append("public-key")
        if self._keys.use_certificates:
            modes.append("platform-certificate")
        return "+".join(modes)

    def __repr__(self) -> str:
        partner = f" sub_mchid={self.sub_mchid}" if self.sub_mchid is not None else ""
        return f"<WeChatPayV3Client mchid={self.mchid}{partner} mode={self.mode} base_url={self.base_url}>"

    # -- refunds ------------------------------------------------------------------------------

    async def refund(
        self,
        *,
        refund: int,
        total: int,
        out_trade_no: str | None = None,
        transaction_id: str | None = None,
        out_refund_no: str | None = None,
        reason: str | None = None,
        notify_url: str | None = None,
        funds_account: str | None = None,
        currency: str = "CNY",
        goods_detail: Sequence[RefundGoodsDetail | Mapping[str, object]] | None = None,
        idempotency_key: str | None = None,
        amount_from: Sequence[FundsFrom | Mapping[str, object]] | None = None,
    ) -> RefundResult:
        """Refund ``refund`` fen of the order paid ``total`` fen (``POST /v3/refund/domestic/refunds``).

        Give exactly one of ``out_trade_no`` and ``transaction_id``. The result's ``status``
        PROCESSING means *accepted*: the final state comes by :meth:`query_refund` or the refund
        notification. Raises :class:`~paykit_async.ProviderError` (a
        :class:`~.errors.WeChatPayV3Error`: ``.code``, ``.status_code``),
        :class:`~paykit_async.RefundOutcomeUnknown` (retry with ``.refund_no``, never a new
        number) or another :class:`~paykit_async.PaykitError`.
        """
        number = self._refund_number(out_refund_no, idempotency_key)
        fields = refund_fields(
            sub_mchid=self.sub_mchid,
            refund=refund,
            total=total,
            out_trade_no=out_trade_no,
            transaction_id=transaction_id,
            out_refund_no=number,
            reason=reason,
            notify_url=notify_url,
            funds_account=funds_account,
            currency=currency,
            goods_detail=goods_detail,
            amount_from=amount_from,
        )
        operation = Operation(
            provider=PROVIDER,
            name="refund",
            url=self._refund_url,
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
                request_id=outcome.request_id,
            ),
            refund_no=sent,
        )

    def _query_operation(self, out_refund_no: str) -> Operation:
        url = f"{self._refund_url}/{path_segment(out_refund_no)}{self._query_suffix}"
        return Operation(
            provider=PROVIDER, name="query_refund", url=url, fields={"out_refund_no": out_refund_no}
        )

    async def query_refund(self, out_refund_no: str) -> RefundResult:
        """The refund ``out_refund_no`` as WeChat has it (``GET /v3/refund/domestic/refunds/{no}``).

        An unknown refund raises :class:`~paykit_async.ProviderError` with code RESOURCE_NOT_EXISTS.
        """
        check_merchant_number(out_refund_no, "out_refund_no", 64)
        outcome = await self._call(self._query_operation(out_refund_no))
        return parse_refund(outcome.fields, out_refund_no=out_refund_no, request_id=outcome.request_id)

    async def close_order(self, out_trade_no: str) -> CloseOrderResult:
        """Close an unpaid order (``POST …/out-trade-no/{out_trade_no}/close`` → 204)."""
        check_merchant_number(out_trade_no, "out_trade_no", 32)
        url = f"{self._close_prefix}{path_segment(out_trade_no)}/close"
        outcome = await self._call(
            Operation(provider=PROVIDER, name="close_order", url=url, fields=self._close_fields)
        )
        return CloseOrderResult(
            out_trade_no=out_trade_no, status_code=outcome.status_code, request_id=outcome.request_id
        )

    async def _settle_refund(self, operation: Operation) -> Outcome | None:
        """Settle a refund whose outcome is unknown by querying its ``out_refund_no``.

        None only when WeChat *verifiably* answers that the refund does not exist (a signed
        RESOURCE_NOT_EXISTS); raises when it cannot tell.
        """
        refund_no = operation.refund_no or ""
        try:
            outcome = await self._call(self._query_operation(refund_no))
        except WeChatPayV3Error as error:
            if error.code == "RESOURCE_NOT_EXISTS" and error.signed:
                return None
            raise
        return Outcome(fields=outcome.fields, status_code=outcome.status_code, request_id=outcome.request_id)

    # -- platform certificates ----------------------------------------------------------------

    async def _download_certificates(self) -> list[PlatformCertificate]:
        operation = Operation(provider=PROVIDER, name="certificates", url=self._certificates_url, fields={})
        response = await self.transport.send(self._dialect.encode(operation))
        if response.status_code != 200:
            raise self._dialect.error(operation, response)
        return parse_certificates(response, cipher=self._cipher, keys=self._keys, now=self._clock())

    async def refresh_certificates(self) -> tuple[PlatformCertificate, ...]:
        """Download the platform certificates now; return those held (platform-certificate mode)."""
        if not self._keys.use_certificates:
            raise ValidationError(
                "this client verifies with the WeChat Pay public key; it uses no platform certificates",
                field="platform_certificates",
            )
        return await self.certificates.refresh()

    # -- notifications ------------------------------------------------------------------------

    def parse_refund_notification(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes
    ) -> RefundNotification:
        """Verify and decrypt a refund notification POSTed to ``notify_url`` (no I/O).

        ``headers`` are the request's headers (any mapping or ``(name, value)`` pairs; names are
        case-insensitive), ``body`` its raw bytes. Raises :class:`~paykit_async.SignatureError`
        when the signature, the decryption or the merchant check fails — including a certificate
        serial this client has not downloaded yet; :meth:`receive_refund_notification` refreshes
        certificates in that case — and :class:`~paykit_async.DecodeError` when the body is not a
        refund notification.
        """
        return self._notifications.parse(headers, body)

    async def receive_refund_notification(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes
    ) -> RefundNotification:
        """:meth:`parse_refund_notification`, refreshing platform certificates once for an unknown
        serial, then confirmed by a verified :meth:`query_refund`: the result's ``confirmed`` is
        the refund as WeChat has it now. A notification that contradicts the query (another
        refund id, order or amount) raises :class:`~paykit_async.SignatureError`."""
        await self.certificates.ensure_ready()
        note = await self.certificates.verified(lambda: self._notifications.parse(headers, body))
        confirmed = await self.query_refund(note.out_refund_no)
        _check_consistent(note, confirmed)
        return attrs.evolve(note, confirmed=confirmed)

    @staticmethod
    def notification_success_reply() -> NotificationReply:
        """HTTP 204, no body: WeChat stops redelivering."""
        return success_reply()

    @staticmethod
    def notification_failure_reply(message: str = "FAIL") -> NotificationReply:
        """HTTP 500 with ``{"code": "FAIL", "message": …}``: WeChat redelivers later."""
        return failure_reply(message)


def _check_consistent(note: RefundNotification, query: RefundResult) -> None:
    pairs: list[tuple[str, object, object]] = [
        ("refund_id", note.refund_id, query.refund_id),
        ("out_trade_no", note.out_trade_no, query.out_trade_no),
        ("transaction_id", note.transaction_id, query.transaction_id),
    ]
    if note.amount is not None and query.amount is not None:
        pairs.append(("amount.refund", note.amount.refund, query.amount.refund))
        pairs.append(("amount.total", note.amount.total, query.amount.total))
    for name, noted, queried in pairs:
        if noted is not None and queried is not None and noted != queried:
            raise SignatureError(f"the notification's {name} contradicts the verified refund query")
