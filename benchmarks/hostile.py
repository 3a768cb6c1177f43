"""Hostile bodies at the size caps: how long each remote-facing parser takes to answer.

Every body here is refused (or parsed) — the point is how fast, on the worst shapes found while
fixing issue 12: the XML cap is 256 KiB, the reply cap 1 MiB. Prints one row per shape with the
time at half the cap, at the cap, and their ratio (about 2 means linear). Run from the
repository root::

    python -m benchmarks.hostile            # best of 5 runs per body
    python -m benchmarks.hostile --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

from paykit_async import EftPayClient, PayJSClient, PaykitError, WeChatPayClient
from paykit_async.codecs.form import decode_form
from paykit_async.codecs.json import decode_json_value
from paykit_async.codecs.xml import MAX_XML_BYTES, decode_xml

REPLY_CAP = 1 << 20

_WECHAT = WeChatPayClient("wx8888888888888888", "1900000109", "k" * 32, base_url="http://127.0.0.1:9")
_PAYJS = PayJSClient("1230000109", "payjs-key", base_url="http://127.0.0.1:9")
_EFTPAY = EftPayClient("S0003469", "eft-secret", base_url="http://127.0.0.1:9")


def fill(prefix: bytes, unit: bytes, suffix: bytes, size: int) -> bytes:
    """``prefix + unit * k + suffix`` of at most ``size`` bytes."""
    return prefix + unit * max(1, (size - len(prefix) - len(suffix)) // len(unit)) + suffix


# (parser name, parse, shape name, body of a given size, the parser's cap)
CASES: list[tuple[str, Callable[[bytes], object], str, Callable[[int], bytes], int]] = [
    (
        "decode_xml",
        decode_xml,
        "<a><![CDATA[ repeated (issue 12)",
        lambda n: fill(b"<xml>", b"<a><![CDATA[", b"</xml>", n),
        MAX_XML_BYTES,
    ),
    (
        "decode_xml",
        decode_xml,
        "CDATA of ]",
        lambda n: fill(b"<xml><a><![CDATA[", b"]", b"</a></xml>", n),
        MAX_XML_BYTES,
    ),
    (
        "decode_xml",
        decode_xml,
        "unclosed CDATA text",
        lambda n: fill(b"<xml><a><![CDATA[", b"x", b"</xml>", n),
        MAX_XML_BYTES,
    ),
    ("decode_xml", decode_xml, "whitespace", lambda n: fill(b"<xml>", b" ", b"</xml>", n), MAX_XML_BYTES),
    (
        "decode_xml",
        decode_xml,
        "character references",
        lambda n: fill(b"<xml><a>", b"&#x41;", b"</a></xml>", n),
        MAX_XML_BYTES,
    ),
    (
        "WeChat parse_refund_notification",
        _WECHAT.parse_refund_notification,
        "<a><![CDATA[ repeated",
        lambda n: fill(b"<xml>", b"<a><![CDATA[", b"</xml>", n),
        MAX_XML_BYTES,
    ),
    ("decode_json", decode_json_value, "[ repeated (issue 12)", lambda n: b"[" * n, REPLY_CAP),
    ("decode_json", decode_json_value, "[] repeated", lambda n: b"[]" * (n // 2), REPLY_CAP),
    (
        "decode_json",
        decode_json_value,
        'unterminated \\" escapes',
        lambda n: fill(b'["', b'\\"', b"", n),
        REPLY_CAP,
    ),
    (
        "decode_json",
        decode_json_value,
        "\\ud800 escapes",
        lambda n: fill(b'{"a":"', b"\\ud800", b'"}', n),
        REPLY_CAP,
    ),
    ("eftPay parse_notification", _EFTPAY.parse_notification, "[ repeated", lambda n: b"[" * n, REPLY_CAP),
    ("decode_form", decode_form, "a=1& repeated", lambda n: fill(b"", b"a=1&", b"", n), REPLY_CAP),
    (
        "PAYJS parse_notification",
        _PAYJS.parse_notification,
        "a=1& repeated",
        lambda n: fill(b"", b"a=1&", b"", n),
        REPLY_CAP,
    ),
]


def _best(parse: Callable[[bytes], object], body: bytes, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(PaykitError):
            parse(body)
        best = min(best, time.perf_counter() - start)
    return best


def run(repeat: int = 5) -> list[tuple[str, str, int, float, float]]:
    """Rows of (parser, shape, cap, ms at half the cap, ms at the cap)."""
    rows = []
    for parser, parse, shape, make, cap in CASES:
        half = _best(parse, make(cap // 2), repeat)
        full = _best(parse, make(cap), repeat)
        rows.append((parser, shape, cap, half * 1e3, full * 1e3))
    return rows


def table(rows: list[tuple[str, str, int, float, float]]) -> str:
    lines = [
        "| Parser | Body shape | Cap | ms at cap/2 | ms at cap | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for parser, shape, cap, half, full in rows:
        lines.append(
            f"| {parser} | {shape} | {cap // 1024} KiB | {half:.2f} | {full:.2f} | {full / half:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    print(table(run(parser.parse_args().repeat)))


if __name__ == "__main__":
    main()
