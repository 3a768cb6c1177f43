"""WeChat Pay API v3: refunds, refund query, close order and refund notifications, verified with
the WeChat Pay public key or platform certificates."""

from .aead import AeadAes256Gcm
from .certificates import CertificatesUnavailable, PlatformCertificates
from .client import DEFAULT_BASE_URL, PROVIDER, WeChatPayV3Client
from .dialect import WeChatPayV3Dialect
from .errors import ERROR_RULES, WeChatPayV3Error
from .models import (
    CloseOrderResult,
    FundsFrom,
    NotificationAmount,
    Promotion,
    PromotionGoods,
    RefundAmount,
    RefundGoodsDetail,
    RefundNotification,
    RefundResult,
    RefundStatus,
)
from .verification import KeyRing, PlatformCertificate, UnknownSerial

__all__ = [
    "DEFAULT_BASE_URL",
    "ERROR_RULES",
    "PROVIDER",
    "AeadAes256Gcm",
    "CertificatesUnavailable",
    "CloseOrderResult",
    "FundsFrom",
    "KeyRing",
    "NotificationAmount",
    "PlatformCertificate",
    "PlatformCertificates",
    "Promotion",
    "PromotionGoods",
    "RefundAmount",
    "RefundGoodsDetail",
    "RefundNotification",
    "RefundResult",
    "RefundStatus",
    "UnknownSerial",
    "WeChatPayV3Client",
    "WeChatPayV3Dialect",
    "WeChatPayV3Error",
]
