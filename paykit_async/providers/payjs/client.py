"""``PayJSClient``: refund, close, reverse and check PAYJS orders; verify payment notifications."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from typing_extensions import Unpack

from ...client_base import BaseClient, ClientOptions
from ...errors import DecodeError, RefundOutcomeUnknown
from ...pipeline.core import Operation, Outcome
from ...refund_numbers import RefundNumberRule
from .dialect import PayJSDialect, make_signer
from .errors import RefundNotProven
from .models import CheckResult, CloseResult, PaymentNotification, RefundResult, ReverseResult, structure
from .notifications import NotificationReply, failure_reply, parse_payment_notification, success_reply
from .validation import check_credentials, check_order_id

__all__ = ["PayJSClient"]

_PROVIDER = "payjs"
_MoneyResult = TypeVar("_MoneyResult", RefundResult, ReverseResult)


class PayJSClient(BaseClient):
    """An async PAYJS client (``https://payjs.cn/api/...``); use it with ``async with``.

    Every reply is verified with ``key`` before a result is returned. A PAYJS refund is always the
    full refund of one order and has no merchant refund number, so ``payjs_order_id`` is the
    refund's identity: retries and the idempotency store key on it, and sending the refund of the
    same order again can never refund twice.

    When a refund's outcome stays unknown (timeout, 5xx, an unsigned "success"), the retry layer
    settles it with a verified ``check``. PAYJS documents only ``status`` 0 (unpaid) / 1 (paid)
    for ``check``, which proves nothing about refunds; only a *signed* check reply carrying
    ``refund=1`` (the marker newer PAYJS replies use for "already refunded") is accepted as proof.
    Otherwise the caller gets ``RefundOutcomeUnknown`` (``refund_no`` = the order number): send
    the same refund again later, which is safe.
    """

    provider = _PROVIDER
    refund_number_rule: ClassVar[RefundNumberRule] = RefundNumberRule(
        field="payjs_order_id",
        generated=False,
        provider="payjs",
        identity=("payjs_order_id",),
        orders=("payjs_order_id",),
    )

    def __init__(
        self,
        mchid: str,
        key: str,
        *,
        base_url: str = "https://payjs.cn",
        **options: Unpack[ClientOptions],
    ) -> None:
        mchid, key = check_credentials(mchid, key)
        self.mchid = mchid
        self.refund_merchant = mchid
        self._signer = make_signer(key)
        super().__init__(dialect=PayJSDialect(signer=self._signer), base_url=base_url, **options)

    def __repr__(self) -> str:
        return f"<PayJSClient mchid={self.mchid!r} base_url={self.base_url!r}>"

    async def refund(self, *, payjs_order_id: str, idempotency_key: str | None = None) -> RefundResult:
        """Refund the whole of a paid order.

        With an ``idempotency_store`` on the client, ``idempotency_key`` records the outcome and
        replays it to later calls with the same key; the order is the refund's identity, so the
        same key with another order raises ``IdempotencyConflict``.

        PAYJS refunds only while the merchant's unsettled balance exceeds the amount. A refusal
        raises ``ProviderError`` (code ``"FAIL"``, PAYJS's text in ``message``); an outcome that
        cannot be verified raises ``RefundOutcomeUnknown``.
        """
        operation = self._operation(
            "refund", payjs_order_id, money_moving=True, idempotency_key=idempotency_key
        )
        outcome = await self._call(operation)
        return _money_result(RefundResult, outcome, operation)

    async def close(self, *, payjs_order_id: str) -> CloseResult:
        """Close an unpaid order less than 30 days old."""
        operation = self._operation("close", payjs_order_id)
        outcome = await self._call(operation)
        return structure(CloseResult, outcome.fields, **_order_id_if_missing(outcome, operation))

    async def reverse(self, *, payjs_order_id: str) -> ReverseResult:
        """Reverse a micropay/facepay order less than 7 days old: refunded if paid, else closed.

        A reverse may move money, so an unknown outcome is settled like a refund's.
        """
        operation = self._operation("reverse", payjs_order_id, money_moving=True)
        outcome = await self._call(operation)
        return _money_result(ReverseResult, outcome, operation)

    async def check(self, *, payjs_order_id: str) -> CheckResult:
        """Query an order: ``status`` 0 unpaid, 1 paid. PAYJS may block IPs that poll this hard."""
        outcome = await self._call(self._operation("check", payjs_order_id))
        return structure(CheckResult, outcome.fields)

    def parse_notification(self, body: bytes | str | Mapping[str, Any]) -> PaymentNotification:
        """Verify and type a payment notification POSTed to your notify_url.

        ``body`` is the raw request body (``bytes``, preferred), the same as ``str``, or the form
        your framework parsed (``await request.form()``); anything else raises ``DecodeError``.
        Raises ``SignatureError`` when it is unsigned, tampered, re-split (a signed value holds
        ``&name=``) or for another merchant. Answer PAYJS with :meth:`notification_success_reply`
        once you have recorded it.
        """
        return parse_payment_notification(body, signer=self._signer, mchid=self.mchid)

    @staticmethod
    def notification_success_reply() -> NotificationReply:
        """The reply that stops PAYJS redelivering: HTTP 200, body ``success``."""
        return success_reply()

    @staticmethod
    def notification_failure_reply(message: str = "fail") -> NotificationReply:
        """A reply that makes PAYJS redeliver later (HTTP 500). ``message`` is not sent: PAYJS reads
        only the status and body, and a reason could tell a forger what failed."""
        del message
        return failure_reply()

    def _operation(
        self,
        endpoint: str,
        payjs_order_id: Any,
        *,
        money_moving: bool = False,
        idempotency_key: str | None = None,
    ) -> Operation:
        order_id = check_order_id(payjs_order_id)
        # Built in one go: constructing and then evolving the frozen Operation cost twice as much.
        return Operation(
            provider=_PROVIDER,
            name=endpoint,
            url=self._url(f"/api/{endpoint}"),
            fields={"mchid": self.mchid, "payjs_order_id": order_id},
            idempotency_key=idempotency_key,
            refund_no_field="payjs_order_id" if money_moving else None,
            settle=self._settle_by_check if money_moving else None,
        )

    async def _settle_by_check(self, operation: Operation) -> Outcome | None:
        """Decide an unknown refund/reverse outcome with a verified ``check``, or raise.

        Never returns None: no documented check reply proves that an order was *not* refunded.
        """
        order_id = operation.fields["payjs_order_id"]
        outcome = await self._call(self._operation("check", order_id))
        marker = outcome.fields.get("refund")
        if not isinstance(marker, bool) and marker in (1, "1"):
            return outcome
        raise RefundNotProven(
            f"a verified check of order {order_id} (status {outcome.fields.get('status')!r}) "
            "cannot prove whether it was refunded"
        )


def _order_id_if_missing(outcome: Outcome, operation: Operation) -> dict[str, str]:
    """PAYJS marks ``payjs_order_id`` optional in refund replies: fall back to the requested one.

    Safe because the dialect refuses a reply naming another order, and an idempotency key is
    bound to its order by the request fingerprint. ``raw`` still holds only what was received.
    """
    if outcome.fields.get("payjs_order_id") in (None, ""):
        return {"payjs_order_id": operation.fields["payjs_order_id"]}
    return {}


def _money_result(model: type[_MoneyResult], outcome: Outcome, operation: Operation) -> _MoneyResult:
    """Type a verified refund/reverse reply; one that cannot be typed leaves the outcome unknown.

    The reply was verified, but a field of an unexpected type (a ``refund`` marker of ``"yes"``)
    means it cannot be read safely: report neither success nor failure.
    """
    try:
        return structure(
            model,
            outcome.fields,
            attempts=outcome.attempts,
            settled_by_query=outcome.settled_by_query,
            replayed=outcome.replayed,
            **_order_id_if_missing(outcome, operation),
        )
    except DecodeError as error:
        refund_no = operation.refund_no or ""
        raise RefundOutcomeUnknown(
            f"the verified PAYJS {operation.name} reply for order {refund_no} could not be read: "
            f"{error.message}; check the order before acting",
            refund_no=refund_no,
            cause=error,
        ) from error
