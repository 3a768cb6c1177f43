"""Reading an HTTP ``Retry-After`` header: the ground floor below errors and the retry layer.

It imports nothing from the package, so :mod:`paykit_async.errors` can use it without a cycle.
"""

from __future__ import annotations

import datetime
import email.utils
import re
import time

__all__ = ["parse_retry_after"]

#: Longer hints than this (a year) are treated as this; the policy caps them much lower anyway.
_LONGEST_HINT = 365.0 * 24 * 3600


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date); None if unusable.

    Empty, negative, non-finite and unparseable values give None; past dates give 0; huge values
    are clamped to a year (the retry policy caps hints far lower). Fractional seconds are accepted.
    A date without a zone is read as GMT, which HTTP dates always are.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(text), _LONGEST_HINT)
    if not _HTTP_DATE_START.match(text):
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return min(_LONGEST_HINT, max(0.0, when.timestamp() - current))


_DELTA_SECONDS = re.compile(r"[0-9]{1,30}(\.[0-9]{1,9})?", re.ASCII)
_HTTP_DATE_START = re.compile(r"[A-Za-z]{3,9},? ", re.ASCII)
