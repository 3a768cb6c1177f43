"""Transports: the wire types, the ``Transport`` protocol, TLS material and the implementations."""

from .aiohttp_transport import AiohttpTransport
from .base import Transport
from .httpx_transport import HttpxTransport
from .tls import ClientCertificate, build_ssl_context
from .wire import Timeouts, TransportSettings, WireRequest, WireResponse

__all__ = [
    "AiohttpTransport",
    "ClientCertificate",
    "HttpxTransport",
    "Timeouts",
    "Transport",
    "TransportSettings",
    "WireRequest",
    "WireResponse",
    "build_ssl_context",
]
