"""Versions: the revisions of a generation, each made by one job (or at once, for uploads and merges)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col, select

from storage._blobs import FileContent, put_blobs
from storage._clock import utcnow
from storage._database import Transaction
from storage._errors import GenerationDeleted, TooManyQueuedJobs
from storage._events import append_event
from storage._models import (
    EventType,
    Generation,
    JobStatus,
    Version,
    VersionAttachment,
    VersionKind,
    VersionState,
)
from storage._notifications import JOBS_CHANNEL, notify
from storage._tables import (
    ATTACHMENT,
    GENERATION,
    JOB,
    SESSION,
    VERSION,
    from_row,
    full_row,
    insert_params,
    one_or_none,
)


def create_version(
    tx: Transaction,
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
    attachments: Sequence[FileContent] = (),
    merge_parent_number: int | None = None,
    head_turn_id: int | None = None,
    queue_job: bool = True,
    session_id: str | None = None,
    max_queued_jobs: int = 0,
    batch_number: int | None = None,
    variant: str | None = None,
    draft_id: str | None = None,
) -> Version:
    """Adds the generation's next version, QUEUED, with its job and its first event.

    `parent_number` is the version the new one builds on (None for a first version). With
    `queue_job=False` the version gets no job and no event: the caller completes it in the
    same transaction (an upload or a merge, which need no model), and `head_turn_id` says where
    its branch of the conversation ends (a job sets it when its exchange is recorded).
    `session_id` is the generation's conversation session, when the caller already knows it.
    With `max_queued_jobs`, TooManyQueuedJobs when the owner already has that many jobs queued
    or running (counted in this transaction, so across replicas; see `_UNLOCKED_MARGIN`); then
    nothing is written.
    A fan-out's outputs are created one after another in one transaction, so a batch's numbers
    are consecutive: `batch_number` is the first one (`-1`: this version's own number).
    `draft_id` is the draft the prompt came from (DraftPrompt), if any.
    """
    if queue_job and max_queued_jobs:
        _check_queued_jobs(tx, generation.owner, max_queued_jobs)
    now = utcnow()
    number = tx.execute(
        _NEXT_VERSION_NUMBER, {"generation_id": generation.id, "now": now}
    ).scalar_one_or_none()
    if number is None:
        # Deleted after the caller found it: a deleted generation takes no new version (nor job).
        raise GenerationDeleted(generation.id)
    generation.version_count = number
    if batch_number == -1:
        batch_number = number
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
            "head_turn_id": head_turn_id,
            "turn": turn,
            "prompt": prompt,
            "model": model,
            "provider": provider,
            "state": VersionState.QUEUED,
            "message": "Queued",
            "request_id": request_id,
            "request_fingerprint": request_fingerprint,
            "batch_number": batch_number,
            "variant": variant,
            "draft_id": draft_id,
            "create_time": now,
            "update_time": now,
        },
    )
    row["id"] = version_id = tx.execute(_INSERT_VERSION, insert_params(row)).scalar_one()
    version = from_row(Version, row)
    if attachments:
        hashes = put_blobs(tx, (attachment.data for attachment in attachments))
        tx.execute(
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
    if batch_number is not None:
        # A session runs one job at a time (uq_job_running_session), so that its turns never
        # interleave; a fan-out's outputs are independent branches, each started from its own
        # base, and run at once: their jobs hold no session (the job still records its exchange
        # in the generation's session, numbered under record_exchange's lock).
        session_id = None
    elif session_id is None:
        session_id = tx.execute(_SESSION_OF_GENERATION, {"id": generation.id}).scalar_one()
    tx.execute(
        _INSERT_JOB,
        insert_params(
            full_row(
                JOB,
                {
                    "version_id": version_id,
                    "session_id": session_id,
                    "model": model,
                    "owner": generation.owner,
                    "status": JobStatus.QUEUED,
                    "available_at": now,
                    "queued_at": now,
                    "create_time": now,
                    "update_time": now,
                },
            )
        ),
    )
    append_event(tx, version=version, type=EventType.STATE, state=VersionState.QUEUED, message="Queued")
    notify(tx, JOBS_CHANNEL)
    return version


def _check_queued_jobs(tx: Transaction, owner: str, limit: int) -> None:
    count = tx.execute(_QUEUED_JOBS_OF_OWNER, {"owner": owner}).scalar_one()
    if count >= limit - _UNLOCKED_MARGIN and tx.get_bind().dialect.name == "postgresql":
        # Two transactions of one owner would each count the other's job as not yet there: near
        # the cap they take turns on a lock of the owner (held to the end of the transaction), and
        # count again. Far below it, an owner's creates do not wait on one another. SQLite's
        # writers take turns anyway.
        tx.execute(_LOCK_OWNER, {"owner": owner})
        count = tx.execute(_QUEUED_JOBS_OF_OWNER, {"owner": owner}).scalar_one()
    if count >= limit:
        raise TooManyQueuedJobs(owner, count, limit)


def find_version_by_request_id(tx: Transaction, *, owner: str, request_id: str) -> Version | None:
    """The version `owner`'s request id made: request ids are kept per owner (AIP-155)."""
    return one_or_none(tx, Version, _VERSION_BY_REQUEST_ID, owner=owner, request_id=request_id)


def get_version(tx: Transaction, *, owner: str | None, generation_id: str, number: int) -> Version | None:
    """The version, if `owner` owns it; with `owner` None (an admin's view), whoever owns it."""
    if owner is None:
        return one_or_none(tx, Version, _VERSION_BY_NUMBER, generation_id=generation_id, number=number)
    return one_or_none(
        tx, Version, _OWNED_VERSION_BY_NUMBER, generation_id=generation_id, number=number, owner=owner
    )


def get_version_by_id(tx: Transaction, version_id: int) -> Version:
    version = one_or_none(tx, Version, _VERSION_BY_ID, id=version_id)
    if version is None:
        raise LookupError(f"no version with id {version_id}")
    return version


def list_versions(
    tx: Transaction, *, owner: str | None, generation_id: str, after_number: int, limit: int
) -> Sequence[Version]:
    """The generation's versions by number, if `owner` owns them (None: whoever does)."""
    statement = select(Version).where(Version.generation_id == generation_id, Version.number > after_number)
    if owner is not None:
        statement = statement.where(Version.owner == owner)
    return tx.exec(statement.order_by(col(Version.number)).limit(limit)).all()


def list_batch(tx: Transaction, *, owner: str | None, generation_id: str, batch_number: int) -> list[Version]:
    """A batch's versions by number, if `owner` owns them (None: whoever does); empty if none."""
    statement = _BATCH if owner is None else _OWNED_BATCH
    params = {"generation_id": generation_id, "batch_number": batch_number, "owner": owner}
    return [from_row(Version, row) for row in tx.execute(statement, params)]


def list_attachments(tx: Transaction, *, version_id: int) -> list[VersionAttachment]:
    return [from_row(VersionAttachment, row) for row in tx.execute(_ATTACHMENTS, {"id": version_id})]


_INSERT_VERSION = sa.insert(VERSION).returning(VERSION.c.id)
_INSERT_JOB = sa.insert(JOB)
# How far below its cap an owner's creates count without the lock: the cap is exact unless more
# than this many creates of one owner are in flight at once across every replica.
_UNLOCKED_MARGIN = 100
# The advisory lock's first key names what the second one locks ("atjq": Atelier's job queues).
_OWNER_QUEUE_LOCK = 0x61746A71
_LOCK_OWNER = sa.select(
    sa.func.pg_advisory_xact_lock(_OWNER_QUEUE_LOCK, sa.func.hashtext(sa.bindparam("owner")))
)
_QUEUED_JOBS_OF_OWNER = sa.select(sa.func.count()).where(
    JOB.c.owner == sa.bindparam("owner"), JOB.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])
)
_NEXT_VERSION_NUMBER = (
    sa.update(GENERATION)
    .where(GENERATION.c.id == sa.bindparam("generation_id"), GENERATION.c.delete_time.is_(None))
    .values(version_count=GENERATION.c.version_count + 1, update_time=sa.bindparam("now"))
    .returning(GENERATION.c.version_count)
)
_SESSION_OF_GENERATION = sa.select(SESSION.c.id).where(SESSION.c.generation_id == sa.bindparam("id"))
_VERSION_BY_REQUEST_ID = sa.select(VERSION).where(
    VERSION.c.owner == sa.bindparam("owner"), VERSION.c.request_id == sa.bindparam("request_id")
)
_VERSION_BY_NUMBER = sa.select(VERSION).where(
    VERSION.c.generation_id == sa.bindparam("generation_id"),
    VERSION.c.number == sa.bindparam("number"),
    # The versions of a deleted generation are gone with it.
    sa.exists().where(GENERATION.c.id == VERSION.c.generation_id, GENERATION.c.delete_time.is_(None)),
)
_OWNED_VERSION_BY_NUMBER = _VERSION_BY_NUMBER.where(VERSION.c.owner == sa.bindparam("owner"))
_BATCH = (
    sa.select(VERSION)
    .where(
        VERSION.c.generation_id == sa.bindparam("generation_id"),
        VERSION.c.batch_number == sa.bindparam("batch_number"),
        sa.exists().where(GENERATION.c.id == VERSION.c.generation_id, GENERATION.c.delete_time.is_(None)),
    )
    .order_by(VERSION.c.number)
)
_OWNED_BATCH = _BATCH.where(VERSION.c.owner == sa.bindparam("owner"))
_VERSION_BY_ID = sa.select(VERSION).where(VERSION.c.id == sa.bindparam("id"))
_ATTACHMENTS = (
    sa.select(ATTACHMENT).where(ATTACHMENT.c.version_id == sa.bindparam("id")).order_by(ATTACHMENT.c.position)
)
