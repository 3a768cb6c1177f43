"""WeChat Pay API v3 wire rules: sign each attempt, verify every reply before believing it.

``encode`` stamps a fresh timestamp and nonce on every attempt and signs
``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` — the body bytes are the same on every attempt,
so a retry is the same request. ``decode`` classifies the reply:

* 2xx → the Wechatpay-* signature over ``timestamp\\nnonce\\nbody\\n`` must verify (a 204 with an
  empty body too); a 2xx that does not verify is a :class:`SignatureError` — an unknown outcome,
  which the retry layer settles with a verified query, never a success;
* non-2xx with a JSON ``{"code", "message"}`` → :class:`WeChatPayV3Error` flagged from the error
  table (verified when signed; a forged signature is a :class:`SignatureError`);
* anything else (a proxy's HTML error page) → :class:`HTTPStatusError`;
* for a refund, only a verified error (or WeChat's unsigned 401) is definite: any other refusal
  leaves the outcome unknown, for a verified query to settle.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ...errors import DecodeError, HTTPStatusError, PaykitError
from ...pipeline.core import Operation, Outcome
from ...retry_after import parse_retry_after
from ...signing.rsa import Sha256WithRsaSigner, authorization_header, request_message
from ...transport.wire import WireRequest, WireResponse
from .errors import WeChatPayV3Error, provider_error
from .parsing import json_object
from .requests import encode_body
from .verification import KeyRing, verify_signed

__all__ = ["METHODS", "USER_AGENT", "WeChatPayV3Dialect", "new_nonce", "request_target"]

#: The HTTP method of each operation (everything else is a POST).
METHODS: Mapping[str, str] = {"query_refund": "GET", "certificates": "GET"}
USER_AGENT = "paykit_async (WeChat Pay API v3)"


def new_nonce() -> str:
    """32 random upper-case hex characters (128 bits) from :mod:`secrets`."""
    return secrets.token_hex(16).upper()


def request_target(url: str) -> str:
    """The path and query of ``url`` as sent (what the request signature covers)."""
    parts = urlsplit(url)
    return f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"


class WeChatPayV3Dialect:
    """Signs requests with the merchant's API key and verifies replies with :class:`KeyRing`.

    ``wall_clock`` gives epoch seconds (the request timestamp, and the ±300 s window replies are
    checked against). In public-key mode every request carries ``Wechatpay-Serial`` with the
    public key's id.
    """

    __slots__ = ("_clock", "_headers", "_mchid", "_serial_no", "_signer", "keys")

    def __init__(
        self,
        *,
        mchid: str,
        serial_no: str,
        signer: Sha256WithRsaSigner,
        keys: KeyRing,
        wall_clock: Callable[[], float],
    ) -> None:
        self._mchid = mchid
        self._serial_no = serial_no
        self._signer = signer
        self.keys = keys
        self._clock = wall_clock
        headers = {"accept": "application/json", "user-agent": USER_AGENT}
        if keys.public_key_id is not None:
            headers["wechatpay-serial"] = keys.public_key_id
        self._headers: Mapping[str, str] = headers

    def __repr__(self) -> str:
        return f"<WeChatPayV3Dialect mchid={self._mchid} serial_no={self._serial_no}>"

    def now(self) -> float:
        return self._clock()

    # -- requests -----------------------------------------------------------------------------

    def authorization(self, method: str, target: str, body: bytes) -> str:
        """A fresh ``Authorization`` header (new timestamp and nonce) for one attempt."""
        timestamp = int(self._clock())
        nonce = new_nonce()
        signature = self._signer.sign(request_message(method, target, timestamp, nonce, body))
        return authorization_header(
            mchid=self._mchid,
            serial_no=self._serial_no,
            nonce=nonce,
            timestamp=timestamp,
            signature=signature,
        )

    def encode(self, operation: Operation) -> WireRequest:
        method = METHODS.get(operation.name, "POST")
        body = encode_body(operation.fields) if method == "POST" else b""
        headers = dict(self._headers)
        if method == "POST":
            headers["content-type"] = "application/json"
        headers["authorization"] = self.authorization(method, request_target(operation.url), body)
        return WireRequest(method=method, url=operation.url, headers=headers, content=body)

    # -- replies ------------------------------------------------------------------------------

    def verify(self, headers: Mapping[str, str], body: bytes, *, what: str) -> str:
        """Verify a signed message (headers with lower-case names); return the key's serial."""
        return verify_signed(headers, body, self.keys, now=self._clock(), what=what)

    def decode(self, operation: Operation, response: WireResponse) -> Outcome:
        status = response.status_code
        if not 200 <= status < 300:
            raise self.error(operation, response)
        content = response.content
        self.verify(response.headers, content, what=f"{operation.name} reply")
        if operation.name == "close_order":
            return Outcome(fields={}, status_code=status)
        if not content:
            raise DecodeError(f"the {operation.name} reply is empty")
        document = json_object(content, what=f"{operation.name} reply")
        _check_echo(operation, document)
        return Outcome(fields=document, status_code=status)

    def error(self, operation: Operation, response: WireResponse) -> PaykitError:
        """The error for a non-2xx reply (raises :class:`SignatureError` if it is forged).

        Only a verified error reply can say that a refund was not made: an unsigned refusal
        (WeChat's JSON without a signature, a proxy's error page, an unsigned 429) leaves the
        refund's outcome unknown, so the retry layer settles it with a verified query once it
        stops re-sending. The exception is WeChat's unsigned 401, sent when it could not
        authenticate the request at all.
        """
        status, headers, content = response.status_code, response.headers, response.content
        error = self._classify(operation, status, headers, content)
        if operation.is_refund and not _proves_nothing_done(error):
            error.outcome_unknown = True
        return error

    def _classify(
        self, operation: Operation, status: int, headers: Mapping[str, str], content: bytes
    ) -> PaykitError:
        document: dict[str, Any] | None
        try:
            document = json_object(content, what="error reply") if content else None
        except DecodeError:
            document = None
        code = document.get("code") if document is not None else None
        if document is None or not isinstance(code, str) or not code:
            return HTTPStatusError.from_reply("WeChat Pay", operation.name, status, headers, content)
        signed = "wechatpay-signature" in headers
        if signed:
            self.verify(headers, content, what=f"{operation.name} error reply")
        message = document.get("message")
        return provider_error(
            code,
            message if isinstance(message, str) else "",
            status_code=status,
            signed=signed,
            raw=document,
            retry_after=parse_retry_after(headers.get("retry-after")),
        )


def _proves_nothing_done(error: PaykitError) -> bool:
    """A verified WeChat error, or WeChat's unsigned 401 (the request was not authenticated)."""
    return isinstance(error, WeChatPayV3Error) and (error.signed or error.status_code == 401)


def _check_echo(operation: Operation, document: Mapping[str, Any]) -> None:
    """A verified reply about another refund must never be reported as this one's outcome."""
    expected = operation.fields.get("out_refund_no") if operation.name in ("refund", "query_refund") else None
    received = document.get("out_refund_no")
    if expected is not None and received is not None and received != expected:
        raise DecodeError(f"the reply concerns refund {str(received)[:64]!r}, not {expected!r}")
    if operation.name == "refund":
        amount = document.get("amount")
        refund = amount.get("refund") if isinstance(amount, Mapping) else None
        if refund is not None and refund != _sent_refund(operation):
            raise DecodeError(
                f"the reply reports a refund of {str(refund)[:20]} fen, not the amount requested"
            )


def _sent_refund(operation: Operation) -> object:
    try:
        return json.loads(operation.fields["amount"])["refund"]
    except (KeyError, TypeError, ValueError):
        return None
