"""TLS failures that only a configuration change can fix: named, with the fix, and not retried.

A server certificate that fails verification (a private CA without ``ca_file=``, a wrong host
name, an expired certificate) or a server that refuses the client certificate (a TLS alert such as
``unknown ca``, ``bad certificate``, ``certificate required``) fails the same way on every attempt
and on every domain. Retrying it, or failing over to a backup domain, only hides it behind the last
error; so these become a :class:`~paykit_async.errors.TransportError` with ``retryable=False``,
``sent=False`` (the server refused the connection in the handshake: it never processed the
request) and a message that says what is wrong and what to change. Both transports use this.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator

from ..errors import TransportError

__all__ = ["tls_configuration_error"]

#: TLS alerts with which a server refuses the client's certificate (or its absence).
_CLIENT_CERTIFICATE_ALERTS = frozenset(
    {
        "TLSV13_ALERT_CERTIFICATE_REQUIRED",
        "SSLV3_ALERT_BAD_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
        "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
        "SSLV3_ALERT_CERTIFICATE_EXPIRED",
        "SSLV3_ALERT_CERTIFICATE_REVOKED",
        "TLSV1_ALERT_UNKNOWN_CA",
        "TLSV1_ALERT_ACCESS_DENIED",
    }
)
_REASON = re.compile(r"\[SSL: ([A-Z0-9_]+)\]")


def tls_configuration_error(error: BaseException) -> TransportError | None:
    """The not-retryable error for a TLS misconfiguration found in ``error``'s causes, or None."""
    for cause in _causes(error):
        text = str(cause)
        if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
            detail = getattr(cause, "verify_message", None) or _short(text)
            return TransportError(
                f"TLS: certificate verify failed ({detail}): the server's certificate is not trusted; "
                f"{_verification_fix(detail)}",
                sent=False,
                retryable=False,
            )
        reason = _reason(cause)
        if reason in _CLIENT_CERTIFICATE_ALERTS:
            return TransportError(
                f"TLS: the server rejected the client certificate (alert {reason.lower()}); check cert= — "
                "it must be the certificate the provider issued to this merchant (WeChat Pay: "
                "apiclient_cert for this mch_id), with its private key",
                sent=False,
                retryable=False,
            )
        if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
            return TransportError(
                "TLS: the server refused the handshake (alert sslv3_alert_handshake_failure); it may "
                "require a client certificate (cert=) or a TLS version or cipher this client does not offer",
                sent=False,
                retryable=False,
            )
    return None


def _verification_fix(detail: str) -> str:
    lowered = detail.lower()
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return "the certificate does not name this host: check base_url"
    if "expired" in lowered or "not yet valid" in lowered:
        return "the server's certificate is outside its validity period (or this machine's clock is wrong)"
    return (
        "if the server uses a private CA (a test server, the simulator's --tls-dir), pass "
        "ca_file= with that CA's certificate; verification is never switched off"
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and its causes (``__cause__``, ``__context__``, aiohttp's ``certificate_error``)."""
    seen: set[int] = set()
    pending = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (
            current.__cause__,
            current.__context__,
            getattr(current, "certificate_error", None),
            getattr(current, "os_error", None),
        ):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _reason(error: BaseException) -> str:
    reason = getattr(error, "reason", None) if isinstance(error, ssl.SSLError) else None
    if isinstance(reason, str) and reason:
        return reason
    found = _REASON.search(str(error))
    return found.group(1) if found else ""


def _short(text: str) -> str:
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    text = text.split("[SSL: CERTIFICATE_VERIFY_FAILED] ", 1)[-1]
    return text.removeprefix("certificate verify failed: ")
