"""Signers against every known-answer vector in the shared specs and against independent code.

The independent signatures are computed inline with hashlib/hmac from the written rules, and
WeChat's are also cross-checked with wechatpy, another implementation.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from decimal import Decimal

import pytest
from wechatpy.pay.utils import calculate_signature, calculate_signature_hmac

from paykit_async import SignatureError
from paykit_async.signing import (
    KeyedHmacSha256Signer,
    KeyedMd5Signer,
    PrefixedSha256Signer,
    Signer,
    canonical_string,
    constant_time_equal,
    is_blank,
    is_php_empty,
)

from ..spec_vectors import (
    EFTPAY_FIELDS,
    EFTPAY_SECRET,
    EFTPAY_SHA256,
    PAYJS_FIELDS,
    PAYJS_KEY,
    PAYJS_MD5,
    WECHAT_FIELDS,
    WECHAT_HMAC_SHA256,
    WECHAT_KEY,
    WECHAT_MD5,
)

# --- known answers from /work/shared/specs (tests/spec_vectors.py) -----------------------------


def test_wechat_md5_known_answer() -> None:
    assert KeyedMd5Signer(key=WECHAT_KEY).sign(WECHAT_FIELDS) == WECHAT_MD5


def test_wechat_hmac_sha256_known_answer() -> None:
    assert KeyedHmacSha256Signer(key=WECHAT_KEY).sign(WECHAT_FIELDS) == WECHAT_HMAC_SHA256


def test_payjs_known_answer() -> None:
    assert canonical_string(PAYJS_FIELDS, is_empty=is_php_empty) == "test=123&test2=hehe"
    signer = KeyedMd5Signer(key=PAYJS_KEY, is_empty=is_php_empty)
    assert signer.sign(PAYJS_FIELDS) == PAYJS_MD5


def test_eftpay_known_answer() -> None:
    assert PrefixedSha256Signer(secret=EFTPAY_SECRET).sign(EFTPAY_FIELDS) == EFTPAY_SHA256


# --- independent computations -----------------------------------------------------------------

REFUND = {
    "appid": "wx2421b1c4370ec43b",
    "mch_id": "10000100",
    "nonce_str": "6cefdb308e1e2e8aabd48cf79e546a02",
    "out_refund_no": "1415701182",
    "out_trade_no": "1415757673",
    "refund_fee": "1",
    "total_fee": "1",
    "refund_desc": "商品已售完 😀",
    "sign_type": "HMAC-SHA256",
    "attach": "",
    "coupon_refund_fee_0": "0",
}
EXPECTED_STRING_A = (
    "appid=wx2421b1c4370ec43b&coupon_refund_fee_0=0&mch_id=10000100"
    "&nonce_str=6cefdb308e1e2e8aabd48cf79e546a02&out_refund_no=1415701182&out_trade_no=1415757673"
    "&refund_desc=商品已售完 😀&refund_fee=1&sign_type=HMAC-SHA256&total_fee=1"
)
KEY = "bd7d7a2c0bd5b4c71e1f1d0f8a4e3c2b"


def _md5_upper(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest().upper()


def test_wechat_string_a_is_sorted_raw_and_keeps_zero() -> None:
    assert canonical_string(REFUND) == EXPECTED_STRING_A


def test_wechat_md5_matches_independent_hashlib_and_wechatpy() -> None:
    expected = _md5_upper(f"{EXPECTED_STRING_A}&key={KEY}")
    assert KeyedMd5Signer(key=KEY).sign(REFUND) == expected
    assert calculate_signature(REFUND, KEY) == expected


def test_wechat_hmac_matches_independent_hmac_and_wechatpy() -> None:
    expected = (
        hmac.new(KEY.encode(), f"{EXPECTED_STRING_A}&key={KEY}".encode(), hashlib.sha256).hexdigest().upper()
    )
    assert KeyedHmacSha256Signer(key=KEY).sign(REFUND) == expected
    assert calculate_signature_hmac(REFUND, KEY) == expected


def test_sign_field_is_left_out_of_the_signature() -> None:
    signer = KeyedMd5Signer(key=KEY)
    assert signer.sign({**REFUND, "sign": "ANYTHING"}) == signer.sign(REFUND)


def test_names_sort_case_sensitively_in_code_point_order() -> None:
    fields = {"paytype": "d", "payment_type": "c", "pay_scene": "b", "payType": "a"}
    assert canonical_string(fields) == "payType=a&pay_scene=b&payment_type=c&paytype=d"


def test_eftpay_prepends_the_secret_without_separator_lowercase_hex() -> None:
    fields = {"b": "2", "a": "1", "empty": "", "none": None, "zero": "0"}
    expected = hashlib.sha256(b"s3cr3ta=1&b=2&zero=0").hexdigest()
    assert PrefixedSha256Signer(secret="s3cr3t").sign(fields) == expected
    assert expected == expected.lower()


def test_payjs_drops_php_empty_values_and_keeps_spaces_raw() -> None:
    fields = {
        "mchid": "1230000109",
        "payjs_order_id": "2019 0101",
        "total_fee": 100,
        "auto": 0,
        "zero_text": "0",
        "empty": "",
        "none": None,
        "off": False,
        "on": True,
        "list": [],
    }
    string_a = "mchid=1230000109&on=1&payjs_order_id=2019 0101&total_fee=100"
    assert canonical_string(fields, is_empty=is_php_empty) == string_a
    expected = _md5_upper(f"{string_a}&key=payjs-key")
    assert KeyedMd5Signer(key="payjs-key", is_empty=is_php_empty).sign(fields) == expected


@pytest.mark.parametrize(
    ("value", "wechat_empty", "payjs_empty"),
    [
        (None, True, True),
        ("", True, True),
        ("0", False, True),
        (0, False, True),
        (False, False, True),
        (Decimal("0.00"), False, True),
        ([], False, True),
        ({}, False, True),
        (" ", False, False),
        ("00", False, False),
        ("0.0", False, False),
        ("false", False, False),
        (1, False, False),
    ],
)
def test_empty_rules(value: object, wechat_empty: bool, payjs_empty: bool) -> None:
    assert is_blank(value) is wechat_empty
    assert is_php_empty(value) is payjs_empty


def test_nested_reply_values_are_signed_in_php_bracket_form() -> None:
    fields = {
        "return_code": 1,
        "jsapi": {"appId": "wx1", "timeStamp": "1550000000", "nonceStr": "n", "package": "prepay_id=p"},
        "items": ["a", None, "b"],
        "msg": "ok",
    }
    string_a = (
        "items[0]=a&items[2]=b"
        "&jsapi[appId]=wx1&jsapi[timeStamp]=1550000000&jsapi[nonceStr]=n&jsapi[package]=prepay_id=p"
        "&msg=ok&return_code=1"
    )
    assert canonical_string(fields, is_empty=is_php_empty) == string_a
    signer = KeyedMd5Signer(key="k", is_empty=is_php_empty)
    assert signer.sign(fields) == _md5_upper(f"{string_a}&key=k")


# --- verify -----------------------------------------------------------------------------------

SIGNERS: list[Signer] = [
    KeyedMd5Signer(key=KEY),
    KeyedHmacSha256Signer(key=KEY),
    PrefixedSha256Signer(secret=KEY),
    KeyedMd5Signer(key=KEY, is_empty=is_php_empty),
]


@pytest.mark.parametrize("signer", SIGNERS, ids=lambda s: s.sign_type)
def test_verify_accepts_the_signature_in_either_hex_case(signer: Signer) -> None:
    signature = signer.sign(REFUND)
    assert signer.verify(REFUND, signature)
    assert signer.verify(REFUND, signature.lower())
    assert signer.verify(REFUND, signature.upper())
    assert signer.verify({**REFUND, "sign": signature}, signature)


def _tampered(fields: Mapping[str, str]) -> list[dict[str, str]]:
    return [
        {**fields, "refund_fee": "2"},
        {**fields, "out_refund_no": "1415701183"},
        {**fields, "new_field": "x"},
        {name: value for name, value in fields.items() if name != "out_trade_no"},
        {**fields, "refund_desc": fields["refund_desc"] + " "},
    ]


@pytest.mark.parametrize("signer", SIGNERS, ids=lambda s: s.sign_type)
def test_verify_rejects_tampered_fields_and_signatures(signer: Signer) -> None:
    signature = signer.sign(REFUND)
    for fields in _tampered(REFUND):
        assert not signer.verify(fields, signature)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    for bad in (flipped, signature[:-1], signature + "0", "", " " + signature, "é" * len(signature)):
        assert not signer.verify(REFUND, bad)
    other = type(signer)(**{_key_attr(signer): "another-key"})
    assert not other.verify(REFUND, signature)


def _key_attr(signer: Signer) -> str:
    return "secret" if isinstance(signer, PrefixedSha256Signer) else "key"


def test_constant_time_equal_semantics() -> None:
    assert constant_time_equal("ABCDEF", "abcdef")
    assert not constant_time_equal("ABCDEF", "ABCDE")
    assert not constant_time_equal("ABCDEF", "ABCDEG")
    assert not constant_time_equal("ABC", "ÀBC")


@pytest.mark.parametrize("letter", ["\ufb00", "\ufb01", "\ufb02", "\ufb03", "\u017f", "\u0131", "\u00df"])
def test_a_non_ascii_letter_whose_upper_case_is_ascii_never_matches(letter: str) -> None:
    # "\ufb00".upper() is "FF": a signature spelt with the ligature was believed as the hex one.
    hexed = letter.upper()
    assert not constant_time_equal(f"{hexed}0123", f"{letter}0123")
    assert not constant_time_equal(f"0123{hexed}", f"0123{letter}".lower())


@pytest.mark.parametrize("signer", SIGNERS, ids=lambda s: type(s).__name__)
def test_a_signature_spelt_with_a_ligature_does_not_verify(signer: Signer) -> None:
    fields = {"a": "1", "b": "2"}
    for n in range(200):  # a signature holding "FF" (or "ff"), the ligature's upper case
        fields["n"] = str(n)
        sign = signer.sign(fields)
        if "FF" in sign.upper():
            break
    at = sign.upper().index("FF")
    assert signer.verify(fields, sign)
    assert not signer.verify(fields, sign[:at] + "\ufb00" + sign[at + 2 :])


def test_constant_time_equal_goes_through_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    signer = KeyedMd5Signer(key=KEY)
    assert signer.verify(REFUND, signer.sign(REFUND).lower())
    assert len(calls) == 1


@pytest.mark.parametrize(
    "signer",
    [
        KeyedMd5Signer(key="sentinel-key-0001"),
        KeyedHmacSha256Signer(key="sentinel-key-0001"),
        PrefixedSha256Signer(secret="sentinel-key-0001"),
    ],
    ids=lambda s: s.sign_type,
)
def test_signer_repr_and_str_hide_the_key(signer: Signer) -> None:
    assert "sentinel-key-0001" not in repr(signer)
    assert "sentinel-key-0001" not in str(signer)


def test_sign_types() -> None:
    assert [s.sign_type for s in SIGNERS] == ["MD5", "HMAC-SHA256", "SHA256", "MD5"]
    assert all(isinstance(s, Signer) for s in SIGNERS)


# --- verify_reading: the re-split rule, once, in the signers -----------------------------------

_READING_SIGNERS = [
    KeyedMd5Signer(key=KEY),
    KeyedHmacSha256Signer(key=KEY),
    PrefixedSha256Signer(secret=KEY),
    KeyedMd5Signer(key=KEY, is_empty=is_php_empty),
    PrefixedSha256Signer(secret=KEY, is_empty=lambda _value: False),  # eftPay's all-fields rule
]


@pytest.mark.parametrize("signer", _READING_SIGNERS, ids=lambda s: f"{s.sign_type}")
def test_verify_reading_believes_a_signed_string_only_as_its_one_reading(
    signer: KeyedMd5Signer | KeyedHmacSha256Signer | PrefixedSha256Signer,
) -> None:
    plain = {**REFUND, "refund_desc": "Tom & Jerry=cats"}  # holds "&" but cannot be re-split
    assert signer.verify_reading(plain, signer.sign(plain))
    assert not signer.verify_reading(plain, signer.sign(REFUND))  # a bare mismatch is just False
    smuggling = {**REFUND, "refund_desc": "x&total_fee=9999&zz="}
    signature = signer.sign(smuggling)
    assert signer.verify(smuggling, signature)  # the bare check cannot see it...
    with pytest.raises(SignatureError, match=r"^the reply: .*ambiguous.*refund_desc"):
        signer.verify_reading(smuggling, signature, what="the reply")  # ...the reading can
    odd_name = {**REFUND, "a=b": "v"}
    with pytest.raises(SignatureError, match="ambiguous"):
        signer.verify_reading(odd_name, signer.sign(odd_name))


def test_verify_reading_judges_emptiness_by_the_signer_s_own_rule() -> None:
    # A field that is empty under the signer's rule is not in the signed string, so its name
    # cannot re-split it; under eftPay's all-fields rule the same field is signed ("a b=").
    fields = {"a": "1", "a b": ""}
    for signer in (KeyedMd5Signer(key=KEY), PrefixedSha256Signer(secret=KEY)):
        assert signer.verify_reading(fields, signer.sign(fields))
    all_fields = PrefixedSha256Signer(secret=KEY, is_empty=lambda _value: False)
    with pytest.raises(SignatureError, match="ambiguous"):
        all_fields.verify_reading(fields, all_fields.sign(fields))
    php = {"a": "1", "a b": "0"}  # "0" is empty to PHP's array_filter (PAYJS) only
    payjs = KeyedMd5Signer(key=KEY, is_empty=is_php_empty)
    assert payjs.verify_reading(php, payjs.sign(php))
    with pytest.raises(SignatureError, match="ambiguous"):
        KeyedMd5Signer(key=KEY).verify_reading(php, KeyedMd5Signer(key=KEY).sign(php))
