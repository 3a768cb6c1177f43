"""The transport seam: a small protocol every way of sending bytes implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import ValidationError
from .wire import TransportSettings, WireRequest, WireResponse

__all__ = ["Transport", "already_configured"]


@runtime_checkable
class Transport(Protocol):
    """Sends one request and returns the whole response.

    ``configure`` is called once by the owning client before the first ``send``; it builds the
    TLS context and connection pool from the client's settings. ``send`` raises
    :class:`~paykit_async.errors.TransportError` for every network or TLS failure — never a raw
    ``OSError``, ``ssl.SSLError`` or library exception.
    """

    def configure(self, settings: TransportSettings) -> None: ...

    async def send(self, request: WireRequest) -> WireResponse: ...

    async def aclose(self) -> None: ...


def already_configured(current: TransportSettings | None, new: TransportSettings) -> bool:
    """Whether ``configure(new)`` has nothing to do; refuses to re-bind to other settings.

    A transport holds one client's certificate and pool: sharing it between clients with
    different settings would silently send one merchant's certificate for another.
    """
    if current is None:
        return False
    if new == current:
        return True
    raise ValidationError("this transport is already configured for another client; give each client its own")
