"""Pluggable signers and the canonical string they sign."""

from .base import Signer
from .canonical import EmptyRule, canonical_string, is_blank, is_php_empty
from .keyed import KeyedHmacSha256Signer, KeyedMd5Signer, constant_time_equal
from .prefixed import PrefixedSha256Signer

__all__ = [
    "EmptyRule",
    "KeyedHmacSha256Signer",
    "KeyedMd5Signer",
    "PrefixedSha256Signer",
    "Signer",
    "canonical_string",
    "constant_time_equal",
    "is_blank",
    "is_php_empty",
]
