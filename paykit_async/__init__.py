"""paykit_async: asyncio-native refunds and order closing for PAYJS, WeChat Pay v2 and v3, and eftPay.

Every reply and notification signature is verified in constant time, refunds are exactly-once
under retries and crashes (refund numbers fixed before the first attempt, idempotency stores),
and :mod:`paykit_async.simulator` is a faithful local fake of all three providers.
"""

from .batch import BatchOutcome, BatchStatus, InvalidRequest, RefundBatch, refund_many
from .errors import (
    DecodeError,
    HTTPStatusError,
    IdempotencyConflict,
    IdempotencyStoreError,
    PaykitError,
    ProviderError,
    RefundOutcomeUnknown,
    SignatureError,
    TransportError,
    ValidationError,
)
from .notification_reply import NotificationReply
from .pipeline import (
    FakeClock,
    Handler,
    LoggingMiddleware,
    Middleware,
    Operation,
    Outcome,
    RetryBudget,
    RetryPolicy,
)
from .pipeline.idempotency import IdempotencyMiddleware
from .pipeline.ratelimit import RateLimit
from .pipeline.stores import IdempotencyStore, MemoryStore, RedisStore, SQLiteStore
from .providers.eftpay import EftPayClient, TradeStatus
from .providers.payjs import PayJSClient, RefundNotProven, UnsignedReplyError
from .providers.wechatpay import RefundDetail, RefundGoods, WeChatPayClient
from .providers.wechatpay_v3 import WeChatPayV3Client
from .refund_numbers import RefundNumberRule, derive_refund_no, new_refund_no
from .signing import KeyedHmacSha256Signer, KeyedMd5Signer, PrefixedSha256Signer, Signer
from .transport import (
    AiohttpTransport,
    ClientCertificate,
    HttpxTransport,
    Timeouts,
    Transport,
    TransportSettings,
    WireRequest,
    WireResponse,
)

__version__ = "0.1.0"

__all__ = [
    "AiohttpTransport",
    "BatchOutcome",
    "BatchStatus",
    "ClientCertificate",
    "DecodeError",
    "EftPayClient",
    "FakeClock",
    "HTTPStatusError",
    "Handler",
    "HttpxTransport",
    "IdempotencyConflict",
    "IdempotencyMiddleware",
    "IdempotencyStore",
    "IdempotencyStoreError",
    "InvalidRequest",
    "KeyedHmacSha256Signer",
    "KeyedMd5Signer",
    "LoggingMiddleware",
    "MemoryStore",
    "Middleware",
    "NotificationReply",
    "Operation",
    "Outcome",
    "PayJSClient",
    "PaykitError",
    "PrefixedSha256Signer",
    "ProviderError",
    "RateLimit",
    "RedisStore",
    "RefundBatch",
    "RefundDetail",
    "RefundGoods",
    "RefundNotProven",
    "RefundNumberRule",
    "RefundOutcomeUnknown",
    "RetryBudget",
    "RetryPolicy",
    "SQLiteStore",
    "SignatureError",
    "Signer",
    "Timeouts",
    "TradeStatus",
    "Transport",
    "TransportError",
    "TransportSettings",
    "UnsignedReplyError",
    "ValidationError",
    "WeChatPayClient",
    "WeChatPayV3Client",
    "WireRequest",
    "WireResponse",
    "__version__",
    "derive_refund_no",
    "new_refund_no",
    "refund_many",
]
