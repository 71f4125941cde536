"""Webhooks: a version's subscription, its deliveries (one per event it reports) and their attempts.

A delivery row is written by `append_event(s)` in the transaction of the event it reports, so
an event that is committed always has its delivery, even if the process dies a moment later.
Deliverers claim due deliveries with a lease (`claim_webhook_deliveries`) and record each
attempt's outcome while they still hold their claim.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage._clock import utcnow
from storage._database import Transaction
from storage._models import (
    EventType,
    VersionState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEventType,
)
from storage._tables import VERSION, from_row, one_or_none
from storage._tables import WEBHOOK_ATTEMPT as ATTEMPT
from storage._tables import WEBHOOK_DELIVERY as DELIVERY
from storage._tables import WEBHOOK_SUBSCRIPTION as SUBSCRIPTION

# The event a stored progress event is, for a webhook (None: no webhook reports it).
_BY_STATE = {
    VersionState.RUNNING: WebhookEventType.STARTED,
    VersionState.COMPLETED: WebhookEventType.COMPLETED,
    VersionState.FAILED: WebhookEventType.FAILED,
    VersionState.CANCELLED: WebhookEventType.CANCELLED,
    VersionState.NEEDS_REVIEW: WebhookEventType.NEEDS_REVIEW,
}


def webhook_event_of(event_type: str, state: str) -> WebhookEventType | None:
    if event_type == EventType.OUTPUT:
        return WebhookEventType.OUTPUT
    if event_type == EventType.STATE:
        return _BY_STATE.get(VersionState(state))
    return None


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery as its owner lists it: with its version's number and its attempts."""

    delivery: WebhookDelivery
    generation_id: str
    version_number: int
    attempts: tuple[WebhookAttempt, ...]


def new_webhook_id() -> str:
    """`msg_` and 26 lowercase characters: milliseconds, then 64 random bits (never a `.`)."""
    return f"msg_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(7)}"


def subscribe_webhook(tx: Transaction, *, version_id: int, url: str, events: Collection[str]) -> None:
    """Sends the version's events of `events` (WebhookEventType values) to `url` from now on."""
    tx.execute(sa.insert(SUBSCRIPTION), {"version_id": version_id, "url": url, "events": sorted(events)})
    tx.execute(_FLAG_VERSION, {"flagged_id": version_id})


def enqueue_webhook_deliveries(
    tx: Transaction, *, version_id: int, events: Sequence[tuple[int, str, str, datetime]]
) -> int:
    """Writes a delivery for each of the version's new events, (seq, type, state, time), that its
    subscription asks for; returns how many. Only events a webhook can report are looked up."""
    reported = [
        (seq, kind, when)
        for seq, event_type, state, when in events
        if (kind := webhook_event_of(event_type, state)) is not None
    ]
    if not reported:
        return 0
    subscription = tx.execute(_SUBSCRIPTION_OF, {"version_id": version_id}).one_or_none()
    if subscription is None:
        return 0
    url, wanted = subscription
    now = utcnow()
    rows = [
        {
            "webhook_id": new_webhook_id(),
            "version_id": version_id,
            "event_seq": seq,
            "event_type": kind,
            "event_time": when,
            "url": url,
            "state": WebhookDeliveryState.PENDING,
            "schedule_step": 0,
            "next_attempt_time": now,
            "create_time": now,
            "update_time": now,
        }
        for seq, kind, when in reported
        if kind in wanted
    ]
    if rows:
        tx.execute(sa.insert(DELIVERY), rows)
    return len(rows)


def claim_webhook_deliveries(
    tx: Transaction, *, now: datetime, lease_until: datetime, limit: int
) -> list[WebhookDelivery]:
    """Claims up to `limit` due PENDING deliveries, the longest due first, and of each version only
    its earliest pending one (so a version's events arrive in order): each is due again at
    `lease_until` unless its attempt is recorded first (`record_webhook_attempt`) with the
    `claim_token` it now holds. Rows another transaction holds are skipped (PostgreSQL)."""
    ids = tx.execute(_DUE, {"now": now, "limit": limit}).scalars().all()
    if not ids:
        return []
    rows = tx.execute(
        _CLAIM,
        {"ids": list(ids), "now": now, "lease_until": lease_until, "token": secrets.token_hex(10)},
    ).all()
    return sorted((from_row(WebhookDelivery, row) for row in rows), key=lambda d: d.id or 0)


def record_webhook_attempt(
    tx: Transaction,
    *,
    delivery_id: int,
    claim_token: str,
    body: str,
    attempt_time: datetime,
    duration_seconds: float,
    status_code: int | None,
    error: str | None,
    state: WebhookDeliveryState,
    next_attempt_time: datetime | None,
) -> bool:
    """Records an attempt, and (if the claim is still `claim_token`'s) the delivery's new state:
    DELIVERED, PENDING again at `next_attempt_time` one step further along the schedule, or
    FAILED. The first body recorded is kept. False if the claim was lost (a replay, or the
    lease ran out): the attempt is recorded all the same, the state is not."""
    exists = tx.execute(_DELIVERY_EXISTS, {"id": delivery_id}).one_or_none()
    if exists is None:
        return False  # purged with its generation meanwhile
    tx.execute(
        sa.insert(ATTEMPT),
        {
            "delivery_id": delivery_id,
            "attempt_time": attempt_time,
            "duration_seconds": duration_seconds,
            "status_code": status_code,
            "error": error,
        },
    )
    now = utcnow()
    updated = tx.execute(
        _SETTLE,
        {
            "delivery_id": delivery_id,
            "token": claim_token,
            "new_body": body,
            "new_state": state,
            "next": next_attempt_time,
            "new_deliver_time": now if state == WebhookDeliveryState.DELIVERED else None,
            "now": now,
        },
    )
    return bool(updated.rowcount)  # type: ignore[attr-defined]


def replay_webhook_delivery(tx: Transaction, *, version_id: int, webhook_id: str) -> WebhookDelivery | None:
    """Makes the delivery PENDING and due now, at the start of its schedule (None: no such delivery)."""
    now = utcnow()
    row = tx.execute(
        _REPLAY, {"of_version": version_id, "of_webhook_id": webhook_id, "now": now}
    ).one_or_none()
    return None if row is None else from_row(WebhookDelivery, row)


def get_webhook_delivery(tx: Transaction, *, version_id: int, webhook_id: str) -> WebhookDelivery | None:
    return one_or_none(tx, WebhookDelivery, _ONE, version_id=version_id, webhook_id=webhook_id)


def list_webhook_deliveries(
    tx: Transaction, *, generation_id: str, version_id: int | None, after_id: int, limit: int
) -> list[DeliveryView]:
    """A generation's deliveries (or one version's), oldest first, after the delivery `after_id`."""
    statement = _LIST if version_id is None else _LIST.where(DELIVERY.c.version_id == version_id)
    rows = tx.execute(statement, {"generation_id": generation_id, "after_id": after_id, "limit": limit}).all()
    ids = [row.id for row in rows]
    attempts: dict[int, list[WebhookAttempt]] = {delivery_id: [] for delivery_id in ids}
    if ids:
        for attempt in tx.execute(_ATTEMPTS_OF, {"ids": ids}):
            attempts[attempt.delivery_id].append(from_row(WebhookAttempt, attempt))
    return [
        DeliveryView(
            delivery=from_row(WebhookDelivery, _delivery_columns(row._mapping)),
            generation_id=generation_id,
            version_number=row.version_number,
            attempts=tuple(attempts[row.id]),
        )
        for row in rows
    ]


def _delivery_columns(mapping: Any) -> dict[str, Any]:
    return {column.name: mapping[column.name] for column in DELIVERY.columns}


_FLAG_VERSION = sa.update(VERSION).where(VERSION.c.id == sa.bindparam("flagged_id")).values(has_webhook=True)
_SUBSCRIPTION_OF = sa.select(SUBSCRIPTION.c.url, SUBSCRIPTION.c.events).where(
    SUBSCRIPTION.c.version_id == sa.bindparam("version_id")
)
_EARLIER = DELIVERY.alias("earlier")
# A version's deliveries go in order: one waits while an earlier one of its version is pending.
_DUE = (
    sa.select(DELIVERY.c.id)
    .where(
        DELIVERY.c.state == WebhookDeliveryState.PENDING,
        DELIVERY.c.next_attempt_time <= sa.bindparam("now"),
        ~sa.exists().where(
            _EARLIER.c.version_id == DELIVERY.c.version_id,
            _EARLIER.c.state == WebhookDeliveryState.PENDING,
            _EARLIER.c.id < DELIVERY.c.id,
        ),
    )
    .order_by(DELIVERY.c.next_attempt_time, DELIVERY.c.id)
    .limit(sa.bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    sa.update(DELIVERY)
    .where(
        DELIVERY.c.id.in_(sa.bindparam("ids", expanding=True)),
        DELIVERY.c.state == WebhookDeliveryState.PENDING,
        DELIVERY.c.next_attempt_time <= sa.bindparam("now"),
    )
    .values(next_attempt_time=sa.bindparam("lease_until"), claim_token=sa.bindparam("token"))
    .returning(*DELIVERY.c)
)
_DELIVERY_EXISTS = sa.select(DELIVERY.c.id).where(DELIVERY.c.id == sa.bindparam("id")).with_for_update()
_SETTLE = (
    sa.update(DELIVERY)
    .where(
        DELIVERY.c.id == sa.bindparam("delivery_id"),
        DELIVERY.c.claim_token == sa.bindparam("token"),
        DELIVERY.c.state == WebhookDeliveryState.PENDING,
    )
    .values(
        state=sa.bindparam("new_state"),
        body=sa.func.coalesce(DELIVERY.c.body, sa.bindparam("new_body")),
        schedule_step=DELIVERY.c.schedule_step + 1,
        next_attempt_time=sa.bindparam("next"),
        claim_token=None,
        deliver_time=sa.func.coalesce(sa.bindparam("new_deliver_time"), DELIVERY.c.deliver_time),
        update_time=sa.bindparam("now"),
    )
)
_REPLAY = (
    sa.update(DELIVERY)
    .where(
        DELIVERY.c.version_id == sa.bindparam("of_version"),
        DELIVERY.c.webhook_id == sa.bindparam("of_webhook_id"),
    )
    .values(
        state=WebhookDeliveryState.PENDING,
        schedule_step=0,
        next_attempt_time=sa.bindparam("now"),
        claim_token=None,
        update_time=sa.bindparam("now"),
    )
    .returning(*DELIVERY.c)
)
_ONE = sa.select(DELIVERY).where(
    DELIVERY.c.version_id == sa.bindparam("version_id"),
    DELIVERY.c.webhook_id == sa.bindparam("webhook_id"),
)
_LIST = (
    sa.select(*DELIVERY.c, VERSION.c.number.label("version_number"))
    .join(VERSION, VERSION.c.id == DELIVERY.c.version_id)
    .where(VERSION.c.generation_id == sa.bindparam("generation_id"), DELIVERY.c.id > sa.bindparam("after_id"))
    .order_by(DELIVERY.c.id)
    .limit(sa.bindparam("limit"))
)
_ATTEMPTS_OF = (
    sa.select(ATTEMPT)
    .where(ATTEMPT.c.delivery_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(ATTEMPT.c.delivery_id, ATTEMPT.c.id)
)
