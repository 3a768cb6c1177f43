"""WeChat Pay v2 ``err_code`` table: which refusals may succeed when the same request is re-sent.

Data only; the dialect turns a ``result_code=FAIL`` reply into a :class:`~paykit_async.ProviderError`
with the flags found here. Codes not listed are final (not retryable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ...errors import ProviderError

__all__ = ["ERROR_RULES", "ErrorRule", "provider_error"]


@attrs.frozen(kw_only=True)
class ErrorRule:
    """How to treat one ``err_code``.

    ``retryable``: re-send the same request (same ``out_refund_no``, same amounts).
    ``retry_after``: the minimum wait before doing so, in seconds.
    ``outcome_unknown``: the provider may have executed the request anyway (a refund that keeps
    failing this way is settled by a refund query, never re-issued under a new number).
    """

    retryable: bool = False
    retry_after: float | None = None
    outcome_unknown: bool = False


_FINAL = ErrorRule()

#: ``err_code`` → rule, from the refund, refund query and close order pages.
ERROR_RULES: Mapping[str, ErrorRule] = {
    # Provider-side failure or timeout: the refund may or may not exist yet.
    "SYSTEMERROR": ErrorRule(retryable=True, outcome_unknown=True),
    # Concurrent processing of the same order: retry with identical parameters.
    "BIZERR_NEED_RETRY": ErrorRule(retryable=True, outcome_unknown=True),
    # Rate limited (mostly refunds of old orders): back off for a while.
    "FREQUENCY_LIMITED": ErrorRule(retryable=True, retry_after=10.0),
    # Too many erroneous requests: the merchant is blocked for a minute or more.
    "INVALID_REQ_TOO_MUCH": ErrorRule(retryable=True, retry_after=60.0),
    "NOTENOUGH": _FINAL,
    "TRADE_OVERDUE": _FINAL,
    "USER_ACCOUNT_ABNORMAL": _FINAL,
    "INVALID_TRANSACTIONID": _FINAL,
    "PARAM_ERROR": _FINAL,
    "APPID_NOT_EXIST": _FINAL,
    "MCHID_NOT_EXIST": _FINAL,
    "ORDERNOTEXIST": _FINAL,
    "REQUIRE_POST_METHOD": _FINAL,
    "SIGNERROR": _FINAL,
    "XML_FORMAT_ERROR": _FINAL,
    "ERROR": _FINAL,
    "REFUNDNOTEXIST": _FINAL,
    "ORDERPAID": _FINAL,
    "ORDERCLOSED": _FINAL,
}


def provider_error(code: str, message: str, raw: Mapping[str, Any]) -> ProviderError:
    """The :class:`ProviderError` for ``err_code`` ``code`` with the table's flags applied."""
    rule = ERROR_RULES.get(code, _FINAL)
    error = ProviderError(code, message, retryable=rule.retryable, retry_after=rule.retry_after, raw=raw)
    if rule.outcome_unknown:
        error.outcome_unknown = True
    return error
