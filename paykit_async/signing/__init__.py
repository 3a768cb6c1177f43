"""Pluggable signers and the canonical string they sign; SHA256-with-RSA for WeChat Pay API v3."""

from .base import ReadingVerifier, Signer
from .canonical import (
    EmptyRule,
    ambiguous_field,
    canonical_bytes,
    canonical_string,
    is_blank,
    is_php_empty,
    php_float,
    php_value,
    refuse_ambiguous,
)
from .keyed import KeyedHmacSha256Signer, KeyedMd5Signer, constant_time_equal
from .prefixed import PrefixedSha256Signer
from .rsa import Sha256WithRsaSigner, Sha256WithRsaVerifier

__all__ = [
    "EmptyRule",
    "KeyedHmacSha256Signer",
    "KeyedMd5Signer",
    "PrefixedSha256Signer",
    "ReadingVerifier",
    "Sha256WithRsaSigner",
    "Sha256WithRsaVerifier",
    "Signer",
    "ambiguous_field",
    "canonical_bytes",
    "canonical_string",
    "constant_time_equal",
    "is_blank",
    "is_php_empty",
    "php_float",
    "php_value",
    "refuse_ambiguous",
]
