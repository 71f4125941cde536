"""The durable job queue: workers claim jobs with a lease and keep it alive with heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage._models import EventType, Job, JobStatus, Version, VersionState
from storage._versions import JOBS_CHANNEL, ErrorDetail, append_event, notify, utcnow


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    version_id: int
    attempt: int


def claim_job(session: Session, *, worker: str, lease: timedelta) -> ClaimedJob | None:
    """Takes the oldest available QUEUED job whose session has no running job, or returns None.

    PostgreSQL skips rows other workers hold (FOR UPDATE SKIP LOCKED); SQLite needs no row
    lock because the write transaction already holds the database's write lock. If another
    worker started a job of the same session meanwhile, the unique index on running jobs
    refuses this claim, and the job waits for the next attempt.
    """
    now = utcnow()
    busy_sessions = select(Job.session_id).where(
        Job.status == JobStatus.RUNNING, col(Job.session_id).is_not(None)
    )
    statement = (
        select(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            col(Job.available_at) <= now,
            sa.or_(col(Job.session_id).is_(None), col(Job.session_id).not_in(busy_sessions)),
        )
        .order_by(col(Job.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job = session.exec(statement).first()
    if job is None:
        return None
    assert job.id is not None
    try:
        with session.begin_nested():
            attempt = session.execute(
                sa.update(Job)
                .where(col(Job.id) == job.id)
                .values(
                    status=JobStatus.RUNNING,
                    attempts=Job.attempts + 1,
                    lease_owner=worker,
                    lease_expires_at=now + lease,
                    update_time=now,
                )
                .returning(col(Job.attempts))
            ).scalar_one()
    except sa.exc.IntegrityError:
        return None
    return ClaimedJob(job_id=job.id, version_id=job.version_id, attempt=attempt)


def renew_lease(session: Session, *, job_id: int, worker: str, lease: timedelta) -> bool | None:
    """Extends a running job's lease. Returns whether cancellation was requested, or None if the
    worker no longer holds the job (its lease expired and the job was taken from it)."""
    now = utcnow()
    row = session.execute(
        sa.update(Job)
        .where(col(Job.id) == job_id, col(Job.lease_owner) == worker, col(Job.status) == JobStatus.RUNNING)
        .values(lease_expires_at=now + lease, update_time=now)
        .returning(col(Job.cancel_requested))
    ).one_or_none()
    return None if row is None else bool(row[0])


def holds_lease(session: Session, *, job_id: int, worker: str) -> bool:
    statement = select(Job.id).where(
        Job.id == job_id, Job.lease_owner == worker, Job.status == JobStatus.RUNNING
    )
    return session.exec(statement).first() is not None


def finish_job(session: Session, *, job_id: int) -> None:
    now = utcnow()
    session.execute(
        sa.update(Job)
        .where(col(Job.id) == job_id)
        .values(status=JobStatus.DONE, lease_owner=None, lease_expires_at=None, update_time=now)
    )


def requeue_job(session: Session, *, job_id: int, version: Version, message: str) -> None:
    """Puts a job back in the queue, for a worker to run from the start, and its version back to QUEUED."""
    now = utcnow()
    session.execute(
        sa.update(Job)
        .where(col(Job.id) == job_id)
        .values(status=JobStatus.QUEUED, lease_owner=None, lease_expires_at=None, update_time=now)
    )
    append_event(
        session, version=version, type=EventType.STATE, state=VersionState.QUEUED, stage=0, message=message
    )
    notify(session, JOBS_CHANNEL)


def end_job(
    session: Session,
    *,
    job_id: int,
    version: Version,
    state: VersionState,
    message: str,
    error: ErrorDetail | None = None,
) -> None:
    """Finishes a job and records its version's terminal state (with the reason, if it failed)."""
    finish_job(session, job_id=job_id)
    append_event(session, version=version, type=EventType.STATE, state=state, message=message, error=error)


def request_cancel(session: Session, *, version_id: int) -> Job | None:
    """Flags the version's job for cancellation; returns the job as it was before."""
    job = session.exec(select(Job).where(Job.version_id == version_id).with_for_update()).one_or_none()
    if job is not None and job.status != JobStatus.DONE:
        job.cancel_requested = True
        job.update_time = utcnow()
        session.add(job)
    return job


def expired_jobs(session: Session) -> Sequence[Job]:
    """RUNNING jobs whose worker stopped renewing its lease (it crashed or was killed)."""
    statement = (
        select(Job)
        .where(Job.status == JobStatus.RUNNING, col(Job.lease_expires_at) < utcnow())
        .order_by(col(Job.id))
        .with_for_update(skip_locked=True)
    )
    return session.exec(statement).all()


def job_for_version(session: Session, *, version_id: int) -> Job | None:
    return session.exec(select(Job).where(Job.version_id == version_id)).one_or_none()
