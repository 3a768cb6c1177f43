"""Notifications: an outbox of signed callbacks and the sender that POSTs them, redelivering on failure.

Each provider decides the body and what counts as acknowledged; the outbox keeps the schedule
(delays from :attr:`SimulatorConfig.notify_schedule`) and a record of every attempt for tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs
import httpx

__all__ = ["Delivery", "Notification", "Outbox", "deliver_due"]

Acknowledged = Callable[[int, bytes], bool]


@attrs.define(kw_only=True)
class Notification:
    """One callback to deliver. Mutable bookkeeping lives under the outbox lock."""

    id: int
    provider: str
    kind: str
    """``refund`` or ``payment``."""
    reference: str
    """The refund number (or order number for payment notifications)."""
    url: str
    body: bytes
    content_type: str
    acknowledged: Acknowledged = attrs.field(repr=False)
    due_at: float = 0.0
    attempts: int = 0
    delivered: bool = False
    given_up: bool = False
    in_flight: bool = False
    last_error: str = ""
    created_at: float = 0.0


@attrs.frozen(kw_only=True)
class Delivery:
    """A notification as tests see it: where it went, how many tries, whether it was acknowledged."""

    provider: str
    kind: str
    reference: str
    url: str
    body: bytes
    content_type: str
    attempts: int
    delivered: bool
    given_up: bool
    last_error: str


class Outbox:
    """Thread-safe queue of notifications with their redelivery schedule."""

    def __init__(self, schedule: tuple[float, ...]) -> None:
        self._schedule = schedule or (0.0,)
        self._lock = threading.Lock()
        self._items: list[Notification] = []
        self._serial = 0

    def add(
        self,
        *,
        provider: str,
        kind: str,
        reference: str,
        url: str,
        body: bytes,
        content_type: str,
        acknowledged: Acknowledged,
        now: float,
    ) -> None:
        """Queue a notification; its first attempt is due ``schedule[0]`` seconds from ``now``."""
        with self._lock:
            self._serial += 1
            self._items.append(
                Notification(
                    id=self._serial,
                    provider=provider,
                    kind=kind,
                    reference=reference,
                    url=url,
                    body=body,
                    content_type=content_type,
                    acknowledged=acknowledged,
                    due_at=now + self._schedule[0],
                    created_at=now,
                )
            )

    def take_due(self, now: float) -> list[Notification]:
        """Mark the due, undelivered notifications in flight and return them."""
        with self._lock:
            due = [
                n for n in self._items if not (n.delivered or n.given_up or n.in_flight) and n.due_at <= now
            ]
            for n in due:
                n.in_flight = True
            return due

    def record(self, notification: Notification, *, ok: bool, error: str, now: float) -> None:
        """Record one attempt and schedule the next (or give up after the last)."""
        with self._lock:
            notification.in_flight = False
            notification.attempts += 1
            notification.last_error = error
            if ok:
                notification.delivered = True
            elif notification.attempts >= len(self._schedule):
                notification.given_up = True
            else:
                notification.due_at = notification.created_at + self._schedule[notification.attempts]

    def pending(self) -> bool:
        """Whether anything is still to be delivered."""
        with self._lock:
            return any(not (n.delivered or n.given_up) for n in self._items)

    def deliveries(self) -> tuple[Delivery, ...]:
        """Every notification so far, oldest first."""
        with self._lock:
            return tuple(
                Delivery(
                    provider=n.provider,
                    kind=n.kind,
                    reference=n.reference,
                    url=n.url,
                    body=n.body,
                    content_type=n.content_type,
                    attempts=n.attempts,
                    delivered=n.delivered,
                    given_up=n.given_up,
                    last_error=n.last_error,
                )
                for n in self._items
            )


async def deliver_due(outbox: Outbox, client: httpx.AsyncClient, now: float) -> int:
    """POST every due notification once; return how many were acknowledged."""
    acknowledged = 0
    for notification in outbox.take_due(now):
        ok, error = False, ""
        try:
            response = await client.post(
                notification.url,
                content=notification.body,
                headers={"content-type": notification.content_type},
            )
            ok = notification.acknowledged(response.status_code, response.content)
            if not ok:
                error = f"not acknowledged (HTTP {response.status_code})"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except BaseException:
            outbox.record(notification, ok=False, error="interrupted", now=now)
            raise
        outbox.record(notification, ok=ok, error=error, now=now)
        acknowledged += ok
    return acknowledged
