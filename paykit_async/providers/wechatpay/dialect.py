"""WeChat Pay v2 wire rules: sign and encode an operation as XML, decode and verify the reply.

Per attempt, ``encode`` adds a fresh ``nonce_str`` (16 bytes of ``os.urandom``), ``sign_type`` when it is
HMAC-SHA256, and ``sign``. ``decode`` classifies the reply:

* HTTP status other than 200 → :class:`HTTPStatusError` (outcome unknown but for 429,
  ``Retry-After`` honoured), except an HTML page with a 4xx status, which is how WeChat rejects a
  missing or wrong client certificate → :class:`DecodeError` (nothing was executed);
* ``return_code=FAIL`` (protocol level, usually unsigned) → :class:`ProviderError`;
* ``return_code=SUCCESS`` without a valid ``sign``, or signed over a string that reads as another
  field set → :class:`SignatureError`;
* ``result_code=FAIL`` → :class:`ProviderError` flagged from the ``err_code`` table;
* anything else after a send — an HTML page with status 200, a ``return_code`` or ``result_code``
  that is neither documented value, a body that is not XML — is a :class:`DecodeError` whose
  outcome is unknown (a refund is then settled by query), never a definite failure. An ``<xml>``
  document is never taken for an HTML page, whatever its values contain.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ...codecs.xml import CONTENT_TYPE, decode_xml, encode_xml, looks_like_html
from ...errors import DecodeError, HTTPStatusError, ProviderError, SignatureError
from ...pipeline.core import Operation, Outcome
from ...signing import KeyedHmacSha256Signer, KeyedMd5Signer
from ...transport.wire import WireRequest, WireResponse
from .errors import provider_error

__all__ = ["SIGN_TYPES", "WeChatPayDialect"]

SIGN_TYPES = ("MD5", "HMAC-SHA256")

_HEADERS: Mapping[str, str] = {"content-type": CONTENT_TYPE, "accept": "text/xml"}


class WeChatPayDialect:
    """Signs requests with the merchant's v2 API key and verifies every reply.

    Both signers are built once. Replies are verified with the algorithm their ``sign`` length
    names (32 hex → MD5, 64 hex → HMAC-SHA256), whatever the request used.
    """

    __slots__ = ("_hmac", "_md5", "_send_sign_type", "_signer")

    def __init__(self, *, api_key: str, sign_type: str = "MD5") -> None:
        self._md5 = KeyedMd5Signer(key=api_key)
        self._hmac = KeyedHmacSha256Signer(key=api_key)
        self._signer: KeyedMd5Signer | KeyedHmacSha256Signer = (
            self._hmac if sign_type == "HMAC-SHA256" else self._md5
        )
        # MD5 is the default and needs no field; HMAC-SHA256 must be declared (and is signed).
        self._send_sign_type = sign_type == "HMAC-SHA256"

    def __repr__(self) -> str:
        return f"<WeChatPayDialect sign_type={self._signer.sign_type}>"

    @property
    def sign_type(self) -> str:
        return self._signer.sign_type

    def sign_fields(self, fields: Mapping[str, str]) -> dict[str, str]:
        """``fields`` plus ``nonce_str``, ``sign_type`` (HMAC only) and ``sign``: what is sent."""
        signed = dict(fields)
        # secrets.token_hex(16) without its two pass-through calls: the same 16 bytes of os.urandom.
        signed["nonce_str"] = os.urandom(16).hex()
        if self._send_sign_type:
            signed["sign_type"] = "HMAC-SHA256"
        signed["sign"] = self._signer.sign(signed)
        return signed

    def encode(self, operation: Operation) -> WireRequest:
        return WireRequest(
            url=operation.url, headers=_HEADERS, content=encode_xml(self.sign_fields(operation.fields))
        )

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        content = response.content
        if response.status_code != 200:
            if looks_like_html(content) and 400 <= response.status_code < 500:
                raise _certificate_error()
            raise HTTPStatusError.from_reply(
                "WeChat Pay", operation.name, response.status_code, response.headers, content
            )
        fields = self.verify_reply(decode_xml(content))  # an HTML page here is a DecodeError too
        refund_no = operation.refund_no
        if refund_no is not None and fields.get("out_refund_no", refund_no) != refund_no:
            # A verified reply about another refund: never report it as this one's outcome.
            raise DecodeError(f"the reply concerns refund {fields['out_refund_no']!r}, not {refund_no!r}")
        return Outcome(fields=fields, status_code=200)

    def verify_reply(self, fields: dict[str, str]) -> dict[str, str]:
        """Check ``return_code``, the signature and ``result_code``; return ``fields`` if all pass."""
        return_code = fields.get("return_code")
        if return_code != "SUCCESS":
            if return_code != "FAIL":
                # Neither documented value: the reply cannot say whether anything was executed.
                raise DecodeError(
                    f"the reply carries no valid return_code ({return_code!r}): not a WeChat Pay v2 reply"
                )
            sign = fields.get("sign")
            # Protocol failures are usually unsigned; a signature that is present must be right.
            if sign and not self.verify(fields, sign):
                raise SignatureError("a return_code=FAIL reply carries an invalid sign")
            raise ProviderError(return_code, fields.get("return_msg", ""), raw=fields)
        sign = fields.get("sign")
        if not sign:
            raise SignatureError("a return_code=SUCCESS reply carries no sign: refusing to trust it")
        if not self.verify(fields, sign):
            raise SignatureError("the reply's sign does not match: refusing to trust it")
        result_code = fields.get("result_code")
        if result_code != "SUCCESS":
            if result_code != "FAIL":
                raise DecodeError(
                    f"a return_code=SUCCESS reply carries no valid result_code ({result_code!r})"
                )
            code = fields.get("err_code") or result_code
            raise provider_error(code, fields.get("err_code_des", ""), fields)
        return fields

    def verify(self, fields: Mapping[str, str], sign: str) -> bool:
        """Constant-time check of ``sign`` over every field but ``sign`` (MD5 or HMAC by length).

        A match over a string that reads as another field set raises :class:`SignatureError`
        (the re-split rule, applied by the signer's ``verify_reading``).
        """
        length = len(sign)
        if length == 32:
            return self._md5.verify_reading(fields, sign, what="the reply")
        if length == 64:
            return self._hmac.verify_reading(fields, sign, what="the reply")
        return False


def _certificate_error() -> DecodeError:
    # WeChat's gateway answers an HTML page when the client certificate is missing or wrong; the
    # request was refused before reaching the payment system, so nothing was executed.
    return DecodeError(
        "WeChat Pay answered with an HTML page, not XML: the client certificate was likely "
        "rejected or missing (check cert=, or a proxy intercepted the request)",
        after_send=False,
    )
