"""Deleting generations: soft delete and undelete (AIP-135, AIP-164), retention, and the purge.

A soft-deleted generation keeps every row: its versions' trees still refer to their blobs, so
undeleting it restores it whole. The purge removes its rows for good; the blobs nothing else
refers to are then left for the blob collector (storage._blobs).

Locks are taken in one order by every writer that meets a purge: the generation's row, then its
jobs' rows, then its versions' rows. A job settling its result holds its job row first
(`holds_lease`), so either the job commits and the purge then removes what it wrote, or the
purge commits and the job finds its lease gone and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from storage._database import Transaction
from storage._models import Generation, Version, VersionState
from storage._notifications import GENERATIONS_CHANNEL, notify
from storage._tables import (
    ATTACHMENT,
    EVENT,
    GENERATION,
    JOB,
    MANIFEST,
    SESSION,
    TURN,
    TURN_BLOB,
    VERSION,
    WEBHOOK_ATTEMPT,
    WEBHOOK_DELIVERY,
    WEBHOOK_SUBSCRIPTION,
    from_row,
    one_or_none,
)


def delete_generation(
    tx: Transaction, *, generation_id: str, now: datetime, expire_time: datetime
) -> Generation | None:
    """Soft-deletes a generation: hidden from now on, purged after `expire_time`. Returns it as
    deleted, or None if there is no such generation or it is deleted already."""
    row = tx.execute(
        _SOFT_DELETE, {"generation_id": generation_id, "now": now, "new_expire_time": expire_time}
    ).one_or_none()
    if row is None:
        return None
    notify(tx, GENERATIONS_CHANNEL, generation_id)
    return from_row(Generation, row)


def undelete_generation(
    tx: Transaction, *, owner: str | None, generation_id: str, now: datetime
) -> Generation | None:
    """Restores the owner's (any owner's, with None) soft-deleted generation, unless it expired,
    as updated `now`. Returns it, or None if there is no such deleted generation (or it expired)."""
    params = {"generation_id": generation_id, "owner_name": owner, "now": now}
    statement = _UNDELETE if owner is None else _OWNED_UNDELETE
    row = tx.execute(statement, params).one_or_none()
    return None if row is None else from_row(Generation, row)


def get_deleted_generation(tx: Transaction, *, owner: str | None, generation_id: str) -> Generation | None:
    """The owner's (any owner's, with None) soft-deleted generation, expired or not, or None."""
    statement = _DELETED_BY_ID if owner is None else _OWNED_DELETED_BY_ID
    return one_or_none(tx, Generation, statement, generation_id=generation_id, owner_name=owner)


def versions_in_flight(tx: Transaction, *, generation_id: str) -> list[Version]:
    """The generation's versions whose jobs have not ended (QUEUED or RUNNING), oldest first."""
    return [from_row(Version, row) for row in tx.execute(_IN_FLIGHT, {"generation_id": generation_id})]


def generations_updated_before(tx: Transaction, *, before: datetime, limit: int) -> list[str]:
    """The ids of generations (not deleted) whose last update is older than `before`: retention's due."""
    return list(tx.execute(_NOT_UPDATED_SINCE, {"before": before, "limit": limit}).scalars())


def expired_generations(tx: Transaction, *, now: datetime, limit: int) -> list[str]:
    """The ids of soft-deleted generations whose expiry has passed: the purge's due."""
    return list(tx.execute(_EXPIRED, {"now": now, "limit": limit}).scalars())


def purge_generation(tx: Transaction, *, generation_id: str) -> bool:
    """Removes a generation and everything of it (deleted or not) for good: its versions, trees,
    attachments, events, jobs, session and turns. Returns False if there is no such generation.

    Its blobs stay until the blob collector finds that nothing else refers to them.
    """
    params = {"generation_id": generation_id}
    if tx.execute(_LOCK_GENERATION, params).first() is None:
        return False
    tx.execute(_DELETE_JOBS, params)
    # Writers of the versions' progress wait from here on, and then find the versions gone.
    tx.execute(_LOCK_VERSIONS, params).all()
    for statement in _PURGE:
        tx.execute(statement, params)
    notify(tx, GENERATIONS_CHANNEL, generation_id)
    return True


_ID: sa.BindParameter[str] = sa.bindparam("generation_id")
_SOFT_DELETE = (
    sa.update(GENERATION)
    .where(GENERATION.c.id == _ID, GENERATION.c.delete_time.is_(None))
    .values(delete_time=sa.bindparam("now"), expire_time=sa.bindparam("new_expire_time"))
    .returning(*GENERATION.c)
)
_UNDELETE = (
    sa.update(GENERATION)
    .where(
        GENERATION.c.id == _ID,
        GENERATION.c.delete_time.is_not(None),
        GENERATION.c.expire_time > sa.bindparam("now"),
    )
    # An undeleted generation counts as updated: retention gives it a whole period again.
    .values(delete_time=None, expire_time=None, update_time=sa.bindparam("now"))
    .returning(*GENERATION.c)
)
_OWNED_UNDELETE = _UNDELETE.where(GENERATION.c.owner == sa.bindparam("owner_name"))
_DELETED_BY_ID = sa.select(GENERATION).where(GENERATION.c.id == _ID, GENERATION.c.delete_time.is_not(None))
_OWNED_DELETED_BY_ID = _DELETED_BY_ID.where(GENERATION.c.owner == sa.bindparam("owner_name"))
_IN_FLIGHT = (
    sa.select(VERSION)
    .where(
        VERSION.c.generation_id == _ID,
        VERSION.c.state.in_([VersionState.QUEUED, VersionState.RUNNING]),
    )
    .order_by(VERSION.c.number)
)
_NOT_UPDATED_SINCE = (
    sa.select(GENERATION.c.id)
    .where(GENERATION.c.delete_time.is_(None), GENERATION.c.update_time < sa.bindparam("before"))
    .order_by(GENERATION.c.update_time)
    .limit(sa.bindparam("limit"))
)
_EXPIRED = (
    sa.select(GENERATION.c.id)
    .where(GENERATION.c.delete_time.is_not(None), GENERATION.c.expire_time <= sa.bindparam("now"))
    .order_by(GENERATION.c.expire_time)
    .limit(sa.bindparam("limit"))
)
_LOCK_GENERATION = sa.select(GENERATION.c.id).where(GENERATION.c.id == _ID).with_for_update()
_VERSIONS_OF = sa.select(VERSION.c.id).where(VERSION.c.generation_id == _ID)
_SESSIONS_OF = sa.select(SESSION.c.id).where(SESSION.c.generation_id == _ID)
_DELETE_JOBS = sa.delete(JOB).where(JOB.c.version_id.in_(_VERSIONS_OF))
_LOCK_VERSIONS = _VERSIONS_OF.order_by(VERSION.c.id).with_for_update()


def _build_purge() -> Sequence[sa.Delete]:
    turns_of = sa.select(TURN.c.id).where(TURN.c.session_id.in_(_SESSIONS_OF))
    deliveries_of = sa.select(WEBHOOK_DELIVERY.c.id).where(WEBHOOK_DELIVERY.c.version_id.in_(_VERSIONS_OF))
    # Children before parents: every statement leaves no row referring to one it removed.
    return (
        sa.delete(TURN_BLOB).where(TURN_BLOB.c.turn_id.in_(turns_of)),
        sa.delete(TURN).where(TURN.c.session_id.in_(_SESSIONS_OF)),
        sa.delete(WEBHOOK_ATTEMPT).where(WEBHOOK_ATTEMPT.c.delivery_id.in_(deliveries_of)),
        sa.delete(WEBHOOK_DELIVERY).where(WEBHOOK_DELIVERY.c.version_id.in_(_VERSIONS_OF)),
        sa.delete(WEBHOOK_SUBSCRIPTION).where(WEBHOOK_SUBSCRIPTION.c.version_id.in_(_VERSIONS_OF)),
        sa.delete(EVENT).where(EVENT.c.version_id.in_(_VERSIONS_OF)),
        sa.delete(MANIFEST).where(MANIFEST.c.version_id.in_(_VERSIONS_OF)),
        sa.delete(ATTACHMENT).where(ATTACHMENT.c.version_id.in_(_VERSIONS_OF)),
        sa.delete(VERSION).where(VERSION.c.generation_id == _ID),
        sa.delete(SESSION).where(SESSION.c.generation_id == _ID),
        sa.delete(GENERATION).where(GENERATION.c.id == _ID),
    )


_PURGE = _build_purge()
