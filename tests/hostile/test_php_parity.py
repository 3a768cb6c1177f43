"""PAYJS signs with PHP: ``json_decode`` then ``http_build_query`` + ``urldecode`` (issue 12,
finding 8). Known answers below are worked by hand from PHP's documented rules:

* ``http_build_query`` writes ``true`` as ``1`` and ``false`` as ``0`` inside arrays, skips
  ``null`` and keeps ``""`` as ``key=``; top-level empties were already dropped by
  ``array_filter`` (``""``, ``0``, ``0.0``, ``"0"``, ``false``, ``null``, ``[]``);
* ``json_decode`` turns a number with a fraction or exponent into a float, and an integer
  beyond PHP_INT_MAX into a float; a float is written with the ``precision`` ini setting (14):
  ``%.14G``-style, trailing zeros dropped, exponent form ``1.0E+25`` when the decimal exponent is
  below -4 or at least 15 (``php_gcvt``).
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

import anyio
import pytest

from paykit_async.signing import canonical_string, is_php_empty, php_float

from .support import PAYJS_KEY, always, payjs_client


@pytest.mark.parametrize(
    ("value", "php"),
    [
        (Decimal("1.0"), "1"),
        (Decimal("1.50"), "1.5"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.1"), "0.1"),
        (0.1 + 0.2, "0.3"),
        (Decimal("-2.5"), "-2.5"),
        (Decimal("0.0"), "0"),
        (Decimal("-0.0"), "-0"),
        (Decimal("1E+13"), "10000000000000"),
        (Decimal("1E+14"), "1.0E+14"),
        (Decimal("1E+15"), "1.0E+15"),
        (Decimal("1.5E+20"), "1.5E+20"),
        (Decimal("0.0001"), "0.0001"),
        (Decimal("0.00001"), "1.0E-5"),
        (Decimal("1.25E-5"), "1.25E-5"),
        (Decimal("3.14159265358979"), "3.1415926535898"),
        (Decimal("123456789.123456789"), "123456789.12346"),
        (Decimal("99999999999999.9"), "1.0E+14"),
        (2**63, "9.2233720368548E+18"),
        (Decimal("1E400"), "INF"),
        (Decimal("-1E400"), "-INF"),
        (Decimal("NaN"), "NAN"),
        (Decimal("sNaN"), "NAN"),  # float() would raise a bare ValueError (found by hypothesis)
    ],
)
def test_php_float_known_answers(value: Decimal | float | int, php: str) -> None:
    assert php_float(value) == php


def test_nested_false_and_fractions_render_as_php() -> None:
    fields = {
        "return_code": 1,
        "n": {"f": False, "t": True, "z": 0, "e": "", "nul": None, "x": Decimal("1.50")},
        "l": [False, True],
        "amount": Decimal("1.0"),
        "e": Decimal("1E+2"),
        "big": 2**63,
        "int64": 2**63 - 1,
        "zero": Decimal("0.0"),
        "b": False,
        "empty": [],
        "sign": "x",
    }
    expected = (
        "amount=1&big=9.2233720368548E+18&e=100&int64=9223372036854775807&l[0]=0&l[1]=1"
        "&n[f]=0&n[t]=1&n[z]=0&n[e]=&n[x]=1.5&return_code=1"
    )
    assert canonical_string(fields, is_empty=is_php_empty) == expected


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_payjs_reply_with_nested_false_and_fractions_verifies(backend: str) -> None:
    body_without_sign = (
        '{"return_code":1,"payjs_order_id":"P1","return_msg":"ok",'
        '"jsapi":{"appId":"wx1","debug":false,"fee":1.50},"rate":1.0,"big":1e2'
    )
    # What PAYJS's PHP code signs for that body, written out by hand from the rules above.
    php_string = (
        "big=100&jsapi[appId]=wx1&jsapi[debug]=0&jsapi[fee]=1.5&payjs_order_id=P1&rate=1&return_code=1"
    )
    php_string += "&return_msg=ok"
    sign = hashlib.md5(f"{php_string}&key={PAYJS_KEY}".encode()).hexdigest().upper()
    body = f'{body_without_sign},"sign":"{sign}"}}'.encode()

    async def main() -> None:
        async with payjs_client(always(200, body)) as client:
            result = await client.close(payjs_order_id="P1")
            assert result.raw["jsapi"]["fee"] == Decimal("1.50")

    anyio.run(main, backend=backend)
