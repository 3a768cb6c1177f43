"""``paykit refunds run --check-provider``: ask WeChat Pay (v2) which refunds each new row's order
already has, before anything is sent.

The journal knows the refunds it sent. A lost journal, or a row naming its order by the other
identifier, or the file run under a new batch id, gives a row a new identity and so a new refund
number — and a refund of the same order and amount the journal cannot see. The provider can: a
refund query by ``out_trade_no`` or ``transaction_id`` lists every refund of the order. A row is
refused when its order already has a refund of the same amount under another number that was not
closed (:func:`repeat_refusal`); one query per order, and only for rows this batch has not sent
before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import anyio
import attrs
import click

from ..batch import RateLimiter, refund_key, refund_number_rule
from ..errors import PaykitError, ProviderError

__all__ = [
    "CHECKED_PROVIDERS",
    "ProviderRefunds",
    "ask_provider",
    "order_identifier",
    "provider_refunds",
    "provider_refusal",
    "repeat_refusal",
    "row_refund_no",
]

#: Providers whose refund query lists an order's refunds.
CHECKED_PROVIDERS = ("wechatpay",)
#: Refund records per page of a WeChat Pay v2 refund query (``offset`` pages further).
_PAGE = 10
#: Pages read at most per order (WeChat allows 50 partial refunds per order).
_MAX_PAGES = 10


@attrs.frozen(kw_only=True)
class ProviderRefunds:
    """What the provider answered for the order ``identifier`` (``out_trade_no=…``): its refunds as
    (refund number, refund amount, status), or ``error`` when it could not be asked."""

    identifier: str
    refunds: tuple[tuple[str, int | None, str | None], ...] = ()
    error: str | None = None


def order_identifier(client: Any, request: Mapping[str, Any]) -> tuple[str, str] | None:
    """The identifier ``request`` names its order by — the first of the client's order fields
    (:attr:`~paykit_async.refund_numbers.RefundNumberRule.orders`) it fills — with its value, or
    None."""
    rule = refund_number_rule(client)
    for name in () if rule is None else rule.orders:
        value = request.get(name)
        if isinstance(value, str) and value.strip():
            return name, value.strip()
    return None


def row_refund_no(client: Any, request: Mapping[str, Any], batch: str) -> str | None:
    """The refund number ``refund_many(batch_id=batch)`` sends ``request`` under: its own column,
    else the one derived from its key."""
    rule = refund_number_rule(client)
    if rule is None:
        return None
    key = refund_key(client, request, batch_id=batch)
    return rule.fix(request, key=key, merchant=str(getattr(client, "refund_merchant", "")))[1]


async def provider_refunds(
    client: Any, identifiers: Iterable[tuple[str, str]], *, concurrency: int, rate: float | None
) -> dict[tuple[str, str], ProviderRefunds]:
    """Each order's refunds as the provider lists them, ``concurrency`` queries at a time (and at
    most ``rate`` a second). A query that fails is recorded as an error, never raised: its rows
    are then refused, since nobody could say they are not a repeat."""
    found: dict[tuple[str, str], ProviderRefunds] = {}
    limiter = anyio.CapacityLimiter(concurrency)
    pacer = RateLimiter(rate) if rate is not None else None

    async def ask(identifier: tuple[str, str]) -> None:
        async with limiter:
            found[identifier] = await _order_refunds(client, identifier, pacer)

    async with anyio.create_task_group() as group:
        for identifier in dict.fromkeys(identifiers):
            group.start_soon(ask, identifier)
    return found


async def _order_refunds(
    client: Any, identifier: tuple[str, str], pacer: RateLimiter | None
) -> ProviderRefunds:
    name, value = identifier
    shown = f"{name}={value}"
    refunds: list[tuple[str, int | None, str | None]] = []
    for page in range(_MAX_PAGES):
        if pacer is not None:
            await pacer.acquire()
        try:
            answer = await client.query_refund(**{name: value}, offset=page * _PAGE if page else None)
        except ProviderError as error:
            if error.code == "REFUNDNOTEXIST":
                break
            return ProviderRefunds(identifier=shown, error=f"{error.code}: {error.message}")
        except PaykitError as error:
            return ProviderRefunds(identifier=shown, error=f"{type(error).__name__}: {error.message}")
        refunds.extend(
            (record.out_refund_no or "", record.refund_fee, record.refund_status) for record in answer.refunds
        )
        total = answer.total_refund_count
        if total is None or len(refunds) >= total or not answer.refunds:
            break
    else:
        return ProviderRefunds(identifier=shown, error=f"more than {_MAX_PAGES * _PAGE} refunds listed")
    return ProviderRefunds(identifier=shown, refunds=tuple(refunds))


def repeat_refusal(listed: ProviderRefunds, request: Mapping[str, Any], refund_no: str | None) -> str | None:
    """Why the row ``request`` (sent under ``refund_no``) must not be sent, or None: the provider
    lists a refund of its order with the same amount under another number that was not closed —
    most likely this row's refund made under another identity (a lost journal, the order named by
    its other identifier, a new batch id) — or the provider could not be asked."""
    if listed.error is not None:
        return (
            f"could not ask the provider which refunds order {listed.identifier} has ({listed.error}), so "
            "this row might repeat one of them. Nothing was sent for this row; run again later"
        )
    if any(number == refund_no for number, _fee, _status in listed.refunds):
        return None  # the provider has this row's own refund: sending it again is deduplicated
    amount = request.get("refund_fee")
    same = [
        (number, status)
        for number, fee, status in listed.refunds
        # A listed refund whose amount cannot be read may be this row's: it counts as the same.
        if number != refund_no and (fee is None or fee == amount) and status != "REFUNDCLOSE"
    ]
    if not same:
        return None
    found = "; ".join(f"refund number {number} ({status or 'status not given'})" for number, status in same)
    return (
        f"the provider already lists a refund of order {listed.identifier} for refund_fee={amount} under "
        f"another number: {found}. Sending this row would refund the order again. If that is intended (a "
        "second refund of the same amount), run again with --repeat-other-batches. Nothing was sent for "
        "this row"
    )


async def ask_provider(
    client: Any,
    rows: Iterable[tuple[int, object]],
    batch: str,
    claimed: frozenset[str],
    *,
    concurrency: int,
    rate: float | None,
) -> dict[tuple[str, str], ProviderRefunds]:
    """:func:`provider_refunds` of the orders of the rows (number, request) this batch has not
    ``claimed`` — the rows it never sent, the only ones to check — saying on stderr how many."""
    identifiers = dict.fromkeys(
        identifier
        for _number, request in rows
        if isinstance(request, Mapping) and refund_key(client, request, batch_id=batch) not in claimed
        if (identifier := order_identifier(client, request)) is not None
    )
    click.echo(f"asking the provider for the refunds of {len(identifiers):,} order(s) first", err=True)
    return await provider_refunds(client, identifiers, concurrency=concurrency, rate=rate)


def provider_refusal(
    client: Any,
    request: Mapping[str, Any],
    batch: str,
    listed: Mapping[tuple[str, str], ProviderRefunds] | None,
    *,
    claimed: frozenset[str],
    repeat: bool,
) -> str | None:
    """Why the row ``request`` is refused by the provider's listing (:func:`repeat_refusal`), or
    None: no check was asked for (``listed`` None), the batch sent the row before (its key is
    ``claimed``: resuming it is never refused), or ``repeat`` says a second refund is meant."""
    if listed is None or refund_key(client, request, batch_id=batch) in claimed:
        return None
    identifier = order_identifier(client, request)
    found = None if identifier is None else listed.get(identifier)
    if found is None or (repeat and found.error is None):
        return None
    return repeat_refusal(found, request, row_refund_no(client, request, batch))
