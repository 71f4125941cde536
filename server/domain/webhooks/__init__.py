"""Webhooks: where a version's events may be sent, how they are signed, and the deliverer.

A request's `WebhookRequest` is checked (`check_webhook_url`) and stored with the version it
makes; from then on storage writes a delivery with each event the subscription asks for, and
the `WebhookDeliverer` sends them.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.domain.resources import WebhookEventType
from server.domain.webhooks._deliverer import RenderVersion, WebhookDeliverer
from server.domain.webhooks._destinations import check_webhook_url
from server.domain.webhooks._signing import signature_header

# What an empty events list asks for: every change of state, not the outputs (a job can produce
# many, and a service that did not ask for them should not be flooded).
DEFAULT_EVENTS = frozenset(
    {
        WebhookEventType.STARTED,
        WebhookEventType.COMPLETED,
        WebhookEventType.FAILED,
        WebhookEventType.CANCELLED,
        WebhookEventType.NEEDS_REVIEW,
    }
)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """Where to POST a new version's events, and which ones (empty: DEFAULT_EVENTS)."""

    url: str
    events: frozenset[WebhookEventType] = frozenset()

    @property
    def effective_events(self) -> frozenset[WebhookEventType]:
        return self.events or DEFAULT_EVENTS


__all__ = [
    "DEFAULT_EVENTS",
    "RenderVersion",
    "WebhookDeliverer",
    "WebhookRequest",
    "check_webhook_url",
    "signature_header",
]
