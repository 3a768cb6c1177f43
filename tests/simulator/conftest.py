"""The simulator suites' shared fixture: an httpx client on the module's ``sim`` fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from paykit_async.simulator import Simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on ``sim``'s in-process transport (each module defines ``sim``)."""
    async with httpx.AsyncClient(transport=sim.httpx_transport(), base_url="http://sim") as client:
        yield client
