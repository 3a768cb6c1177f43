"""eftPay VMP (Hong Kong gateway for WeChat Pay and Alipay): refunds, queries, notifications."""

from .client import EftPayClient
from .dialect import EftPayDialect, ReplyVerifier, SignatureRule
from .models import QueryResult, RefundNotification, RefundResult, RefundStatusResult
from .status import RefundStatus, TradeStatus

__all__ = [
    "EftPayClient",
    "EftPayDialect",
    "QueryResult",
    "RefundNotification",
    "RefundResult",
    "RefundStatus",
    "RefundStatusResult",
    "ReplyVerifier",
    "SignatureRule",
    "TradeStatus",
]
