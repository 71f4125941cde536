"""Generations, their versions, the versions' trees (manifests) and their progress events."""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage._blobs import put_blobs
from storage._ids import new_generation_id, new_session_id
from storage._models import (
    TERMINAL_STATES,
    Event,
    EventType,
    Generation,
    JobStatus,
    Version,
    VersionAttachment,
    VersionKind,
    VersionState,
)
from storage._tables import (
    ATTACHMENT,
    EVENT,
    GENERATION,
    JOB,
    SESSION,
    VERSION,
    from_row,
    full_row,
    insert_params,
    one_or_none,
)


class StateConflictError(Exception):
    """The version is already in a terminal state, so it can no longer change."""

    def __init__(self, version: Version) -> None:
        super().__init__(f"version {version.generation_id}/{version.number} is already {version.state}")
        self.version = version


@dataclass(frozen=True, slots=True)
class NewFile:
    path: str
    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """A file of a version's tree whose contents are already stored as a blob."""

    path: str
    blob_sha256: str
    size: int
    mime_type: str


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """Why a version failed or was cancelled: a gRPC code name, an ErrorInfo reason, a message."""

    code: str
    reason: str
    message: str


EVENTS_CHANNEL = "atelier_events"
JOBS_CHANNEL = "atelier_jobs"


# Names this process in its notifications, so that it can ignore its own.
PROCESS_TAG = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def notify(session: Session, channel: str, payload: str = "") -> None:
    """Tells other server processes (PostgreSQL LISTEN) once this transaction commits.

    The payload arrives as "<payload> <PROCESS_TAG of the sender>".
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_notify(channel, f"{payload} {PROCESS_TAG}")))


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_generation(
    session: Session,
    *,
    owner: str,
    prompt: str,
    model: str,
    provider: str,
    request_id: str | None,
    request_fingerprint: str | None,
    attachments: Sequence[NewFile] = (),
    kind: VersionKind = VersionKind.GENERATE,
    queue_job: bool = True,
) -> tuple[Generation, Version]:
    """Creates a generation, its conversation session, and version 1 (see create_version)."""
    now = utcnow()
    generation_row = full_row(
        GENERATION,
        {
            "id": new_generation_id(),
            "owner": owner,
            "prompt": prompt,
            "model": model,
            "provider": provider,
            "version_count": 0,
            "create_time": now,
            "update_time": now,
        },
    )
    session.execute(_INSERT_GENERATION, generation_row)
    session_row = full_row(
        SESSION,
        {
            "id": new_session_id(),
            "generation_id": generation_row["id"],
            "owner": owner,
            "model": model,
            "create_time": now,
            "update_time": now,
        },
    )
    session.execute(_INSERT_SESSION, session_row)
    generation = from_row(Generation, generation_row)
    version = create_version(
        session,
        generation=generation,
        kind=kind,
        prompt=prompt,
        model=model,
        provider=provider,
        queue_job=queue_job,
        parent_number=None,
        base_turn_id=None,
        turn=1,
        request_id=request_id,
        request_fingerprint=request_fingerprint,
        attachments=attachments,
        session_id=session_row["id"],
    )
    return generation, version


def create_version(
    session: Session,
    *,
    generation: Generation,
    kind: VersionKind,
    prompt: str,
    model: str,
    provider: str,
    parent_number: int | None,
    base_turn_id: int | None,
    turn: int,
    request_id: str | None,
    request_fingerprint: str | None,
    attachments: Sequence[NewFile] = (),
    merge_parent_number: int | None = None,
    queue_job: bool = True,
    session_id: str | None = None,
) -> Version:
    """Adds the generation's next version, QUEUED, with its job and its first event.

    With `queue_job=False` the version gets no job and no event: the caller completes it in
    the same transaction (an upload or a merge, which need no model). `session_id` is the
    generation's conversation session, when the caller already knows it.
    """
    now = utcnow()
    number = session.execute(_NEXT_VERSION_NUMBER, {"generation_id": generation.id, "now": now}).scalar_one()
    generation.version_count = number
    row = full_row(
        VERSION,
        {
            "generation_id": generation.id,
            "number": number,
            "owner": generation.owner,
            "kind": kind,
            "parent_number": parent_number,
            "merge_parent_number": merge_parent_number,
            "base_turn_id": base_turn_id,
            "turn": turn,
            "prompt": prompt,
            "model": model,
            "provider": provider,
            "state": VersionState.QUEUED,
            "message": "Queued",
            "request_id": request_id,
            "request_fingerprint": request_fingerprint,
            "create_time": now,
            "update_time": now,
        },
    )
    row["id"] = version_id = session.execute(_INSERT_VERSION, insert_params(row)).scalar_one()
    version = from_row(Version, row)
    if attachments:
        hashes = put_blobs(session, (attachment.data for attachment in attachments))
        session.execute(
            sa.insert(ATTACHMENT),
            [
                {
                    "version_id": version_id,
                    "position": position,
                    "name": attachment.path,
                    "mime_type": attachment.mime_type,
                    "blob_sha256": digest,
                }
                for position, (attachment, digest) in enumerate(zip(attachments, hashes, strict=True))
            ],
        )
    if not queue_job:
        return version
    if session_id is None:
        session_id = session.execute(_SESSION_OF_GENERATION, {"id": generation.id}).scalar_one()
    session.execute(
        _INSERT_JOB,
        insert_params(
            full_row(
                JOB,
                {
                    "version_id": version_id,
                    "session_id": session_id,
                    "status": JobStatus.QUEUED,
                    "available_at": now,
                    "create_time": now,
                    "update_time": now,
                },
            )
        ),
    )
    append_event(session, version=version, type=EventType.STATE, state=VersionState.QUEUED, message="Queued")
    notify(session, JOBS_CHANNEL)
    return version


_INSERT_GENERATION = sa.insert(GENERATION)
_INSERT_SESSION = sa.insert(SESSION)
_INSERT_VERSION = sa.insert(VERSION).returning(VERSION.c.id)
_INSERT_JOB = sa.insert(JOB)
_NEXT_VERSION_NUMBER = (
    sa.update(GENERATION)
    .where(GENERATION.c.id == sa.bindparam("generation_id"))
    .values(version_count=GENERATION.c.version_count + 1, update_time=sa.bindparam("now"))
    .returning(GENERATION.c.version_count)
)
_SESSION_OF_GENERATION = sa.select(SESSION.c.id).where(SESSION.c.generation_id == sa.bindparam("id"))
_VERSION_BY_REQUEST_ID = sa.select(VERSION).where(
    VERSION.c.owner == sa.bindparam("owner"), VERSION.c.request_id == sa.bindparam("request_id")
)
_GENERATION_BY_ID = sa.select(GENERATION).where(
    GENERATION.c.id == sa.bindparam("id"), GENERATION.c.owner == sa.bindparam("owner")
)
_VERSION_BY_NUMBER = sa.select(VERSION).where(
    VERSION.c.generation_id == sa.bindparam("generation_id"),
    VERSION.c.number == sa.bindparam("number"),
    VERSION.c.owner == sa.bindparam("owner"),
)
_VERSION_BY_ID = sa.select(VERSION).where(VERSION.c.id == sa.bindparam("id"))


def find_version_by_request_id(session: Session, *, owner: str, request_id: str) -> Version | None:
    return one_or_none(session, Version, _VERSION_BY_REQUEST_ID, owner=owner, request_id=request_id)


def get_generation(session: Session, *, owner: str, generation_id: str) -> Generation | None:
    return one_or_none(session, Generation, _GENERATION_BY_ID, id=generation_id, owner=owner)


def list_generations(
    session: Session, *, owner: str, before_id: str | None, limit: int
) -> Sequence[Generation]:
    """The owner's generations, newest first, strictly older than `before_id` when given."""
    statement = select(Generation).where(Generation.owner == owner)
    if before_id is not None:
        statement = statement.where(Generation.id < before_id)
    return session.exec(statement.order_by(col(Generation.id).desc()).limit(limit)).all()


def get_version(session: Session, *, owner: str, generation_id: str, number: int) -> Version | None:
    return one_or_none(
        session, Version, _VERSION_BY_NUMBER, generation_id=generation_id, number=number, owner=owner
    )


def get_version_by_id(session: Session, version_id: int) -> Version:
    version = one_or_none(session, Version, _VERSION_BY_ID, id=version_id)
    if version is None:
        raise LookupError(f"no version with id {version_id}")
    return version


def list_versions(
    session: Session, *, owner: str, generation_id: str, after_number: int, limit: int
) -> Sequence[Version]:
    statement = (
        select(Version)
        .where(Version.generation_id == generation_id, Version.owner == owner, Version.number > after_number)
        .order_by(col(Version.number))
        .limit(limit)
    )
    return session.exec(statement).all()


_ATTACHMENTS = (
    sa.select(ATTACHMENT).where(ATTACHMENT.c.version_id == sa.bindparam("id")).order_by(ATTACHMENT.c.position)
)


def list_attachments(session: Session, *, version_id: int) -> list[VersionAttachment]:
    return [from_row(VersionAttachment, row) for row in session.execute(_ATTACHMENTS, {"id": version_id})]


def append_event(
    session: Session,
    *,
    version: Version,
    type: EventType,
    state: VersionState | None = None,
    stage: int | None = None,
    total_stages: int | None = None,
    message: str | None = None,
    paths: Sequence[str] = (),
    error: ErrorDetail | None = None,
) -> Event:
    """Records the next event of a version and applies it to the version row (and to `version`).

    The version's event counter is bumped by one UPDATE, so concurrent writers get
    distinct, gap-free sequence numbers. A version in a terminal state takes no more
    events: StateConflictError.
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
    result = session.execute(_bump_version(tuple(changes)), params).one_or_none()
    if result is None:
        raise StateConflictError(get_version_by_id(session, version.id))
    seq, revision, current_state, current_stage, current_total, current_message = result
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
    )
    row = _event_row(version.id, seq, draft, now)
    session.execute(_INSERT_EVENT, row)
    notify(session, EVENTS_CHANNEL, str(version.id))
    return from_row(Event, row)


_INSERT_EVENT = sa.insert(EVENT)


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
        )
    )


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


def append_events(
    session: Session, *, version_id: int, after_seq: int, drafts: Sequence[EventDraft]
) -> list[Event]:
    """Stores a batch of events numbered after_seq+1, after_seq+2, ... in one statement each.

    The batch applies only if the version's latest event is still `after_seq` and the version
    is not in a terminal state: StateConflictError otherwise (another writer got there first).
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
    updated = session.execute(
        _bump_version_batch(tuple(changes)),
        {
            "version_id": version_id,
            "after_seq": after_seq,
            "count": len(drafts),
            "new_last_event_seq": after_seq + len(drafts),
            **{f"new_{key}": value for key, value in changes.items()},
        },
    )
    if updated.rowcount != 1:  # type: ignore[attr-defined]
        raise StateConflictError(get_version_by_id(session, version_id))
    rows = [
        _event_row(version_id, after_seq + offset, draft, now) for offset, draft in enumerate(drafts, start=1)
    ]
    session.execute(_INSERT_EVENT, rows)
    notify(session, EVENTS_CHANNEL, str(version_id))
    return [from_row(Event, row) for row in rows]


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
        "create_time": draft.create_time or now,
    }


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
    )


_EVENTS_AFTER = (
    sa.select(EVENT)
    .where(EVENT.c.version_id == sa.bindparam("version_id"), EVENT.c.seq > sa.bindparam("after_seq"))
    .order_by(EVENT.c.seq)
    .limit(sa.bindparam("limit"))
)


def list_events(session: Session, *, version_id: int, after_seq: int, limit: int = 500) -> list[Event]:
    rows = session.execute(_EVENTS_AFTER, {"version_id": version_id, "after_seq": after_seq, "limit": limit})
    return [from_row(Event, row) for row in rows]


def store_files(session: Session, files: Sequence[NewFile]) -> list[TreeEntry]:
    """Stores the files' contents (each distinct content once) and returns their tree entries."""
    hashes = put_blobs(session, (file.data for file in files))
    return [
        TreeEntry(path=file.path, blob_sha256=digest, size=len(file.data), mime_type=file.mime_type)
        for file, digest in zip(files, hashes, strict=True)
    ]
