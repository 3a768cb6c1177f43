"""``Retry-After`` is a header any server (or proxy) in the path can send: for any text the parser
gives a delay within a year or None — never an exception — in linear time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit_async.retry_after import parse_retry_after

from .support import HOSTILE, growth_ratio

YEAR = 365.0 * 24 * 3600
NOW = 1_795_000_000.0

_HEADER_TOKENS = st.sampled_from(
    [
        *("Sun,", "Sunday,", "Nov", "22", "2026", "03:00:30", "GMT", "+0800", "-9999", " ", "  ", "\t"),
        *("0", "7", "1.5", ".", "-", "+", "e9", "99999999999999999999", "inf", "NaN", ":", ",", "中", "\x00"),
    ]
)
_HEADERS = st.one_of(st.none(), st.text(max_size=200), st.lists(_HEADER_TOKENS, max_size=20).map("".join))


@HOSTILE
@given(_HEADERS, st.one_of(st.none(), st.floats(0, 4e9)))
def test_any_header_value_gives_a_bounded_delay_or_none(value: str | None, now: float | None) -> None:
    delay = parse_retry_after(value, now=now)
    assert delay is None or (isinstance(delay, float) and math.isfinite(delay) and 0.0 <= delay <= YEAR)


# Header values are bounded by the transports, but the parser must not be what makes a long one slow.
RETRY_AFTER_SHAPES = {
    "digits": lambda n: "9" * n,
    "date_then_spaces": lambda n: "Sun, " + " " * n + "22 Nov 2026 03:00:30 GMT",
    "date_then_words": lambda n: "Sun, " + "Nov " * (n // 4) + "GMT",
    "date_then_digits": lambda n: "Sun, 22 Nov " + "2" * n + " 03:00:30 GMT",
    "colons": lambda n: "Sun, 22 Nov 2026 " + "0:" * (n // 2) + "0 GMT",
}


@pytest.mark.parametrize("shape", sorted(RETRY_AFTER_SHAPES))
def test_parse_retry_after_time_grows_linearly(shape: str) -> None:
    ratio = growth_ratio(lambda value: parse_retry_after(value, now=NOW), RETRY_AFTER_SHAPES[shape], 1 << 20)
    assert ratio < 3.0, f"{shape}: doubling the header multiplied the time by {ratio:.2f}"
