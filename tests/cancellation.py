"""Cancelling a running call the way each event loop's own users do (shared by the reliability and
ASGI suites)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest


async def cancel_natively_once_started(
    anyio_backend: str, started: anyio.Event, call: Callable[[], Awaitable[object]]
) -> None:
    """Runs ``call()`` and cancels it, once ``started`` is set, the way its own event loop's users
    do: asyncio's ``Task.cancel()`` (what ``asyncio.timeout`` and ``wait_for`` use, and what anyio's
    shield does not hold), trio's own cancel scope. On asyncio the cancellation must come out of
    the call."""
    if anyio_backend == "asyncio":
        import asyncio

        task = asyncio.ensure_future(call())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        import trio

        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await started.wait()
                scope.cancel()
        # Cancelled at its next checkpoint, or (when the refund's outcome was in hand and being
        # recorded under the shield) returned first: trio's shield holds, so either is honest.
