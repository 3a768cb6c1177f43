"""CSV rows → refund requests for ``paykit refunds run``.

The header row names the provider's ``refund()`` fields (``out_trade_no,total_fee,refund_fee``
for WeChat Pay v2, ``out_trade_no,total,refund`` for v3; ``payjs_order_id`` for PAYJS;
``paytype,payment_type,out_trade_no,transaction_amount,total_fee`` for eftPay; optional ones
such as ``out_refund_no`` / ``refund_no`` or ``refund_desc`` may be added, and an
``idempotency_key`` column tells apart two genuine refunds with the same order and amounts).
Empty cells are left out; blank lines (a trailing one, say) are skipped. Row numbers count the
file's records after the header, blank ones included, so row N is line N + 1 of a plain file. A
row that cannot be turned into a request becomes an :class:`~paykit_async.batch.InvalidRequest`
with a clear reason (without the row number, which the caller adds), so it fails on its own
while the others proceed. Rows are read lazily, one at a time.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from ..batch import InvalidRequest

__all__ = ["FIELDS", "CsvRefunds", "HeaderError", "convert_row"]

#: The refund() fields of each provider that may appear as CSV columns (plus ``idempotency_key``).
FIELDS: Mapping[str, tuple[str, ...]] = {
    "wechatpay": (
        "out_trade_no",
        "transaction_id",
        "total_fee",
        "refund_fee",
        "out_refund_no",
        "refund_fee_type",
        "refund_desc",
        "refund_account",
        "notify_url",
        "detail",
        "idempotency_key",
    ),
    "wechatpay-v3": (
        "out_trade_no",
        "transaction_id",
        "refund",
        "total",
        "out_refund_no",
        "reason",
        "notify_url",
        "funds_account",
        "currency",
        "goods_detail",
        "idempotency_key",
    ),
    "payjs": ("payjs_order_id", "idempotency_key"),
    "eftpay": (
        "paytype",
        "payment_type",
        "out_trade_no",
        "transaction_amount",
        "total_fee",
        "refund_no",
        "tid",
        "refund_desc",
        "idempotency_key",
    ),
}
_INT_FIELDS = {
    "wechatpay": frozenset({"total_fee", "refund_fee"}),
    "wechatpay-v3": frozenset({"refund", "total"}),
}
_JSON_FIELDS = {"wechatpay": frozenset({"detail"}), "wechatpay-v3": frozenset({"goods_detail"})}


class HeaderError(ValueError):
    """The CSV file as a whole is unusable (no header, unknown columns)."""


@attrs.frozen(kw_only=True)
class CsvRefunds:
    """The refund requests in ``path`` for ``provider``: iterate for ``(row number, request)``.

    Row numbers count data rows from 1 (the header is row 0).
    """

    path: Path
    provider: str

    def header(self) -> list[str]:
        with self._open() as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
        if not header or not any(cell.strip() for cell in header):
            raise HeaderError(f"{self.path}: no header row naming the {self.provider} refund fields")
        columns = [cell.strip() for cell in header]
        allowed = FIELDS[self.provider]
        unknown = [c for c in columns if c not in allowed]
        if unknown:
            raise HeaderError(
                f"{self.path}: unknown column(s) {', '.join(repr(c) for c in unknown)}; "
                f"{self.provider} refunds take {', '.join(allowed)}"
            )
        if len(set(columns)) != len(columns):
            raise HeaderError(f"{self.path}: a column appears twice")
        return columns

    def count(self) -> int:
        """How many data rows the file has, blank lines left out (one pass, constant memory)."""
        with self._open() as handle:
            reader = csv.reader(handle)
            next(reader, None)
            return sum(1 for cells in reader if not _blank(cells))

    def __iter__(self) -> Iterator[tuple[int, Mapping[str, Any] | InvalidRequest]]:
        columns = self.header()
        with self._open() as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for number, cells in enumerate(reader, start=1):
                if not _blank(cells):
                    yield number, convert_row(self.provider, columns, cells, number)

    def _open(self) -> Any:
        return self.path.open(newline="", encoding="utf-8-sig")


def _blank(cells: Sequence[str]) -> bool:
    return not any(cell.strip() for cell in cells)


def convert_row(
    provider: str, columns: Sequence[str], cells: Sequence[str], number: int = 0
) -> Mapping[str, Any] | InvalidRequest:
    """One CSV row as ``refund()`` keyword arguments, or an InvalidRequest saying what is wrong.

    The reason does not name the row: ``number`` is accepted for callers that pass it, and the
    batch command prefixes every row error, whatever its origin, with ``row N: ``.
    """
    raw = dict(zip(columns, cells, strict=False))
    if len(cells) != len(columns):
        return InvalidRequest(reason=f"{len(cells)} cell(s) for {len(columns)} column(s)", fields=raw)
    request: dict[str, Any] = {}
    for column, cell in raw.items():
        text = cell.strip()
        if not text:
            continue
        if column in _INT_FIELDS.get(provider, ()):
            try:
                # isdigit() also holds for '²' and the like, which int() refuses.
                request[column] = int(text) if text.isdigit() else None
            except ValueError:
                request[column] = None
            if request[column] is None:
                return InvalidRequest(
                    reason=f"{column} must be a whole number of fen, got {text!r}", fields=raw
                )
        elif column in _JSON_FIELDS.get(provider, ()):
            try:
                request[column] = json.loads(text)
            except ValueError:
                return InvalidRequest(reason=f"{column} is not valid JSON", fields=raw)
        else:
            request[column] = text
    if not request:
        return InvalidRequest(reason="empty row", fields=raw)
    return request
