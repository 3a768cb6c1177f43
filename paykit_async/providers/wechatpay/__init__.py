"""WeChat Pay API v2: refunds (incl. single-product refundv2), refund query, close order and
refund notifications."""

from .client import BACKUP_BASE_URL, DEFAULT_BASE_URL, WeChatPayClient
from .dialect import WeChatPayDialect
from .errors import ERROR_RULES, ErrorRule
from .failover import FailoverMiddleware
from .models import (
    CloseOrderResult,
    Coupon,
    Promotion,
    PromotionGoods,
    RefundDetail,
    RefundGoods,
    RefundNotification,
    RefundQueryResult,
    RefundRecord,
    RefundResult,
    RefundStatus,
)
from .notifications import NOTIFICATION_SUCCESS_REPLY, notification_key, notification_reply

__all__ = [
    "BACKUP_BASE_URL",
    "DEFAULT_BASE_URL",
    "ERROR_RULES",
    "NOTIFICATION_SUCCESS_REPLY",
    "CloseOrderResult",
    "Coupon",
    "ErrorRule",
    "FailoverMiddleware",
    "Promotion",
    "PromotionGoods",
    "RefundDetail",
    "RefundGoods",
    "RefundNotification",
    "RefundQueryResult",
    "RefundRecord",
    "RefundResult",
    "RefundStatus",
    "WeChatPayClient",
    "WeChatPayDialect",
    "notification_key",
    "notification_reply",
]
