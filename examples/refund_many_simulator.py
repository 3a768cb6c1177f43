"""Refund 500 WeChat Pay orders concurrently with refund_many, against the in-process simulator.

Runs with no configuration and no network:  python examples/refund_many_simulator.py
Swap the simulator's base_url/transport for your merchant's settings to do it for real.
"""

from __future__ import annotations

from collections import Counter

import anyio

from paykit_async.batch import BatchStatus, count_attempts, refund_many
from paykit_async.providers.wechatpay import WeChatPayClient
from paykit_async.simulator import DEMO_WECHATPAY, FaultPlan, FaultRule, Simulator, SimulatorConfig


async def main() -> None:
    # A simulator where 2% of requests are dropped after the work is done (the reply is lost).
    simulator = Simulator(SimulatorConfig(faults=FaultPlan(seed=1, rules=(FaultRule(drop_after=0.02),))))
    requests = []
    for i in range(500):
        simulator.add_wechatpay_order(f"ORDER{i:05d}", 1000)
        requests.append({"out_trade_no": f"ORDER{i:05d}", "total_fee": 1000, "refund_fee": 1000})

    async with WeChatPayClient(
        DEMO_WECHATPAY.appid,
        DEMO_WECHATPAY.mch_id,
        DEMO_WECHATPAY.api_key,
        base_url=simulator.base_url("wechatpay"),
        transport=simulator.transport(),
        middleware=[count_attempts],  # lets each outcome report its number of attempts
    ) as client:
        statuses: Counter[BatchStatus] = Counter()
        async with refund_many(client, requests, concurrency=32, rate=150) as outcomes:
            async for outcome in outcomes:
                statuses[outcome.status] += 1
                if outcome.status is not BatchStatus.SUCCEEDED:
                    # Keep outcome.refund_no: an unknown refund is settled under that number.
                    print(outcome.index, outcome.status.value, outcome.refund_no, outcome.error_message)

    print({status.value: count for status, count in statuses.items()})
    print("duplicate payouts in the ledger:", simulator.snapshot().duplicate_payouts)


if __name__ == "__main__":
    anyio.run(main)
