"""The one shape of an answer to a provider's notification: status, content type and body.

Every provider client offers ``notification_success_reply()`` (stop redelivering) and
``notification_failure_reply()`` (please redeliver) returning a :class:`NotificationReply`, so a
web handler answers the same way whichever provider called it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["NotificationReply"]


@attrs.frozen(kw_only=True)
class NotificationReply:
    """The HTTP answer a notify_url handler sends back to the provider."""

    status_code: int = 200
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"content-type": "text/plain; charset=utf-8"})
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The ``content-type`` header of the reply."""
        return self.headers.get("content-type", "")
