"""Generations, their versions, the versions' trees (manifests) and their progress events."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage._blobs import put_blobs
from storage._ids import new_generation_id, new_session_id
from storage._models import (
    TERMINAL_STATES,
    ConversationSession,
    Event,
    EventType,
    Generation,
    Job,
    JobStatus,
    Version,
    VersionAttachment,
    VersionKind,
    VersionState,
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
    generation = Generation(
        id=new_generation_id(),
        owner=owner,
        prompt=prompt,
        model=model,
        provider=provider,
        version_count=0,
        create_time=now,
        update_time=now,
    )
    session.add(generation)
    session.flush()  # the rows below refer to it, and there are no ORM relationships to order the inserts
    session.add(
        ConversationSession(
            id=new_session_id(),
            generation_id=generation.id,
            owner=owner,
            model=model,
            create_time=now,
            update_time=now,
        )
    )
    session.flush()
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
) -> Version:
    """Adds the generation's next version, QUEUED, with its job and its first event.

    With `queue_job=False` the version gets no job and no event: the caller completes it in
    the same transaction (an upload or a merge, which need no model).
    """
    now = utcnow()
    number = session.execute(
        sa.update(Generation)
        .where(col(Generation.id) == generation.id)
        .values(version_count=Generation.version_count + 1, update_time=now)
        .returning(col(Generation.version_count))
    ).scalar_one()
    generation.version_count = number
    version = Version(
        generation_id=generation.id,
        number=number,
        owner=generation.owner,
        kind=kind,
        parent_number=parent_number,
        merge_parent_number=merge_parent_number,
        base_turn_id=base_turn_id,
        turn=turn,
        prompt=prompt,
        model=model,
        provider=provider,
        state=VersionState.QUEUED,
        message="Queued",
        request_id=request_id,
        request_fingerprint=request_fingerprint,
        create_time=now,
        update_time=now,
    )
    session.add(version)
    session.flush()
    assert version.id is not None
    if attachments:
        hashes = put_blobs(session, (attachment.data for attachment in attachments))
        session.add_all(
            VersionAttachment(
                version_id=version.id,
                position=position,
                name=attachment.path,
                mime_type=attachment.mime_type,
                blob_sha256=digest,
            )
            for position, (attachment, digest) in enumerate(zip(attachments, hashes, strict=True))
        )
    if not queue_job:
        return version
    session_id = session.execute(
        sa.select(col(ConversationSession.id)).where(col(ConversationSession.generation_id) == generation.id)
    ).scalar_one()
    session.add(
        Job(
            version_id=version.id,
            session_id=session_id,
            status=JobStatus.QUEUED,
            available_at=now,
            create_time=now,
            update_time=now,
        )
    )
    append_event(session, version=version, type=EventType.STATE, state=VersionState.QUEUED, message="Queued")
    notify(session, JOBS_CHANNEL)
    return version


def find_version_by_request_id(session: Session, *, owner: str, request_id: str) -> Version | None:
    statement = select(Version).where(Version.owner == owner, Version.request_id == request_id)
    return session.exec(statement).one_or_none()


def get_generation(session: Session, *, owner: str, generation_id: str) -> Generation | None:
    statement = select(Generation).where(Generation.id == generation_id, Generation.owner == owner)
    return session.exec(statement).one_or_none()


def list_generations(
    session: Session, *, owner: str, before_id: str | None, limit: int
) -> Sequence[Generation]:
    """The owner's generations, newest first, strictly older than `before_id` when given."""
    statement = select(Generation).where(Generation.owner == owner)
    if before_id is not None:
        statement = statement.where(Generation.id < before_id)
    return session.exec(statement.order_by(col(Generation.id).desc()).limit(limit)).all()


def get_version(session: Session, *, owner: str, generation_id: str, number: int) -> Version | None:
    statement = select(Version).where(
        Version.generation_id == generation_id, Version.number == number, Version.owner == owner
    )
    return session.exec(statement).one_or_none()


def get_version_by_id(session: Session, version_id: int) -> Version:
    version = session.get(Version, version_id, populate_existing=True)
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


def list_attachments(session: Session, *, version_id: int) -> Sequence[VersionAttachment]:
    statement = (
        select(VersionAttachment)
        .where(VersionAttachment.version_id == version_id)
        .order_by(col(VersionAttachment.position))
    )
    return session.exec(statement).all()


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
    """Records the next event of a version and applies it to the version row.

    The version's event counter is bumped by one UPDATE, so concurrent writers get
    distinct, gap-free sequence numbers. A version in a terminal state takes no more
    events: StateConflictError.
    """
    assert version.id is not None
    now = utcnow()
    changes: dict[str, object] = {
        "last_event_seq": Version.last_event_seq + 1,
        "revision": Version.revision + 1,
        "update_time": now,
    }
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
    result = session.execute(
        sa.update(Version)
        .where(col(Version.id) == version.id, col(Version.state).not_in(list(TERMINAL_STATES)))
        .values(changes)
        .returning(
            col(Version.last_event_seq),
            col(Version.state),
            col(Version.stage),
            col(Version.total_stages),
            col(Version.message),
        )
    ).one_or_none()
    if result is None:
        raise StateConflictError(get_version_by_id(session, version.id))
    seq, current_state, current_stage, current_total, current_message = result
    event = Event(
        version_id=version.id,
        seq=seq,
        type=type,
        state=current_state,
        stage=current_stage,
        total_stages=current_total,
        message=current_message if message is None else message,
        paths=list(paths),
        error_code=error.code if error else None,
        error_reason=error.reason if error else None,
        error_message=error.message if error else None,
        create_time=now,
    )
    session.add(event)
    notify(session, EVENTS_CHANNEL, str(version.id))
    return event


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
        "last_event_seq": after_seq + len(drafts),
        "revision": Version.revision + len(drafts),
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
        sa.update(Version)
        .where(
            col(Version.id) == version_id,
            col(Version.last_event_seq) == after_seq,
            col(Version.state).not_in(list(TERMINAL_STATES)),
        )
        .values(changes)
    )
    if updated.rowcount != 1:  # type: ignore[attr-defined]
        raise StateConflictError(get_version_by_id(session, version_id))
    events = [
        Event(
            version_id=version_id,
            seq=after_seq + offset,
            type=draft.type,
            state=draft.state,
            stage=draft.stage,
            total_stages=draft.total_stages,
            message=draft.message,
            paths=list(draft.paths),
            error_code=draft.error.code if draft.error else None,
            error_reason=draft.error.reason if draft.error else None,
            error_message=draft.error.message if draft.error else None,
            create_time=draft.create_time or now,
        )
        for offset, draft in enumerate(drafts, start=1)
    ]
    session.execute(sa.insert(Event), [event.model_dump() for event in events])
    notify(session, EVENTS_CHANNEL, str(version_id))
    return events


def list_events(session: Session, *, version_id: int, after_seq: int, limit: int = 500) -> Sequence[Event]:
    statement = (
        select(Event)
        .where(Event.version_id == version_id, Event.seq > after_seq)
        .order_by(col(Event.seq))
        .limit(limit)
    )
    return session.exec(statement).all()


def store_files(session: Session, files: Sequence[NewFile]) -> list[TreeEntry]:
    """Stores the files' contents (each distinct content once) and returns their tree entries."""
    hashes = put_blobs(session, (file.data for file in files))
    return [
        TreeEntry(path=file.path, blob_sha256=digest, size=len(file.data), mime_type=file.mime_type)
        for file, digest in zip(files, hashes, strict=True)
    ]
