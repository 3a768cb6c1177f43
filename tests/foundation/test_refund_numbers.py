"""Refund numbers: random ones are unique, derived ones are a documented function of identity."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from paykit_async import derive_refund_no, new_refund_no

WECHAT_ALPHABET = re.compile(r"[0-9A-Za-z_\-|*@]+")


def _by_the_documented_rule(provider: str, merchant: str, key: str, length: int) -> str:
    # Written from the docstring, independently of the implementation.
    digest = hashlib.sha256(f"{provider}\x00{merchant}\x00{key}".encode()).digest()
    return "K" + base64.b32encode(digest).decode()[: length - 1]


def test_known_answers() -> None:
    assert derive_refund_no(provider="wechatpay", merchant="10000100", key="order-1001:refund-1") == (
        "K6OPVELACV4YQ66CBVDP5LKCVM73PZWC"
    )
    assert derive_refund_no(provider="eftpay", merchant="12345678", key="order-1001:refund-1", length=28) == (
        "KN2DUCLCJVYPQGNBYTPH6UCHXFP6"
    )


@pytest.mark.parametrize(
    ("provider", "merchant", "key", "length"),
    [
        ("wechatpay", "10000100", "k", 32),
        ("wechatpay", "1900000109/1900000110", "批次:第1行", 32),
        ("eftpay", "12345678", "x" * 500, 28),
        ("wechatpay-v3", "1900000109", "", 32),
    ],
)
def test_derived_numbers_follow_the_rule_and_fit_every_alphabet(
    provider: str, merchant: str, key: str, length: int
) -> None:
    number = derive_refund_no(provider=provider, merchant=merchant, key=key, length=length)
    assert number == _by_the_documented_rule(provider, merchant, key, length)
    assert len(number) == length
    assert WECHAT_ALPHABET.fullmatch(number)
    assert number.isalnum()
    assert number == derive_refund_no(provider=provider, merchant=merchant, key=key, length=length)


def test_each_part_of_the_identity_changes_the_number() -> None:
    base = derive_refund_no(provider="wechatpay", merchant="1", key="k")
    assert base != derive_refund_no(provider="eftpay", merchant="1", key="k")
    assert base != derive_refund_no(provider="wechatpay", merchant="2", key="k")
    assert base != derive_refund_no(provider="wechatpay", merchant="1", key="k2")
    # The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert derive_refund_no(provider="p", merchant="ab", key="c") != derive_refund_no(
        provider="p", merchant="a", key="bc"
    )


def test_lengths_outside_the_safe_range_are_refused() -> None:
    with pytest.raises(ValueError, match="length"):
        derive_refund_no(provider="p", merchant="m", key="k", length=8)
    with pytest.raises(ValueError, match="length"):
        derive_refund_no(provider="p", merchant="m", key="k", length=64)


def test_random_numbers_are_unique_and_of_the_asked_length() -> None:
    numbers = {new_refund_no() for _ in range(2000)}
    assert len(numbers) == 2000
    assert {len(n) for n in numbers} == {32}
    assert len(new_refund_no(length=28)) == 28
