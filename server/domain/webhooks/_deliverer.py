"""The deliverer: sends due webhook deliveries, signed, and records what came of each attempt.

Deliveries are rows (storage `_webhooks`), written with the events they report. Each process
that serves runs one deliverer: it claims due deliveries with a lease (so replicas never send
one twice at once, and a crashed process's claims lapse), POSTs at most
`webhook_max_in_flight` at a time, and schedules a failed one again after the next pause of
`webhook_retry_schedule`, with jitter. It looks for due deliveries every `webhook_poll_seconds`,
and at once when this process publishes an event a webhook may report, or a replay is asked for.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx2 as httpx

import storage
from server import metrics
from server.config import Settings
from server.domain import _transactions as transactions
from server.domain.resources import (
    EventType,
    ProgressEvent,
    Version,
    VersionState,
    event_of,
    version_of,
)
from server.domain.webhooks._destinations import DestinationRefused, check_destination
from server.domain.webhooks._signing import signature_header

_log = logging.getLogger("atelier.webhooks")
# The version as the API shows it, made JSON (the proto's JSON mapping): given by the composer.
RenderVersion = Callable[[Version], dict[str, Any]]
# A claim outlasts the longest attempt by this much before another deliverer may take it.
_LEASE_MARGIN_SECONDS = 30.0
# Jitter: each pause of the schedule is stretched or shrunk by up to this share.
_JITTER = 0.2
# The longest Retry-After honoured, and the longest error text kept.
_MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
_MAX_ERROR = 500
_OUTCOMES = {
    storage.WebhookDeliveryState.DELIVERED: "delivered",
    storage.WebhookDeliveryState.PENDING: "retry",
    storage.WebhookDeliveryState.FAILED: "failed",
}


class WebhookDeliverer:
    def __init__(self, *, db: storage.Database, settings: Settings, render: RenderVersion) -> None:
        self._db = db
        self._settings = settings
        self._render = render
        self._keys = settings.webhook_secrets
        self._delays = settings.webhook_retry_delays
        self._lease = timedelta(seconds=settings.webhook_timeout_seconds + _LEASE_MARGIN_SECONDS)
        self._in_flight = 0
        self._wakeup = anyio.Event()

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wakeup.set()

    def on_events(self, events: Sequence[ProgressEvent]) -> None:
        """An EventHub listener: events a webhook may report make the deliverer look."""
        if any(e.type == EventType.OUTPUT or _reported_state(e) for e in events):
            self.wake()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        limits = self._settings.webhook_max_in_flight
        timeout = httpx.Timeout(self._settings.webhook_timeout_seconds)
        # Redirects are not followed (the spec's advice, and a redirect could lead anywhere).
        async with (
            httpx.AsyncClient(
                timeout=timeout,
                follow_redirects=False,
                limits=httpx.Limits(max_connections=limits),
                headers={"user-agent": "Atelier-Webhooks/1"},
            ) as client,
            anyio.create_task_group() as group,
        ):
            task_status.started()
            while True:
                # The ticket is taken before looking, so a wake-up during the look is not lost.
                self._wakeup = anyio.Event()
                free = limits - self._in_flight
                claimed = await self._claim(free) if free > 0 else []
                for delivery in claimed:
                    self._in_flight += 1
                    group.start_soon(self._deliver, client, delivery)
                if claimed and len(claimed) == free:
                    continue  # there may be more due, as soon as a slot frees
                with anyio.move_on_after(self._settings.webhook_poll_seconds):
                    await self._wakeup.wait()

    async def _claim(self, limit: int) -> list[storage.WebhookDelivery]:
        now = storage.utcnow()
        try:
            return await transactions.write(
                self._db,
                lambda tx: storage.claim_webhook_deliveries(
                    tx, now=now, lease_until=now + self._lease, limit=limit
                ),
            )
        except storage.StorageError as exc:
            _log.warning("webhooks: could not claim deliveries (will look again): %s", exc)
            return []
        except Exception:
            # Never the end of the server: the deliveries wait in the database for the next look.
            _log.exception("webhooks: claiming deliveries failed (will look again)")
            return []

    async def _deliver(self, client: httpx.AsyncClient, delivery: storage.WebhookDelivery) -> None:
        try:
            await self._attempt(client, delivery)
        except Exception:
            # Its claim lapses and the delivery is tried again: nothing is lost.
            _log.exception("webhooks: delivery %s failed unexpectedly", delivery.webhook_id)
        finally:
            self._in_flight -= 1
            self.wake()

    async def _attempt(self, client: httpx.AsyncClient, delivery: storage.WebhookDelivery) -> None:
        assert delivery.id is not None and delivery.claim_token is not None
        body = delivery.body
        if body is None:
            body = await transactions.read(self._db, lambda tx: self._body(tx, delivery))
            if body is None:
                return  # its version is gone (purged): so is the delivery
        attempt_time = storage.utcnow()
        started = time.monotonic()
        status, error, retry_after = await self._post(client, delivery, body.encode())
        duration = time.monotonic() - started
        step = delivery.schedule_step
        next_time: datetime | None = None
        if status is not None and 200 <= status < 300:
            state = storage.WebhookDeliveryState.DELIVERED
        elif status == 410 or step >= len(self._delays):
            # 410 Gone: the receiver wants no more (the spec says stop).
            state = storage.WebhookDeliveryState.FAILED
        else:
            state = storage.WebhookDeliveryState.PENDING
            pause = self._delays[step] * random.uniform(1 - _JITTER, 1 + _JITTER)
            if retry_after is not None:
                pause = max(pause, min(retry_after, _MAX_RETRY_AFTER_SECONDS))
            next_time = storage.utcnow() + timedelta(seconds=pause)
        metrics.WEBHOOK_ATTEMPTS.labels(_OUTCOMES[state]).inc()
        claim = delivery.claim_token
        kept = await transactions.write(
            self._db,
            lambda tx: storage.record_webhook_attempt(
                tx,
                delivery_id=delivery.id or 0,
                claim_token=claim,
                body=body,
                attempt_time=attempt_time,
                duration_seconds=duration,
                status_code=status,
                error=error or None,
                state=state,
                next_attempt_time=next_time,
            ),
        )
        _log.info(
            "webhook %s (%s) to %s: %s%s",
            delivery.webhook_id,
            delivery.event_type,
            delivery.url,
            f"HTTP {status}" if status is not None else error,
            "" if kept else " (claim lost: a replay or another deliverer took it over)",
        )

    async def _post(
        self, client: httpx.AsyncClient, delivery: storage.WebhookDelivery, body: bytes
    ) -> tuple[int | None, str, float | None]:
        """(HTTP status or None, why it failed or "", the Retry-After seconds asked for)."""
        try:
            # Again before each attempt: settings change, and a host can start resolving elsewhere.
            await check_destination(delivery.url, self._settings)
        except DestinationRefused as refused:
            return None, str(refused), None
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(self._keys, delivery.webhook_id, timestamp, body),
        }
        try:
            # Streamed, and the answer's body never read: a receiver cannot make us hold a large one.
            async with client.stream("POST", delivery.url, content=body, headers=headers) as response:
                status = response.status_code
                retry_after = _seconds(response.headers.get("retry-after"))
        except httpx.TimeoutException:
            return None, f"no answer within {self._settings.webhook_timeout_seconds:g} s", None
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR], None
        if 200 <= status < 300:
            return status, "", None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed; give the final URL", retry_after
        return status, f"HTTP {status}", retry_after

    def _body(self, tx: storage.Transaction, delivery: storage.WebhookDelivery) -> str | None:
        """The payload: type, timestamp (of the event) and data (the version as of the event)."""
        try:
            row = storage.get_version_by_id(tx, delivery.version_id)
        except LookupError:
            return None
        found = storage.list_events(
            tx, version_id=delivery.version_id, after_seq=delivery.event_seq - 1, limit=1
        )
        version = version_of(row)
        payload: dict[str, Any] = {
            "type": f"version.{delivery.event_type.lower()}",
            "timestamp": _iso(delivery.event_time),
        }
        if found:
            event = event_of(found[0])
            # The version as it was when the event happened (a retry hours later says the same).
            version = replace(
                version,
                state=event.state,
                stage=event.stage,
                total_stages=event.total_stages,
                message=event.message,
                error=event.error or (version.error if event.state.is_terminal else None),
                last_event_seq=event.seq,
                update_time=event.create_time,
                complete_time=version.complete_time if event.state.is_terminal else None,
                queue=None,
            )
            if not event.state.is_terminal:
                # Set once the version ends: not yet, as of this event.
                version = replace(version, file_count=0, added_count=0, modified_count=0, deleted_count=0)
            if event.type == EventType.OUTPUT:
                payload["paths"] = list(event.paths)
        payload["data"] = self._render(version)
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _reported_state(event: ProgressEvent) -> bool:
    return event.type == EventType.STATE and event.state != VersionState.QUEUED


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from receivers; the schedule stands
    return seconds if seconds >= 0 else None
