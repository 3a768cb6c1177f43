"""PAYJS wire rules: form-encoded signed requests, JSON replies verified and classified.

Signing is MD5 over the PHP ``array_filter`` canonical string (``""``, ``0``, ``"0"``, null and
false dropped; raw values, a space stays a space; nested reply objects in bracket form), then
``&key=`` and upper-case hex. Replies are verified over every received field except ``sign``.

Classification of a ``200`` JSON reply:

* signed, signature wrong                  → ``SignatureError`` (never retried)
* signed over a string that reads as another field set (a value holds ``&name=``, see
  :mod:`paykit_async.signing.canonical`)   → ``SignatureError``
* ``return_code=1`` signed and verified    → success
* ``return_code=1`` without ``sign``       → ``UnsignedReplyError`` (outcome unknown: settled by
  a verified ``check`` for refunds, else raised)
* ``return_code=0``                        → ``ProviderError(code="FAIL")``, not retryable.
  PAYJS has no error codes, only ``return_msg`` text, so the code is the constant ``"FAIL"`` and
  the text goes to ``message``. PAYJS leaves most refusals unsigned; an unsigned refusal is still
  reported as a refusal — it cannot make a merchant believe money moved, and a refund of the same
  order can always be sent again (a PAYJS refund is the full refund of that order).

Any other status → ``HTTPStatusError`` (5xx/429 retryable, ``Retry-After`` honoured; for every status
but 429 the outcome is unknown, so a refund or reverse is settled by a verified ``check``; a 429 is a
refusal before processing, see :class:`~paykit_async.HTTPStatusError`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ...codecs.form import CONTENT_TYPE as FORM_CONTENT_TYPE
from ...codecs.form import encode_form
from ...codecs.json import decode_json
from ...errors import DecodeError, HTTPStatusError, ProviderError, SignatureError
from ...pipeline.core import Operation, Outcome
from ...signing import KeyedMd5Signer, is_php_empty
from ...transport.wire import WireRequest, WireResponse
from .errors import UnsignedReplyError

__all__ = ["FAIL", "PayJSDialect", "make_signer", "return_code_of"]

#: The ``ProviderError.code`` of every ``return_code=0`` reply (PAYJS has no error codes).
FAIL = "FAIL"


def make_signer(key: str) -> KeyedMd5Signer:
    """The PAYJS signer: keyed MD5 with PHP ``array_filter`` empty rules."""
    return KeyedMd5Signer(key=key, is_empty=is_php_empty)


def return_code_of(fields: Mapping[str, Any]) -> int:
    """``return_code`` as 1 or 0, from a JSON number or a digit string; anything else is a DecodeError."""
    value = fields.get("return_code")
    if isinstance(value, bool):
        value = None
    if value in (1, "1"):
        return 1
    if value in (0, "0"):
        return 0
    raise DecodeError(f"PAYJS reply has no valid return_code (got {value!r})")


@attrs.frozen(kw_only=True)
class PayJSDialect:
    """Encodes operations for ``{base_url}/api/<endpoint>`` and decodes and verifies replies.

    ``operation.fields`` already hold ``mchid`` and ``payjs_order_id``; only ``sign`` is added here.
    """

    signer: KeyedMd5Signer = attrs.field(repr=False)

    def encode(self, operation: Operation) -> WireRequest:
        fields = dict(operation.fields)
        fields["sign"] = self.signer.sign(fields)
        return WireRequest(
            method="POST",
            url=operation.url,
            headers={"content-type": FORM_CONTENT_TYPE, "accept": "application/json"},
            content=encode_form(fields),
        )

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        if response.status_code != 200:
            raise HTTPStatusError.from_reply(
                "PAYJS", operation.name, response.status_code, response.headers, response.content
            )
        fields = decode_json(response.content)
        return_code = return_code_of(fields)
        signature = fields.get("sign")
        if signature is not None:
            what = f"PAYJS {operation.name} reply"
            if not isinstance(signature, str) or not self.signer.verify_reading(fields, signature, what=what):
                raise SignatureError(f"{what} signature does not verify")
        elif return_code == 1:
            raise UnsignedReplyError(
                f"PAYJS {operation.name} answered success without a signature; not trusted",
                raw=dict(fields),
            )
        if return_code == 0:
            raise ProviderError(FAIL, failure_message(fields), retryable=False, raw=fields)
        _check_same_order(operation, fields)
        return Outcome(fields=fields, status_code=response.status_code)


def failure_message(fields: Mapping[str, Any]) -> str:
    """``return_msg``, plus ``msg`` when PAYJS sent a different one too."""
    parts: list[str] = []
    for name in ("return_msg", "msg"):
        value = fields.get(name)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    return " / ".join(parts) if parts else "PAYJS refused the request (no return_msg)"


def _check_same_order(operation: Operation, fields: Mapping[str, Any]) -> None:
    asked = operation.fields.get("payjs_order_id")
    answered = fields.get("payjs_order_id")
    if asked is not None and answered is not None and str(answered) != asked:
        raise DecodeError(
            f"PAYJS {operation.name} reply is for order {answered!r}, not the requested {asked!r}"
        )
