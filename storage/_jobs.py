"""The durable job queue: workers claim jobs with a lease and keep it alive with heartbeats."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from storage._clock import as_utc, utcnow
from storage._database import Transaction
from storage._errors import WriteConflict
from storage._events import ErrorDetail, append_event
from storage._models import Event, EventType, Job, JobStatus, Version, VersionState
from storage._notifications import JOBS_CHANNEL, notify
from storage._scheduling import lock_model_state
from storage._tables import JOB, MODEL_STATE


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    job_id: int
    version_id: int
    attempt: int
    # How long the job waited in the queue before this attempt, and when the attempt began.
    queued_seconds: float
    claimed_at: datetime


def claim_jobs(
    tx: Transaction,
    *,
    worker: str,
    lease: timedelta,
    limit: int,
    max_concurrent: Mapping[str, int | None] | None = None,
    max_per_principal: int = 0,
) -> list[ClaimedJob]:
    """Takes up to `limit` QUEUED jobs and marks them RUNNING under `worker`'s lease.

    - A model with a limit in `max_concurrent` runs at most that many jobs, counted across every
      process: its model_state row is locked (PostgreSQL FOR UPDATE) while its running jobs are
      counted, so two replicas never both take its last free slot. A model cooling down after
      a 429 (model_state.cooldown_until in the future) starts no job.
    - Principals take turns: a principal's n-th queued job comes in round n plus the number of
      jobs it already runs on the model, so one caller's thousand jobs wait behind another's
      first. `max_per_principal` (0: none) caps a principal's running jobs on every model.
    - Within a principal, jobs start in the order they were queued, and a session runs one job
      at a time. Rows another process is claiming right now are skipped (SKIP LOCKED).
    """
    now = utcnow()
    limits = max_concurrent or {}
    models = [row[0] for row in tx.execute(_QUEUED_MODELS, {"now": now})]
    cooling = {row[0] for row in tx.execute(_COOLING_MODELS, {"now": now})} if models else set()
    running_by_owner: dict[str, int] = {}
    if max_per_principal > 0 and models:
        running_by_owner = {owner: count for owner, count in tx.execute(_RUNNING_BY_OWNER)}
    claimed: list[ClaimedJob] = []
    for model in sorted(models):
        remaining = limit - len(claimed)
        if remaining <= 0:
            break
        if model in cooling:
            continue
        slots = remaining
        cap = limits.get(model)
        if cap is not None:
            if _lock_model(tx, model, now):
                continue  # it began cooling down after the look above
            running = tx.execute(_RUNNING_OF_MODEL, {"model_name": model}).scalar_one()
            slots = min(slots, cap - running)
        if slots > 0:
            picked = _pick(tx, model, slots, now, running_by_owner, max_per_principal)
            claimed.extend(_start(tx, picked, worker=worker, lease=lease, now=now))
    return claimed


def claim_job(tx: Transaction, *, worker: str, lease: timedelta) -> ClaimedJob | None:
    """Takes the next job (see claim_jobs), or returns None when none may start."""
    claimed = claim_jobs(tx, worker=worker, lease=lease, limit=1)
    return claimed[0] if claimed else None


def _lock_model(tx: Transaction, model: str, now: datetime) -> bool:
    """Locks the model's state row for this transaction; returns whether the model cools down."""
    until = lock_model_state(tx, model, now).cooldown_until
    return until is not None and as_utc(until) > now


def _pick(
    tx: Transaction,
    model: str,
    slots: int,
    now: datetime,
    running_by_owner: dict[str, int],
    max_per_principal: int,
) -> list[int]:
    """The ids of up to `slots` queued jobs of `model`, in the order principals take turns."""
    rows = tx.execute(_CANDIDATES, {"model_name": model, "now": now, "slots": slots, "fetch": 2 * slots + 16})
    picked: list[int] = []
    sessions: set[str] = set()
    for job_id, owner, session_id in rows:
        if session_id is not None and session_id in sessions:
            continue  # one job per session at a time, even within one claim
        if max_per_principal > 0:
            if running_by_owner.get(owner, 0) >= max_per_principal:
                continue
            running_by_owner[owner] = running_by_owner.get(owner, 0) + 1
        if session_id is not None:
            sessions.add(session_id)
        picked.append(job_id)
        if len(picked) == slots:
            break
    if picked and tx.get_bind().dialect.name == "postgresql":
        # Another replica may be claiming some of them right now: leave those to it.
        picked = [row[0] for row in tx.execute(_LOCK_QUEUED, {"ids": picked})]
    return picked


def _start(
    tx: Transaction, job_ids: Sequence[int], *, worker: str, lease: timedelta, now: datetime
) -> list[ClaimedJob]:
    if not job_ids:
        return []
    params = {"worker": worker, "expires": now + lease, "now": now}
    try:
        with tx.begin_nested():
            rows = list(tx.execute(_START_JOBS, {**params, "ids": list(job_ids)}))
    except WriteConflict:
        # A job of one of these sessions started elsewhere meanwhile: start the others one by one.
        rows = []
        for job_id in job_ids:
            try:
                with tx.begin_nested():
                    rows.extend(tx.execute(_START_JOBS, {**params, "ids": [job_id]}))
            except WriteConflict:
                continue
    return sorted(
        (
            ClaimedJob(
                job_id=job_id,
                version_id=version_id,
                attempt=attempt,
                queued_seconds=max(0.0, (now - as_utc(queued_at or now)).total_seconds()),
                claimed_at=now,
            )
            for job_id, version_id, attempt, queued_at in rows
        ),
        key=lambda claimed: claimed.job_id,
    )


_BUSY_SESSIONS = sa.select(JOB.c.session_id).where(
    JOB.c.status == JobStatus.RUNNING, JOB.c.session_id.is_not(None)
)
_AVAILABLE = sa.and_(JOB.c.status == JobStatus.QUEUED, JOB.c.available_at <= sa.bindparam("now"))
_QUEUED_MODELS = sa.select(JOB.c.model).where(_AVAILABLE).group_by(JOB.c.model)
_COOLING_MODELS = sa.select(MODEL_STATE.c.model).where(MODEL_STATE.c.cooldown_until > sa.bindparam("now"))
_RUNNING_OF_MODEL = sa.select(sa.func.count()).where(
    JOB.c.status == JobStatus.RUNNING, JOB.c.model == sa.bindparam("model_name")
)
_RUNNING_BY_OWNER = (
    sa.select(JOB.c.owner, sa.func.count()).where(JOB.c.status == JobStatus.RUNNING).group_by(JOB.c.owner)
)


def _build_candidates() -> sa.Select[Any]:
    running = (
        sa.select(JOB.c.owner, sa.func.count().label("n"))
        .where(JOB.c.status == JobStatus.RUNNING, JOB.c.model == sa.bindparam("model_name"))
        .group_by(JOB.c.owner)
        .subquery("running")
    )
    ranked = (
        sa.select(
            JOB.c.id,
            JOB.c.owner,
            JOB.c.session_id,
            sa.func.row_number().over(partition_by=JOB.c.owner, order_by=JOB.c.id).label("rank"),
        )
        .where(
            _AVAILABLE,
            JOB.c.model == sa.bindparam("model_name"),
            sa.or_(JOB.c.session_id.is_(None), JOB.c.session_id.not_in(_BUSY_SESSIONS)),
        )
        .subquery("ranked")
    )
    turn = ranked.c.rank + sa.func.coalesce(running.c.n, 0)
    return (
        sa.select(ranked.c.id, ranked.c.owner, ranked.c.session_id)
        .select_from(ranked.outerjoin(running, running.c.owner == ranked.c.owner))
        .where(ranked.c.rank <= sa.bindparam("slots"))
        .order_by(turn, ranked.c.id)
        .limit(sa.bindparam("fetch"))
    )


_CANDIDATES = _build_candidates()
_LOCK_QUEUED = (
    sa.select(JOB.c.id)
    .where(JOB.c.id.in_(sa.bindparam("ids", expanding=True)), JOB.c.status == JobStatus.QUEUED)
    .order_by(JOB.c.id)
    .with_for_update(skip_locked=True)
)
_START_JOBS = (
    sa.update(JOB)
    .where(JOB.c.id.in_(sa.bindparam("ids", expanding=True)), JOB.c.status == JobStatus.QUEUED)
    .values(
        status=JobStatus.RUNNING,
        attempts=JOB.c.attempts + 1,
        lease_owner=sa.bindparam("worker"),
        lease_expires_at=sa.bindparam("expires"),
        claimed_at=sa.bindparam("now"),
        reported_position=None,
        update_time=sa.bindparam("now"),
    )
    .returning(JOB.c.id, JOB.c.version_id, JOB.c.attempts, JOB.c.queued_at)
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
_RENEW_LEASES = (
    sa.update(JOB)
    .where(JOB.c.lease_owner == sa.bindparam("worker"), JOB.c.status == JobStatus.RUNNING)
    .values(lease_expires_at=sa.bindparam("expires"), update_time=sa.bindparam("now"))
    .returning(JOB.c.id, JOB.c.cancel_requested)
)
# Locks the job's row: a purge of its generation (which deletes the row first) and the job's
# settling then happen one after the other, never interleaved.
_HOLDS_LEASE = (
    sa.select(JOB.c.id)
    .where(
        JOB.c.id == sa.bindparam("job_id"),
        JOB.c.lease_owner == sa.bindparam("worker"),
        JOB.c.status == JobStatus.RUNNING,
    )
    .with_for_update()
)
_REQUEUE_JOB = (
    sa.update(JOB)
    .where(JOB.c.id == sa.bindparam("job_id"))
    .values(
        status=JobStatus.QUEUED,
        lease_owner=None,
        lease_expires_at=None,
        queued_at=sa.bindparam("now"),
        claimed_at=None,
        update_time=sa.bindparam("now"),
    )
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


def renew_leases(tx: Transaction, *, worker: str, lease: timedelta) -> dict[int, bool]:
    """Extends the leases of every job `worker` runs, in one statement. Returns, by job id,
    whether cancellation was requested; a job missing from it is no longer the worker's."""
    now = utcnow()
    rows = tx.execute(_RENEW_LEASES, {"worker": worker, "expires": now + lease, "now": now})
    return {job_id: bool(cancel) for job_id, cancel in rows}


def renew_lease(tx: Transaction, *, job_id: int, worker: str, lease: timedelta) -> bool | None:
    """Extends a running job's lease. Returns whether cancellation was requested, or None if the
    worker no longer holds the job (its lease expired and the job was taken from it)."""
    now = utcnow()
    row = tx.execute(
        _RENEW_LEASE, {"job_id": job_id, "worker": worker, "expires": now + lease, "now": now}
    ).one_or_none()
    return None if row is None else bool(row[0])


def holds_lease(tx: Transaction, *, job_id: int, worker: str) -> bool:
    """Whether `worker` still runs the job; the job's row stays locked until the transaction ends."""
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
    tx.execute(_REQUEUE_JOB, {"job_id": job_id, "now": utcnow()})
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


def expired_jobs(tx: Transaction, *, also_leased_by: Sequence[str] = ()) -> Sequence[Job]:
    """RUNNING jobs whose worker stopped renewing its lease (it crashed or was killed), and those
    held by the workers named in `also_leased_by` (known to be gone), whatever their lease says."""
    gone = col(Job.lease_expires_at) < utcnow()
    if also_leased_by:
        gone = sa.or_(gone, col(Job.lease_owner).in_(sorted(set(also_leased_by))))
    statement = (
        select(Job)
        .where(Job.status == JobStatus.RUNNING, gone)
        .order_by(col(Job.id))
        .with_for_update(skip_locked=True)
    )
    return tx.exec(statement).all()


def lease_owners(tx: Transaction, *, prefix: str) -> list[str]:
    """The workers whose names start with `prefix` that hold running jobs."""
    statement = (
        sa.select(JOB.c.lease_owner)
        .where(JOB.c.status == JobStatus.RUNNING, JOB.c.lease_owner.startswith(prefix, autoescape=True))
        .distinct()
    )
    return [owner for (owner,) in tx.execute(statement) if owner is not None]


def job_for_version(tx: Transaction, *, version_id: int) -> Job | None:
    return tx.exec(select(Job).where(Job.version_id == version_id)).one_or_none()
