"""Notifications: an outbox of signed callbacks and the sender that POSTs them, redelivering on failure.

Each provider decides the body and what counts as acknowledged; the outbox keeps the schedule
(delays from :attr:`SimulatorConfig.notify_schedule`) and a record of every attempt for tests.
Notifications are frozen: the outbox stores an evolved copy after each change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import attrs
import httpx

__all__ = ["Delivery", "Notification", "Outbox", "deliver_due"]

Acknowledged = Callable[[int, bytes], bool]
SignHeaders = Callable[[bytes], Mapping[str, str]]
"""Headers to send with a notification body, made at each delivery (WeChat Pay v3 signs every
delivery with a fresh timestamp and nonce)."""


@attrs.frozen(kw_only=True)
class Notification:
    """One callback to deliver, with its delivery bookkeeping (updated only by the outbox)."""

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
    sign_headers: SignHeaders | None = attrs.field(default=None, repr=False)
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
        self._items: dict[int, Notification] = {}
        """By id, oldest first."""
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
        sign_headers: SignHeaders | None = None,
    ) -> None:
        """Queue a notification; its first attempt is due ``schedule[0]`` seconds from ``now``."""
        with self._lock:
            self._serial += 1
            self._items[self._serial] = Notification(
                id=self._serial,
                provider=provider,
                kind=kind,
                reference=reference,
                url=url,
                body=body,
                content_type=content_type,
                acknowledged=acknowledged,
                sign_headers=sign_headers,
                due_at=now + self._schedule[0],
                created_at=now,
            )

    def take_due(self, now: float) -> list[Notification]:
        """Mark the due, undelivered notifications in flight and return them."""
        with self._lock:
            due = [
                attrs.evolve(n, in_flight=True)
                for n in self._items.values()
                if not (n.delivered or n.given_up or n.in_flight) and n.due_at <= now
            ]
            self._items.update((n.id, n) for n in due)
            return due

    def record(self, notification: Notification, *, ok: bool, error: str, now: float) -> None:
        """Record one attempt and schedule the next (or give up after the last)."""
        with self._lock:
            current = self._items[notification.id]
            attempts = current.attempts + 1
            updated = attrs.evolve(current, in_flight=False, attempts=attempts, last_error=error)
            if ok:
                updated = attrs.evolve(updated, delivered=True)
            elif attempts >= len(self._schedule):
                updated = attrs.evolve(updated, given_up=True)
            else:
                updated = attrs.evolve(updated, due_at=current.created_at + self._schedule[attempts])
            self._items[current.id] = updated

    def pending(self) -> bool:
        """Whether anything is still to be delivered."""
        with self._lock:
            return any(not (n.delivered or n.given_up) for n in self._items.values())

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
                for n in self._items.values()
            )


async def deliver_due(outbox: Outbox, client: httpx.AsyncClient, now: float) -> int:
    """POST every due notification once; return how many were acknowledged."""
    acknowledged = 0
    for notification in outbox.take_due(now):
        ok, error = False, ""
        try:
            headers = {"content-type": notification.content_type}
            if notification.sign_headers is not None:
                headers.update(notification.sign_headers(notification.body))
            response = await client.post(notification.url, content=notification.body, headers=headers)
            ok = notification.acknowledged(response.status_code, response.content)
            if not ok:
                error = f"not acknowledged (HTTP {response.status_code})"
        except Exception as exc:
            # The URL comes from a merchant's request: httpx.InvalidURL (no HTTPError) and
            # friends are a failed attempt of this notification, redelivered on schedule — not an
            # exception out of the sender's loop, which would stop every other notification too.
            error = f"{type(exc).__name__}: {exc}"
        except BaseException:
            outbox.record(notification, ok=False, error="interrupted", now=now)
            raise
        outbox.record(notification, ok=ok, error=error, now=now)
        acknowledged += ok
    return acknowledged
