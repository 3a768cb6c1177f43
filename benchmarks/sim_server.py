"""The paykit simulator served by uvicorn over mutual TLS, in its own process.

``python -m benchmarks.sim_server --tls-dir DIR --port N`` prints ``PORT <n>`` once uvicorn is
listening. The WeChat Pay merchant uses the benchmark credentials and orders are created on
first use (``auto_orders``), so every refund is real simulator work: signature check, ledger
rules, a signed reply.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path


async def serve(tls_dir: Path, port: int) -> None:
    from paykit_async.simulator import Simulator, SimulatorConfig, WeChatPayMerchant
    from paykit_async.simulator.serve import TLSMaterial, build_server

    from .fixtures import WECHAT_API_KEY, WECHAT_APPID, WECHAT_MCH_ID

    config = SimulatorConfig(
        auto_orders=True,
        wechatpay=WeChatPayMerchant(appid=WECHAT_APPID, mch_id=WECHAT_MCH_ID, api_key=WECHAT_API_KEY),
    )
    tls = TLSMaterial(
        ca_file=str(tls_dir / "ca.pem"),
        server_cert_file=str(tls_dir / "server.pem"),
        server_key_file=str(tls_dir / "server.key"),
        client_cert_file=str(tls_dir / "client.pem"),
        client_key_file=str(tls_dir / "client.key"),
    )
    server = build_server(Simulator(config), port=port, tls=tls, log_level="warning")
    server.config.access_log = False
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            return
        await asyncio.sleep(0.05)
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tls-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.tls_dir, args.port))


if __name__ == "__main__":
    main()
