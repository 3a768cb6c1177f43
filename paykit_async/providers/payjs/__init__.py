"""PAYJS (payjs.cn): refund, close, reverse and check orders; payment notifications."""

from .client import PayJSClient
from .dialect import FAIL, PayJSDialect, make_signer
from .errors import RefundNotProven, UnsignedReplyError
from .models import CheckResult, CloseResult, PaymentNotification, RefundResult, ReverseResult
from .notifications import NotificationReply, failure_reply, parse_payment_notification, success_reply

__all__ = [
    "FAIL",
    "CheckResult",
    "CloseResult",
    "NotificationReply",
    "PayJSClient",
    "PayJSDialect",
    "PaymentNotification",
    "RefundNotProven",
    "RefundResult",
    "ReverseResult",
    "UnsignedReplyError",
    "failure_reply",
    "make_signer",
    "parse_payment_notification",
    "success_reply",
]
