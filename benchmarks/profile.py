"""Profile the hot path: one WeChat refund through the client with an in-memory transport.

``python -m benchmarks --profile`` (or ``python -m benchmarks.profile [--pyinstrument]``) prints
the functions where the time goes, by own time, from cProfile (or a pyinstrument tree).
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import fixtures as fx
from .cost import REFUND_NO, CannedTransport, wechat_client, wechat_refund

__all__ = ["main", "profile_refunds"]


async def _refunds(count: int) -> None:
    from paykit_async import ClientCertificate

    with tempfile.TemporaryDirectory() as directory:
        tls = fx.make_tls_material(Path(directory))
        cert = ClientCertificate.from_pem(tls.client_cert_file, tls.client_key_file)
    async with wechat_client(cert, CannedTransport(fx.wechat_refund_reply(REFUND_NO))) as client:
        for _ in range(200):
            await wechat_refund(client)
        profiler: Any = _PROFILER[0]
        profiler.enable()
        for _ in range(count):
            await wechat_refund(client)
        profiler.disable()


_PROFILER: list[Any] = []


def profile_refunds(count: int = 20_000, *, top: int = 35, use_pyinstrument: bool = False) -> str:
    """Run ``count`` refunds under the profiler and return the report text."""
    if use_pyinstrument:
        from pyinstrument import Profiler

        profiler: Any = Profiler(interval=0.0001, async_mode="disabled")
        _PROFILER[:] = [profiler]
        asyncio.run(_refunds(count))
        return str(profiler.output_text(unicode=True, color=False, show_all=False))
    profiler = cProfile.Profile()
    _PROFILER[:] = [profiler]
    asyncio.run(_refunds(count))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    use_pyinstrument = "--pyinstrument" in sys.argv
    sys.stdout.write(profile_refunds(use_pyinstrument=use_pyinstrument))


if __name__ == "__main__":
    main()
