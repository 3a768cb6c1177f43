"""Merchant refund numbers, minted once before the first attempt and reused by every retry."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

__all__ = ["RefundNumberRule", "derive_refund_no", "new_refund_no"]


def new_refund_no(*, prefix: str = "R", length: int = 32) -> str:
    """A unique refund number of exactly ``length`` characters from ``[0-9A-Z]``.

    It starts with ``prefix`` and a UTC timestamp (so numbers sort by creation and are easy to
    find in a provider's dashboard) followed by random characters from :mod:`secrets`.
    """
    stamp = time.strftime("%y%m%d%H%M%S", time.gmtime())
    head = f"{prefix}{stamp}"
    if length < len(head) + 8:
        head = prefix
    if length < len(head) + 8:
        raise ValueError(f"length {length} leaves fewer than 8 random characters")
    missing = length - len(head)
    # Base32 of random bytes: uniform over [A-Z2-7] and one call into the OS CSPRNG.
    tail = base64.b32encode(secrets.token_bytes(missing * 5 // 8 + 5)).decode("ascii")
    return head + tail[:missing]


def derive_refund_no(*, provider: str, merchant: str, key: str, length: int = 32) -> str:
    """The refund number of an idempotency key: the same (provider, merchant, key) always gives
    the same number, so a refund repeated after its journal was lost reaches the provider under
    the number it already knows, and the provider's own dedupe prevents a second payout.

    The number is ``"K"`` followed by the first ``length - 1`` characters of the base32 text
    (``[A-Z2-7]``, no padding) of ``SHA-256(provider + "\x00" + merchant + "\x00" + key)``
    (UTF-8). It fits every provider's alphabet; ``length`` is the provider's limit (WeChat 32 of
    its 64, eftPay 28), and 27 base32 characters already carry 135 bits. ``merchant`` names the
    merchant account (WeChat ``mch_id``, with ``"/" + sub_mch_id`` in service-provider mode;
    eftPay ``user_confirm_key``), so two merchants never share a number.
    """
    if not 16 <= length <= 52:
        raise ValueError(f"length must be between 16 and 52, got {length}")
    material = "\x00".join((provider, merchant, key)).encode("utf-8", "surrogatepass")
    digest = base64.b32encode(hashlib.sha256(material).digest()).decode("ascii")
    return "K" + digest[: length - 1]


@attrs.frozen(kw_only=True)
class RefundNumberRule:
    """Where a provider's refund number lives in ``refund()``'s arguments, how to fix one, and
    which arguments make up a refund's identity.

    ``field`` is the keyword holding the number; ``max_length`` the provider's limit. When
    ``generated`` is False the provider has no merchant refund number and ``field`` is the order
    identifier that makes the refund unique (PAYJS refunds an order in full, by ``payjs_order_id``).
    ``provider`` is the name :func:`derive_refund_no` is given (empty: numbers are never derived,
    only minted at random). ``identity`` lists the ``refund()`` arguments that say *which* refund
    a request is — order identifiers, amounts and an explicit refund number — as opposed to how it
    is described (``refund_desc``, ``notify_url``...); empty means every argument. ``amounts``
    are the identity arguments compared as decimal numbers (``"5.10"`` is ``"5.1"``). ``orders``
    are the identity arguments naming the *order* refunded (the rest, but the refund number, are
    its amounts); empty: the rule cannot tell two refunds of one order apart from two orders.
    Each provider client declares its rule as the class attribute ``refund_number_rule``.
    """

    field: str
    max_length: int = 32
    generated: bool = True
    provider: str = ""
    identity: tuple[str, ...] = ()
    amounts: tuple[str, ...] = ()
    orders: tuple[str, ...] = ()

    @property
    def derived_length(self) -> int:
        """The length of derived numbers: 32, or the provider's limit when that is shorter."""
        return min(32, self.max_length)

    def derive(self, *, merchant: str, key: str) -> str:
        """The refund number of idempotency key ``key`` for ``merchant`` (:func:`derive_refund_no`)."""
        if not self.provider:
            raise ValueError(f"the rule for {self.field} names no provider to derive numbers for")
        return derive_refund_no(
            provider=self.provider, merchant=merchant, key=key, length=self.derived_length
        )

    def fix(
        self, request: Mapping[str, Any], *, key: str | None = None, merchant: str | None = None
    ) -> tuple[Mapping[str, Any], str | None]:
        """The request with its refund number filled in, and that number.

        A number already in the request is kept. Otherwise, with an idempotency ``key`` and the
        ``merchant`` (and a rule that names its provider), the number is derived from them — the
        number the client's own ``refund()`` derives for that key; without, one is minted.
        """
        current = request.get(self.field)
        if current not in (None, ""):
            return request, str(current)
        if not self.generated:
            return request, None
        if key is not None and merchant is not None and self.provider:
            number = self.derive(merchant=merchant, key=key)
        else:
            number = new_refund_no(length=self.derived_length)
        return {**request, self.field: number}, number

    def identity_text(self, name: str, value: object) -> str:
        """``value`` of argument ``name`` as :meth:`identity_of` reads it: amounts as canonical
        decimal text (``"5.10"`` → ``"5.1"``), other values stripped."""
        return _amount_text(value) if name in self.amounts else _plain_text(value)

    def identity_of(self, request: Mapping[str, Any], *, merchant: str) -> str:
        """A SHA-256 (hex) of what identifies the refund ``request`` asks for at ``merchant``.

        It covers the provider, the merchant, the ``identity`` arguments present (amounts as
        numbers) and an ``idempotency_key`` when the request carries one — never the order in which
        requests come, nor descriptive arguments. Two requests with the same identity are the same
        refund; a second refund of the same order and amount needs its own refund number or key.
        """
        names = self.identity or tuple(sorted(name for name in request if name != "idempotency_key"))
        fields: dict[str, str] = {}
        for name in (*names, "idempotency_key"):
            value = request.get(name)
            if value is None or value == "":
                continue
            fields[name] = self.identity_text(name, value)
        document = {"provider": self.provider, "merchant": merchant, "fields": fields}
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _plain_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(value)


def _amount_text(value: object) -> str:
    """An amount as a canonical decimal text, so ``5.10``, ``"5.1"`` and ``Decimal("5.100")`` agree."""
    text = value.strip() if isinstance(value, str) else str(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    if not number.is_finite():
        return text
    try:
        return format(number.normalize(), "f")
    except ArithmeticError:
        # Beyond the decimal context ("1e9999999"): not an amount any provider takes, and the
        # client refuses it; its text still identifies it (never an exception out of a batch).
        return text
