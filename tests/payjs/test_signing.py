"""PAYJS signing by known answers: the spec's vector and vectors computed inline with hashlib."""

from __future__ import annotations

import hashlib

import pytest

from paykit_async.providers.payjs import make_signer
from paykit_async.signing import canonical_string, is_php_empty

from .payjs_fixtures import php_sign


def md5_upper(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def test_spec_vector() -> None:
    fields = {"test": 123, "test2": "hehe"}
    assert md5_upper("test=123&test2=hehe&key=test_key") == "B16319F0C3F2BBDA5CB8B4FFC9048A81"
    assert make_signer("test_key").sign(fields) == "B16319F0C3F2BBDA5CB8B4FFC9048A81"
    assert make_signer("test_key").verify(fields, "b16319f0c3f2bbda5cb8b4ffc9048a81")


@pytest.mark.parametrize(
    ("fields", "expected_string"),
    [
        # PHP array_filter drops "0", 0, "", None and False — but "00" and "0.0" stay.
        (
            {"mchid": "1234", "payjs_order_id": "A1", "auto": "0", "hide": 0, "attach": "", "x": None},
            "mchid=1234&payjs_order_id=A1",
        ),
        ({"a": False, "b": True, "c": "00", "d": "0.0"}, "b=1&c=00&d=0.0"),
        # Raw values: a space stays a space, "+" stays "+", nothing is URL-encoded.
        ({"body": "gift card+1", "mchid": "1234"}, "body=gift card+1&mchid=1234"),
        ({"body": "a&b=c 100%", "attach": "中文"}, "attach=中文&body=a&b=c 100%"),
        # Case-sensitive ASCII sort: upper case before lower case.
        ({"b": "2", "B": "1", "a": "3"}, "B=1&a=3&b=2"),
        # Nested reply objects in PHP bracket form, inner keys in the order received.
        (
            {"return_code": 1, "jsapi": {"appId": "wx1", "timeStamp": "15", "package": "prepay_id=p"}},
            "jsapi[appId]=wx1&jsapi[timeStamp]=15&jsapi[package]=prepay_id=p&return_code=1",
        ),
    ],
)
def test_vectors_computed_with_hashlib(fields: dict[str, object], expected_string: str) -> None:
    key = "k-9f8e7d"
    expected = md5_upper(f"{expected_string}&key={key}")
    assert canonical_string(fields, is_empty=is_php_empty) == expected_string
    assert make_signer(key).sign(fields) == expected
    assert php_sign(fields, key) == expected  # the fixture signer agrees with the literal


def test_pinned_hex_for_zero_and_space_vector() -> None:
    # Literal hex (computed once with hashlib) so a matching change in code and helper is caught.
    fields = {"mchid": "1234", "payjs_order_id": "A1", "auto": "0", "body": "a b+c"}
    assert md5_upper("body=a b+c&mchid=1234&payjs_order_id=A1&key=k") == "EDE8503F7243AB5BF4A317EAC0F1C9B1"
    assert make_signer("k").sign(fields) == "EDE8503F7243AB5BF4A317EAC0F1C9B1"


def test_the_seed_sample_is_wrong_for_spaces() -> None:
    # The seed's Python sample signs unquote(urlencode(...)), which turns a space into "+".
    from urllib.parse import unquote, urlencode

    fields = {"body": "a b", "mchid": "1234"}
    seed_style = md5_upper(unquote(urlencode(fields)) + "&key=k")
    assert make_signer("k").sign(fields) != seed_style
    assert make_signer("k").sign(fields) == md5_upper("body=a b&mchid=1234&key=k")


def test_verify_refuses_wrong_and_non_ascii_signatures() -> None:
    signer = make_signer("k")
    fields = {"mchid": "1234"}
    good = md5_upper("mchid=1234&key=k")
    assert signer.verify(fields, good)
    assert not signer.verify(fields, good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not signer.verify(fields, "")
    assert not signer.verify(fields, "é" * 32)
    assert not make_signer("other").verify(fields, good)
