"""The Retry-After parser, as a table: delta-seconds, HTTP dates, garbage, negative, huge, empty."""

from __future__ import annotations

import calendar

import pytest

from paykit_async.pipeline.retry import parse_retry_after

# 2026-11-22 03:00:00 GMT, computed independently of the parser.
NOW = float(calendar.timegm((2026, 11, 22, 3, 0, 0, 0, 0, 0)))
YEAR = 365.0 * 24 * 3600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        ("  120  ", 120.0),
        ("1.5", 1.5),
        ("007", 7.0),
        ("Sun, 22 Nov 2026 03:00:30 GMT", 30.0),
        ("Sunday, 22-Nov-26 03:01:00 GMT", 60.0),  # obsolete RFC 850 form
        ("Sun Nov 22 03:01:00 2026", 60.0),  # obsolete asctime form
        ("Sun, 22 Nov 2026 03:00:30", 30.0),  # no zone: HTTP dates are GMT
        ("Sun, 22 Nov 2026 02:59:00 GMT", 0.0),  # in the past
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("Mon, 22 Nov 2100 03:00:00 GMT", YEAR),  # far future: clamped
        ("99999999999999999999", YEAR),  # huge: clamped
        ("9" * 400, None),  # absurd: not a number we accept
        ("-1", None),
        ("-0.5", None),
        ("+5", None),
        ("1e3", None),
        ("inf", None),
        ("NaN", None),
        ("0x10", None),
        ("soon", None),
        ("5 seconds", None),
        ("Sun, 99 Nov 2026 03:00:30 GMT", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected
