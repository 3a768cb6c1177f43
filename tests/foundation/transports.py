"""Helpers to run one transport test on every (event loop, transport) pair that is supported."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from paykit_async.transport import HttpxTransport, Transport
from paykit_async.transport.aiohttp_transport import AiohttpTransport

TRANSPORTS: dict[str, Callable[[], Transport]] = {
    "httpx": HttpxTransport,
    "aiohttp": AiohttpTransport,
}

#: httpx on asyncio and trio; aiohttp on asyncio only.
EVERY_LOOP_AND_TRANSPORT = pytest.mark.parametrize(
    ("anyio_backend", "transport_name"),
    [
        ("asyncio", "httpx"),
        ("trio", "httpx"),
        pytest.param("asyncio", "aiohttp", marks=pytest.mark.asyncio_only),
    ],
)
