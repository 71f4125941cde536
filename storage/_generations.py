"""Generations: one lineage of versions each, with the conversation session behind it."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import col, select

from storage._blobs import FileContent
from storage._clock import utcnow
from storage._database import Transaction
from storage._ids import new_generation_id, new_session_id
from storage._models import Generation, Version, VersionKind
from storage._tables import GENERATION, SESSION, from_row, full_row, one_or_none
from storage._versions import create_version


def create_generation(
    tx: Transaction,
    *,
    owner: str,
    prompt: str,
    model: str,
    provider: str,
    request_id: str | None,
    request_fingerprint: str | None,
    attachments: Sequence[FileContent] = (),
    kind: VersionKind = VersionKind.GENERATE,
    queue_job: bool = True,
    max_queued_jobs: int = 0,
    version_prompt: str | None = None,
    batch_number: int | None = None,
    variant: str | None = None,
    draft_id: str | None = None,
) -> tuple[Generation, Version]:
    """Creates a generation, its conversation session, and version 1 (see create_version).

    `version_prompt` is version 1's own prompt when it differs from the generation's (a fan-out's
    variant adds its suffix); `batch_number` and `variant` place it in a fan-out.

    A version 1 made by a job is turn 1 of the conversation; one made without a model (an
    upload, `queue_job=False`) holds no exchange: its turn is 0.
    """
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
    tx.execute(_INSERT_GENERATION, generation_row)
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
    tx.execute(_INSERT_SESSION, session_row)
    generation = from_row(Generation, generation_row)
    version = create_version(
        tx,
        generation=generation,
        kind=kind,
        prompt=prompt if version_prompt is None else version_prompt,
        model=model,
        provider=provider,
        queue_job=queue_job,
        batch_number=batch_number,
        variant=variant,
        parent_number=None,
        base_turn_id=None,
        turn=1 if queue_job else 0,
        request_id=request_id,
        request_fingerprint=request_fingerprint,
        attachments=attachments,
        session_id=session_row["id"],
        max_queued_jobs=max_queued_jobs,
        draft_id=draft_id,
    )
    return generation, version


def get_generation(tx: Transaction, *, owner: str | None, generation_id: str) -> Generation | None:
    """The generation, if `owner` owns it; with `owner` None (an admin's view), whoever owns it."""
    if owner is None:
        return one_or_none(tx, Generation, _GENERATION_BY_ID, id=generation_id)
    return one_or_none(tx, Generation, _OWNED_GENERATION_BY_ID, id=generation_id, owner=owner)


def list_generations(
    tx: Transaction, *, owner: str | None, before_id: str | None, limit: int, show_deleted: bool = False
) -> Sequence[Generation]:
    """The owner's generations (every owner's when `owner` is None), newest first, strictly older
    than `before_id` when given; the soft-deleted ones too (not yet purged) with `show_deleted`."""
    statement = select(Generation)
    if owner is not None:
        statement = statement.where(Generation.owner == owner)
    if not show_deleted:
        statement = statement.where(col(Generation.delete_time).is_(None))
    if before_id is not None:
        statement = statement.where(Generation.id < before_id)
    return tx.exec(statement.order_by(col(Generation.id).desc()).limit(limit)).all()


_INSERT_GENERATION = sa.insert(GENERATION)
_INSERT_SESSION = sa.insert(SESSION)
_GENERATION_BY_ID = sa.select(GENERATION).where(
    GENERATION.c.id == sa.bindparam("id"), GENERATION.c.delete_time.is_(None)
)
_OWNED_GENERATION_BY_ID = _GENERATION_BY_ID.where(GENERATION.c.owner == sa.bindparam("owner"))
