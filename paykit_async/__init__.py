"""paykit_async: asyncio-native refunds and order closing for PAYJS, WeChat Pay v2 and eftPay."""

from .errors import (
    DecodeError,
    HTTPStatusError,
    IdempotencyConflict,
    PaykitError,
    ProviderError,
    RefundOutcomeUnknown,
    SignatureError,
    TransportError,
    ValidationError,
)
from .pipeline import (
    FakeClock,
    LoggingMiddleware,
    Middleware,
    Operation,
    Outcome,
    RetryBudget,
    RetryPolicy,
)
from .signing import KeyedHmacSha256Signer, KeyedMd5Signer, PrefixedSha256Signer, Signer
from .transport import ClientCertificate, HttpxTransport, Timeouts, Transport

__version__ = "0.1.0"

__all__ = [
    "ClientCertificate",
    "DecodeError",
    "FakeClock",
    "HTTPStatusError",
    "HttpxTransport",
    "IdempotencyConflict",
    "KeyedHmacSha256Signer",
    "KeyedMd5Signer",
    "LoggingMiddleware",
    "Middleware",
    "Operation",
    "Outcome",
    "PaykitError",
    "PrefixedSha256Signer",
    "ProviderError",
    "RefundOutcomeUnknown",
    "RetryBudget",
    "RetryPolicy",
    "SignatureError",
    "Signer",
    "Timeouts",
    "Transport",
    "TransportError",
    "ValidationError",
    "__version__",
]
