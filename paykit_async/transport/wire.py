"""What goes over the wire: one request, one response, and the settings a transport is given."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from .tls import ClientCertificate

__all__ = ["Timeouts", "TransportSettings", "WireRequest", "WireResponse"]

#: Replies larger than this are refused; provider replies are a few kilobytes.
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20


@attrs.frozen(kw_only=True)
class WireRequest:
    """An encoded, signed HTTP request ready to send."""

    method: str = "POST"
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes = b""


@attrs.frozen(kw_only=True)
class WireResponse:
    """A complete HTTP response. Header names are lower-case."""

    status_code: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes = b""


@attrs.frozen(kw_only=True)
class Timeouts:
    """Per-request timeouts in seconds. ``total`` bounds one attempt end to end."""

    connect: float = 5.0
    read: float = 15.0
    write: float = 15.0
    pool: float = 30.0
    total: float | None = 30.0


@attrs.frozen(kw_only=True)
class TransportSettings:
    """What a client hands its transport: TLS material, timeouts and limits.

    Users never build SSL contexts: the transport builds exactly one from these settings.
    """

    certificate: ClientCertificate | None = None
    ca_file: str | None = None
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    max_connections: int = 100
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
