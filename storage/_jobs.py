"""The durable job queue: workers claim jobs with a lease and keep it alive with heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col, select

from storage._clock import utcnow
from storage._database import Transaction
from storage._errors import WriteConflict
from storage._events import ErrorDetail, append_event
from storage._models import Event, EventType, Job, JobStatus, Version, VersionState
from storage._notifications import JOBS_CHANNEL, notify
from storage._tables import JOB


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    version_id: int
    attempt: int


def claim_job(tx: Transaction, *, worker: str, lease: timedelta) -> ClaimedJob | None:
    """Takes the oldest available QUEUED job whose session has no running job, or returns None.

    PostgreSQL skips rows other workers hold (FOR UPDATE SKIP LOCKED); SQLite needs no row
    lock because the write transaction already holds the database's write lock. If another
    worker started a job of the same session meanwhile, the unique index on running jobs
    refuses this claim, and the job waits for the next attempt.
    """
    now = utcnow()
    row = tx.execute(_NEXT_JOB, {"now": now}).one_or_none()
    if row is None:
        return None
    claimed_id, version_id = row
    try:
        with tx.begin_nested():
            attempt = tx.execute(
                _START_JOB,
                {"job_id": claimed_id, "worker": worker, "expires": now + lease, "now": now},
            ).scalar_one()
    except WriteConflict:
        return None
    return ClaimedJob(job_id=claimed_id, version_id=version_id, attempt=attempt)


_BUSY_SESSIONS = sa.select(JOB.c.session_id).where(
    JOB.c.status == JobStatus.RUNNING, JOB.c.session_id.is_not(None)
)
_NEXT_JOB = (
    sa.select(JOB.c.id, JOB.c.version_id)
    .where(
        JOB.c.status == JobStatus.QUEUED,
        JOB.c.available_at <= sa.bindparam("now"),
        sa.or_(JOB.c.session_id.is_(None), JOB.c.session_id.not_in(_BUSY_SESSIONS)),
    )
    .order_by(JOB.c.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
_START_JOB = (
    sa.update(JOB)
    .where(JOB.c.id == sa.bindparam("job_id"))
    .values(
        status=JobStatus.RUNNING,
        attempts=JOB.c.attempts + 1,
        lease_owner=sa.bindparam("worker"),
        lease_expires_at=sa.bindparam("expires"),
        update_time=sa.bindparam("now"),
    )
    .returning(JOB.c.attempts)
)
_RENEW_LEASE = (
    sa.update(JOB)
    .where(
        JOB.c.id == sa.bindparam("job_id"),
        JOB.c.lease_owner == sa.bindparam("worker"),
        JOB.c.status == JobStatus.RUNNING,
    )
    .values(lease_expires_at=sa.bindparam("expires"), update_time=sa.bindparam("now"))
    .returning(JOB.c.cancel_requested)
)
_HOLDS_LEASE = sa.select(JOB.c.id).where(
    JOB.c.id == sa.bindparam("job_id"),
    JOB.c.lease_owner == sa.bindparam("worker"),
    JOB.c.status == JobStatus.RUNNING,
)
_SET_JOB_STATUS = (
    sa.update(JOB)
    .where(JOB.c.id == sa.bindparam("job_id"))
    .values(
        status=sa.bindparam("new_status"),
        lease_owner=None,
        lease_expires_at=None,
        update_time=sa.bindparam("now"),
    )
)


def renew_lease(tx: Transaction, *, job_id: int, worker: str, lease: timedelta) -> bool | None:
    """Extends a running job's lease. Returns whether cancellation was requested, or None if the
    worker no longer holds the job (its lease expired and the job was taken from it)."""
    now = utcnow()
    row = tx.execute(
        _RENEW_LEASE, {"job_id": job_id, "worker": worker, "expires": now + lease, "now": now}
    ).one_or_none()
    return None if row is None else bool(row[0])


def holds_lease(tx: Transaction, *, job_id: int, worker: str) -> bool:
    return tx.execute(_HOLDS_LEASE, {"job_id": job_id, "worker": worker}).first() is not None


def has_queued_job(tx: Transaction, *, session_id: str) -> bool:
    """Whether a job of the conversation session waits in the queue."""
    return tx.execute(_QUEUED_IN_SESSION, {"session_id": session_id}).first() is not None


_QUEUED_IN_SESSION = (
    sa.select(JOB.c.id)
    .where(JOB.c.session_id == sa.bindparam("session_id"), JOB.c.status == JobStatus.QUEUED)
    .limit(1)
)


def finish_job(tx: Transaction, *, job_id: int) -> None:
    tx.execute(_SET_JOB_STATUS, {"job_id": job_id, "new_status": JobStatus.DONE, "now": utcnow()})


def requeue_job(tx: Transaction, *, job_id: int, version: Version, message: str) -> Event:
    """Puts a job back in the queue, for a worker to run from the start, and its version back to QUEUED."""
    tx.execute(_SET_JOB_STATUS, {"job_id": job_id, "new_status": JobStatus.QUEUED, "now": utcnow()})
    event = append_event(
        tx, version=version, type=EventType.STATE, state=VersionState.QUEUED, stage=0, message=message
    )
    notify(tx, JOBS_CHANNEL)
    return event


def end_job(
    tx: Transaction,
    *,
    job_id: int,
    version: Version,
    state: VersionState,
    message: str,
    error: ErrorDetail | None = None,
) -> Event:
    """Finishes a job and records its version's terminal state (with the reason, if it failed)."""
    finish_job(tx, job_id=job_id)
    return append_event(tx, version=version, type=EventType.STATE, state=state, message=message, error=error)


def request_cancel(tx: Transaction, *, version_id: int) -> Job | None:
    """Flags the version's job for cancellation; returns the job as it was before."""
    job = tx.exec(select(Job).where(Job.version_id == version_id).with_for_update()).one_or_none()
    if job is not None and job.status != JobStatus.DONE:
        job.cancel_requested = True
        job.update_time = utcnow()
        tx.add(job)
    return job


def expired_jobs(tx: Transaction) -> Sequence[Job]:
    """RUNNING jobs whose worker stopped renewing its lease (it crashed or was killed)."""
    statement = (
        select(Job)
        .where(Job.status == JobStatus.RUNNING, col(Job.lease_expires_at) < utcnow())
        .order_by(col(Job.id))
        .with_for_update(skip_locked=True)
    )
    return tx.exec(statement).all()


def job_for_version(tx: Transaction, *, version_id: int) -> Job | None:
    return tx.exec(select(Job).where(Job.version_id == version_id)).one_or_none()
