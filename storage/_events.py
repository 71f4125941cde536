"""A version's progress events: append-only rows numbered 1, 2, 3, ... per version, with no gaps.

Appending an event also applies it to the version row (state, stage, message, error), in
the same statement that numbers it, so the two never disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from storage._clock import utcnow
from storage._database import Transaction
from storage._errors import StateConflict
from storage._models import TERMINAL_STATES, Event, EventType, Version, VersionState
from storage._notifications import EVENTS_CHANNEL, notify
from storage._tables import EVENT, VERSION, from_row
from storage._webhooks import enqueue_webhook_deliveries


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """Why a version failed or was cancelled: a gRPC code name, an ErrorInfo reason, a message."""

    code: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    """Where a QUEUED version stands: its place (1: next) and when it should start and end."""

    position: int
    start_time: datetime | None = None
    complete_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event not yet stored; `append_events` numbers it."""

    type: EventType
    state: VersionState
    stage: int
    total_stages: int
    message: str
    paths: Sequence[str] = ()
    error: ErrorDetail | None = None
    create_time: datetime | None = None
    queue: QueueEstimate | None = None


def append_event(
    tx: Transaction,
    *,
    version: Version,
    type: EventType,
    state: VersionState | None = None,
    stage: int | None = None,
    total_stages: int | None = None,
    message: str | None = None,
    paths: Sequence[str] = (),
    error: ErrorDetail | None = None,
    queue: QueueEstimate | None = None,
) -> Event:
    """Records the next event of a version and applies it to the version row (and to `version`).

    The version's event counter is bumped by one UPDATE, so concurrent writers get
    distinct, gap-free sequence numbers. A version in a terminal state takes no more
    events: StateConflict.
    """
    assert version.id is not None
    now = utcnow()
    changes: dict[str, object] = {"update_time": now}
    if state is not None:
        changes["state"] = state
        if state in TERMINAL_STATES:
            changes["complete_time"] = now
    if stage is not None:
        changes["stage"] = stage
    if total_stages is not None:
        changes["total_stages"] = total_stages
    if message is not None:
        changes["message"] = message
    if error is not None:
        changes.update(error_code=error.code, error_reason=error.reason, error_message=error.message)
    params = {"version_id": version.id, **{f"new_{key}": value for key, value in changes.items()}}
    result = tx.execute(_bump_version(tuple(changes)), params).one_or_none()
    if result is None:
        raise _conflict(tx, version.id)
    seq, revision, current_state, current_stage, current_total, current_message, has_webhook = result
    for key, value in changes.items():
        setattr(version, key, value)
    version.last_event_seq, version.revision = seq, revision
    version.state, version.stage, version.total_stages = current_state, current_stage, current_total
    draft = EventDraft(
        type=type,
        state=current_state,
        stage=current_stage,
        total_stages=current_total,
        message=current_message if message is None else message,
        paths=paths,
        error=error,
        create_time=now,
        queue=queue,
    )
    row = _event_row(version.id, seq, draft, now)
    tx.execute(_INSERT_EVENT, row)
    if has_webhook:
        enqueue_webhook_deliveries(tx, version_id=version.id, events=[(seq, type, current_state, now)])
    notify(tx, EVENTS_CHANNEL, str(version.id))
    return from_row(Event, row)


def append_events(
    tx: Transaction, *, version_id: int, after_seq: int, drafts: Sequence[EventDraft]
) -> list[Event]:
    """Stores a batch of events numbered after_seq+1, after_seq+2, ... in one statement each.

    The batch applies only if the version's latest event is still `after_seq` and the version
    is not in a terminal state: StateConflict otherwise (another writer got there first).
    """
    if not drafts:
        return []
    now = utcnow()
    last = drafts[-1]
    changes: dict[str, object] = {
        "update_time": now,
        "state": last.state,
        "stage": last.stage,
        "total_stages": last.total_stages,
        "message": last.message,
    }
    if last.state in TERMINAL_STATES:
        changes["complete_time"] = now
    if last.error is not None:
        changes.update(
            error_code=last.error.code, error_reason=last.error.reason, error_message=last.error.message
        )
    updated = tx.execute(
        _bump_version_batch(tuple(changes)),
        {
            "version_id": version_id,
            "after_seq": after_seq,
            "count": len(drafts),
            "new_last_event_seq": after_seq + len(drafts),
            **{f"new_{key}": value for key, value in changes.items()},
        },
    ).one_or_none()
    if updated is None:
        raise _conflict(tx, version_id)
    rows = [
        _event_row(version_id, after_seq + offset, draft, now) for offset, draft in enumerate(drafts, start=1)
    ]
    tx.execute(_INSERT_EVENT, rows)
    if updated.has_webhook:
        enqueue_webhook_deliveries(
            tx,
            version_id=version_id,
            events=[(row["seq"], row["type"], row["state"], row["create_time"]) for row in rows],
        )
    notify(tx, EVENTS_CHANNEL, str(version_id))
    return [from_row(Event, row) for row in rows]


def list_events(tx: Transaction, *, version_id: int, after_seq: int, limit: int = 500) -> list[Event]:
    rows = tx.execute(_EVENTS_AFTER, {"version_id": version_id, "after_seq": after_seq, "limit": limit})
    return [from_row(Event, row) for row in rows]


def last_event_seqs(tx: Transaction, *, version_ids: Collection[int]) -> dict[int, int]:
    """The seq of each version's latest event, by version id (ids of no version are left out).

    One statement per `_IDS_PER_STATEMENT` ids, whatever the number of versions asked about.
    """
    ids = sorted(set(version_ids))
    found: dict[int, int] = {}
    for start in range(0, len(ids), _IDS_PER_STATEMENT):
        rows = tx.execute(_LAST_EVENT_SEQS, {"ids": ids[start : start + _IDS_PER_STATEMENT]})
        found.update((version_id, seq) for version_id, seq in rows)
    return found


def _conflict(tx: Transaction, version_id: int) -> StateConflict:
    state, last_event_seq = tx.execute(_PROGRESS_OF, {"id": version_id}).one()
    return StateConflict(version_id, state, last_event_seq)


def _event_row(version_id: int, seq: int, draft: EventDraft, now: datetime) -> dict[str, Any]:
    error = draft.error
    return {
        "version_id": version_id,
        "seq": seq,
        "type": draft.type,
        "state": draft.state,
        "stage": draft.stage,
        "total_stages": draft.total_stages,
        "message": draft.message,
        "paths": list(draft.paths),
        "error_code": error.code if error else None,
        "error_reason": error.reason if error else None,
        "error_message": error.message if error else None,
        "queue_position": draft.queue.position if draft.queue else None,
        "estimated_start_time": draft.queue.start_time if draft.queue else None,
        "estimated_complete_time": draft.queue.complete_time if draft.queue else None,
        "create_time": draft.create_time or now,
    }


_INSERT_EVENT = sa.insert(EVENT)
_PROGRESS_OF = sa.select(VERSION.c.state, VERSION.c.last_event_seq).where(VERSION.c.id == sa.bindparam("id"))
# Well under SQLite's oldest limit on bound parameters (999).
_IDS_PER_STATEMENT = 500
_LAST_EVENT_SEQS = sa.select(VERSION.c.id, VERSION.c.last_event_seq).where(
    VERSION.c.id.in_(sa.bindparam("ids", expanding=True))
)
_EVENTS_AFTER = (
    sa.select(EVENT)
    .where(EVENT.c.version_id == sa.bindparam("version_id"), EVENT.c.seq > sa.bindparam("after_seq"))
    .order_by(EVENT.c.seq)
    .limit(sa.bindparam("limit"))
)


@functools.cache
def _bump_version(columns: tuple[str, ...]) -> sa.Update:
    """The UPDATE that numbers a version's next event and sets `columns` (from `new_<column>` params)."""
    return (
        sa.update(VERSION)
        .where(
            VERSION.c.id == sa.bindparam("version_id"),
            VERSION.c.state.not_in(sorted(TERMINAL_STATES)),
        )
        .values(
            last_event_seq=VERSION.c.last_event_seq + 1,
            revision=VERSION.c.revision + 1,
            **{column: sa.bindparam(f"new_{column}") for column in columns},
        )
        .returning(
            VERSION.c.last_event_seq,
            VERSION.c.revision,
            VERSION.c.state,
            VERSION.c.stage,
            VERSION.c.total_stages,
            VERSION.c.message,
            VERSION.c.has_webhook,
        )
    )


@functools.cache
def _bump_version_batch(columns: tuple[str, ...]) -> sa.Update:
    """The UPDATE that takes `count` events after `after_seq` and sets `columns` (from `new_<column>`)."""
    return (
        sa.update(VERSION)
        .where(
            VERSION.c.id == sa.bindparam("version_id"),
            VERSION.c.last_event_seq == sa.bindparam("after_seq"),
            VERSION.c.state.not_in(sorted(TERMINAL_STATES)),
        )
        .values(
            last_event_seq=sa.bindparam("new_last_event_seq"),
            revision=VERSION.c.revision + sa.bindparam("count", type_=sa.Integer),
            **{column: sa.bindparam(f"new_{column}") for column in columns},
        )
        .returning(VERSION.c.has_webhook)
    )
