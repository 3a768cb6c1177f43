"""WeChat Pay API v3 error replies: JSON ``{"code", "message", "detail"?}`` with an HTTP status.

Data plus one function: :func:`provider_error` turns a reply into a :class:`WeChatPayV3Error`
flagged from :data:`ERROR_RULES` (the refund, query and close-order error tables), falling back
on the HTTP status for codes not listed (5xx: retryable, outcome unknown; 429: retryable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import ProviderError
from ..wechatpay.errors import ErrorRule

__all__ = ["ERROR_RULES", "WeChatPayV3Error", "provider_error"]

_FINAL = ErrorRule()

#: ``code`` → rule. Retrying re-sends the same request: the same out_refund_no, an identical body.
ERROR_RULES: Mapping[str, ErrorRule] = {
    # Provider-side failure: the refund may or may not exist yet.
    "SYSTEM_ERROR": ErrorRule(retryable=True, outcome_unknown=True),
    # Rate limited (150/s per merchant, 6/s for failing requests; old orders far less): slow down.
    "FREQUENCY_LIMITED": ErrorRule(retryable=True, retry_after=1.0),
    "PARAM_ERROR": _FINAL,
    "INVALID_REQUEST": _FINAL,
    "SIGN_ERROR": _FINAL,
    "NO_AUTH": _FINAL,
    "NOT_ENOUGH": _FINAL,
    "USER_ACCOUNT_ABNORMAL": _FINAL,
    "MCH_NOT_EXISTS": _FINAL,
    "APPID_MCHID_NOT_MATCH": _FINAL,
    "RESOURCE_NOT_EXISTS": _FINAL,
    "ORDER_CLOSED": _FINAL,
    "TRADE_ERROR": _FINAL,
    "RULE_LIMIT": _FINAL,
    "ACCOUNT_ERROR": _FINAL,
}


class WeChatPayV3Error(ProviderError):
    """A v3 error reply: ``code`` and ``message`` from the JSON, ``status_code`` the HTTP status.

    ``signed`` says whether the reply carried a valid WeChat signature. WeChat signs its error
    replies except when it could not authenticate the request (401); an unsigned refusal of a
    refund is never taken as proof that no money moved (see the client).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status_code: int,
        signed: bool,
        retryable: bool = False,
        retry_after: float | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, message, retryable=retryable, retry_after=retry_after, raw=raw)
        self.status_code = status_code
        self.signed = signed


def provider_error(
    code: str,
    message: str,
    *,
    status_code: int,
    signed: bool,
    raw: Mapping[str, Any],
    retry_after: float | None = None,
) -> WeChatPayV3Error:
    """The error for ``code`` at HTTP ``status_code`` with the table's (or the status's) flags."""
    rule = ERROR_RULES.get(code)
    if rule is None:
        if status_code >= 500:
            rule = ErrorRule(retryable=True, outcome_unknown=True)
        elif status_code == 429:
            rule = ErrorRule(retryable=True, retry_after=1.0)
        else:
            rule = _FINAL
    hints = [hint for hint in (rule.retry_after, retry_after) if hint is not None]
    error = WeChatPayV3Error(
        code,
        message,
        status_code=status_code,
        signed=signed,
        retryable=rule.retryable,
        retry_after=max(hints) if hints else None,
        raw=raw,
    )
    if rule.outcome_unknown:
        error.outcome_unknown = True
    return error
