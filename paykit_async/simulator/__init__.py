"""A local stand-in for PAYJS, WeChat Pay v2 and v3, and eftPay — like stripe-mock or moto, for refunds.

One ASGI app serves the providers under ``/wechatpay``, ``/wechatpay-v3``, ``/payjs`` and ``/eftpay``. It
verifies request signatures, signs its replies, keeps a ledger with each provider's refund rules,
completes refunds asynchronously, POSTs notifications with redelivery, and injects faults from a
seeded RNG. Run it in process (``Simulator.transport()``), with ``paykit simulator serve``, or
through the pytest fixture in :mod:`paykit_async.simulator.pytest_plugin`.
"""

from .clock import ManualClock, SimulatorClock, SystemClock
from .config import (
    DEMO_EFTPAY,
    DEMO_PAYJS,
    DEMO_WECHATPAY,
    DEMO_WECHATPAY_V3,
    EftPayMerchant,
    PayJSMerchant,
    SimulatorConfig,
    WeChatPayMerchant,
    WeChatPayV3Merchant,
    load_config,
)
from .core import IN_PROCESS_BASE_URL, Simulator
from .faults import FaultKind, FaultPlan, FaultRule
from .ledger import LedgerSnapshot, OrderView, RefundView
from .notifications import Delivery
from .state import RequestRecord
from .wechatpay_v3 import WeChatPayV3Keys

__all__ = [
    "DEMO_EFTPAY",
    "DEMO_PAYJS",
    "DEMO_WECHATPAY",
    "DEMO_WECHATPAY_V3",
    "IN_PROCESS_BASE_URL",
    "Delivery",
    "EftPayMerchant",
    "FaultKind",
    "FaultPlan",
    "FaultRule",
    "LedgerSnapshot",
    "ManualClock",
    "OrderView",
    "PayJSMerchant",
    "RefundView",
    "RequestRecord",
    "Simulator",
    "SimulatorClock",
    "SimulatorConfig",
    "SystemClock",
    "WeChatPayMerchant",
    "WeChatPayV3Keys",
    "WeChatPayV3Merchant",
    "load_config",
]
