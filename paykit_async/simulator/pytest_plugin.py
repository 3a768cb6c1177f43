"""A pytest plugin with an in-process simulator fixture for users' test suites.

Enable it with ``pytest_plugins = ["paykit_async.simulator.pytest_plugin"]`` in ``conftest.py``.
The fixtures are async (anyio's pytest plugin runs them); override ``paykit_simulator_config`` to
change credentials, rules or faults::

    @pytest.fixture
    def paykit_simulator_config() -> SimulatorConfig:
        return SimulatorConfig(auto_orders=True, completion_delay=0.0)

    @pytest.mark.anyio
    async def test_refund(paykit_simulator: Simulator) -> None:
        async with WeChatPayClient(
            appid, mch_id, api_key,
            base_url=paykit_simulator.base_url("wechatpay"),
            transport=paykit_simulator.transport(),
        ) as client:
            ...
        assert paykit_simulator.snapshot().duplicate_payouts == 0
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .config import SimulatorConfig
from .core import Simulator

__all__ = ["paykit_simulator", "paykit_simulator_config"]


@pytest.fixture
def paykit_simulator_config() -> SimulatorConfig:
    """The configuration of :func:`paykit_simulator`: demo credentials, auto orders, instant completion."""
    return SimulatorConfig(auto_orders=True, completion_delay=0.0)


@pytest.fixture
async def paykit_simulator(paykit_simulator_config: SimulatorConfig) -> AsyncIterator[Simulator]:
    """An in-process :class:`Simulator` whose notification sender runs for the test's duration."""
    simulator = Simulator(paykit_simulator_config)
    async with simulator.running():
        yield simulator
