"""eftPay's wire rules: JSON bodies stamped with UTC+8 ``time`` and a prefixed SHA-256 ``sign``.

``encode`` adds ``time`` and ``sign`` on every attempt (a retry after a long wait carries a fresh
time). ``decode`` verifies the reply and classifies it: ``return_status`` ``"00"`` means only
"accepted" (the business state is ``trade_status``); any other code is a :class:`ProviderError`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs

from ...codecs.json import CONTENT_TYPE, decode_json, encode_json
from ...errors import DecodeError, HTTPStatusError, ProviderError, SignatureError
from ...pipeline.core import Operation, Outcome
from ...signing import PrefixedSha256Signer, is_blank
from ...transport.wire import WireRequest, WireResponse

__all__ = [
    "UTC8",
    "EftPayDialect",
    "EftPayOutcome",
    "ReplyVerifier",
    "SignatureRule",
    "eftpay_time",
    "utc_now",
]

logger = logging.getLogger("paykit_async.eftpay")

#: Hong Kong / Beijing time, which eftPay's ``time`` field is in (a UTC time is rejected).
UTC8 = timezone(timedelta(hours=8), "UTC+08:00")
_ACCEPTED = "00"
_HEADERS = {"content-type": CONTENT_TYPE, "accept": "application/json"}


def utc_now() -> datetime:
    """The current time as an aware UTC datetime (independent of the host's time zone)."""
    return datetime.now(timezone.utc)


def eftpay_time(now: datetime) -> str:
    """``yyyyMMddHHmmss`` in UTC+8 for an aware datetime."""
    if now.tzinfo is None:
        raise ValueError("an aware datetime is required; naive times are ambiguous")
    return now.astimezone(UTC8).strftime("%Y%m%d%H%M%S")


class SignatureRule(str, enum.Enum):
    """Which canonical string a received signature matched.

    eftPay does not say whether it drops empty fields when signing its own replies, so both are
    tried: ``NON_EMPTY`` (the request rule) first, then ``ALL_FIELDS`` (empty fields kept as
    ``k=``).
    """

    NON_EMPTY = "non_empty"
    ALL_FIELDS = "all_fields"


def _never_empty(_value: object) -> bool:
    return False


def as_text(value: object) -> Any:
    """A received JSON scalar as the string eftPay signed: ``None`` → ``""``, numbers verbatim."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    return value


@attrs.frozen(kw_only=True)
class ReplyVerifier:
    """Signs requests and verifies replies and notifications with one merchant secret.

    Verification is constant time; the all-fields rule is only tried when a field is empty,
    since otherwise both rules give the same string.
    """

    secret: str = attrs.field(repr=False)
    _signer: PrefixedSha256Signer = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda self: PrefixedSha256Signer(secret=self.secret), takes_self=True),
    )
    _signer_all: PrefixedSha256Signer = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(
            lambda self: PrefixedSha256Signer(secret=self.secret, is_empty=_never_empty), takes_self=True
        ),
    )

    def sign(self, fields: Mapping[str, Any]) -> str:
        """The ``sign`` of outgoing fields (empty ones dropped)."""
        return self._signer.sign(fields)

    def verify(self, fields: Mapping[str, Any], *, what: str = "reply") -> SignatureRule:
        """Check ``fields["sign"]``; return the rule that matched or raise :class:`SignatureError`.

        A signature that matches a string which reads as another field set (a value holds
        ``&name=``; see :mod:`paykit_async.signing.canonical`) is refused too.
        """
        signature = fields.get("sign")
        if not isinstance(signature, str) or not signature:
            raise SignatureError(f"eftPay {what} carries no sign")
        # verify_reading also applies the re-split rule, under the empty rule of the signer that matched.
        if self._signer.verify_reading(fields, signature, what=f"eftPay {what}"):
            rule = SignatureRule.NON_EMPTY
        elif any(is_blank(v) for k, v in fields.items() if k != "sign") and self._signer_all.verify_reading(
            fields, signature, what=f"eftPay {what}"
        ):
            rule = SignatureRule.ALL_FIELDS
        else:
            raise SignatureError(f"eftPay {what} signature does not match")
        logger.debug("eftPay %s signature verified with rule %s", what, rule.value)
        return rule


@attrs.frozen(kw_only=True)
class EftPayOutcome(Outcome):
    """An :class:`Outcome` that also says which signature rule the reply matched."""

    signature_rule: SignatureRule | None = None


@attrs.frozen(kw_only=True)
class EftPayDialect:
    """Encodes operations as signed JSON and decodes, verifies and classifies replies.

    ``now`` returns an aware datetime (injectable for tests); ``time`` is derived from it in
    UTC+8 on every attempt, whatever the host's time zone. ``retryable_codes`` are the
    ``return_status`` values the merchant knows to be transient (none by default).
    """

    verifier: ReplyVerifier
    now: Callable[[], datetime] = utc_now
    retryable_codes: frozenset[str] = frozenset()

    def encode(self, operation: Operation) -> WireRequest:
        fields: dict[str, str] = dict(operation.fields)
        fields["time"] = eftpay_time(self.now())
        fields["sign"] = self.verifier.sign(fields)
        return WireRequest(method="POST", url=operation.url, headers=_HEADERS, content=encode_json(fields))

    def decode(self, operation: Operation, response: WireResponse) -> EftPayOutcome:
        if response.status_code != 200:
            raise HTTPStatusError.from_reply(
                "eftPay", operation.name, response.status_code, response.headers, response.content
            )
        fields = {name: as_text(value) for name, value in decode_json(response.content).items()}
        return classify_reply(
            self.verifier,
            operation,
            fields,
            status_code=response.status_code,
            retryable_codes=self.retryable_codes,
        )


def classify_reply(
    verifier: ReplyVerifier,
    operation: Operation,
    fields: dict[str, Any],
    *,
    status_code: int = 200,
    retryable_codes: frozenset[str] = frozenset(),
) -> EftPayOutcome:
    """Verify and classify decoded reply fields (see the module docstring)."""
    status = fields.get("return_status")
    if not isinstance(status, str) or not status:
        raise DecodeError(f"eftPay {operation.name} reply has no return_status")
    if status != _ACCEPTED:
        raise _refusal(verifier, status, fields, retryable=status in retryable_codes)
    rule = verifier.verify(fields)
    sent_refund_no = operation.refund_no
    received = fields.get("refund_no")
    if sent_refund_no is not None and received and received != sent_refund_no:
        raise DecodeError(
            f"eftPay answered for refund_no {received!r}, not {sent_refund_no!r}", after_send=True
        )
    return EftPayOutcome(fields=fields, status_code=status_code, signature_rule=rule)


def _refusal(
    verifier: ReplyVerifier, status: str, fields: Mapping[str, Any], *, retryable: bool
) -> ProviderError:
    """A non-"00" reply: a definite refusal. eftPay documents no transient codes (its appendix
    is not public), so a code is retried only when the merchant listed it as transient.

    A signed refusal must verify (a forged one raises :class:`SignatureError`). eftPay returns
    ``sign`` only "when return_status >= 00", so an unsigned refusal is accepted as sent: it
    carries no business data, and TLS (never switched off) authenticates the server.
    """
    if fields.get("sign"):
        verifier.verify(fields, what="refusal")
    message = fields.get("return_char")
    return ProviderError(status, message if isinstance(message, str) else "", retryable=retryable, raw=fields)
