"""Pluggable signers and the canonical string they sign; SHA256-with-RSA for WeChat Pay API v3."""

from .base import Signer
from .canonical import EmptyRule, canonical_string, is_blank, is_php_empty
from .keyed import KeyedHmacSha256Signer, KeyedMd5Signer, constant_time_equal
from .prefixed import PrefixedSha256Signer
from .rsa import Sha256WithRsaSigner, Sha256WithRsaVerifier

__all__ = [
    "EmptyRule",
    "KeyedHmacSha256Signer",
    "KeyedMd5Signer",
    "PrefixedSha256Signer",
    "Sha256WithRsaSigner",
    "Sha256WithRsaVerifier",
    "Signer",
    "canonical_string",
    "constant_time_equal",
    "is_blank",
    "is_php_empty",
]
