"""The suite's inline reference signers reproduce the specs' known answers.

Every "a forged or altered message is refused" test here signs its genuine messages with
``support``'s own hashlib/hmac code; these vectors (from /work/shared/specs) anchor that code
to the providers' rules rather than to the library under test.
"""

from __future__ import annotations

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
from .support import eft_sign, payjs_sign, wechat_hmac_sign, wechat_sign


def test_wechat_reference_signers_match_the_spec_vectors() -> None:
    assert wechat_sign(WECHAT_FIELDS, WECHAT_KEY) == WECHAT_MD5
    assert wechat_hmac_sign(WECHAT_FIELDS, WECHAT_KEY) == WECHAT_HMAC_SHA256


def test_payjs_reference_signer_matches_the_spec_vector() -> None:
    assert payjs_sign(PAYJS_FIELDS, PAYJS_KEY) == PAYJS_MD5


def test_eftpay_reference_signer_matches_the_spec_vector() -> None:
    assert eft_sign(EFTPAY_FIELDS, EFTPAY_SECRET) == EFTPAY_SHA256
