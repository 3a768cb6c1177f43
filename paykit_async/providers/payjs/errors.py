"""PAYJS-specific refinements of the error tree (both stay inside ``PaykitError``)."""

from __future__ import annotations

from ...errors import PaykitError, SignatureError

__all__ = ["RefundNotProven", "UnsignedReplyError"]


class UnsignedReplyError(SignatureError):
    """PAYJS answered ``return_code=1`` without a ``sign``.

    It has been seen for refunds of already-refunded orders. An unsigned success is unverified,
    so it is never reported as a success: for a refund the retry layer settles it with a verified
    ``check`` and, when that cannot prove the refund, raises ``RefundOutcomeUnknown`` whose
    ``__cause__`` is this error. ``raw`` keeps every received field for inspection.
    """

    def __init__(self, message: str, *, raw: dict[str, object]) -> None:
        super().__init__(message)
        self.raw = raw


class RefundNotProven(PaykitError):
    """A verified ``check`` answered, but its reply cannot prove that the order was refunded.

    Raised by the refund settle query; the retry layer turns it into ``RefundOutcomeUnknown``.
    """

    outcome_unknown = True
