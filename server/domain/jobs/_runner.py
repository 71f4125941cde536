"""The job runner: this process's workers, which claim and run jobs, and the reaper of expired leases.

Every job ends COMPLETED, FAILED (with a reason) or CANCELLED. A job whose worker dies keeps
its lease only until the lease expires; the reaper then requeues it (or fails it after too
many attempts), so no job stays RUNNING forever.

How many jobs run at once, and which runs next, is decided here and only here: claiming
(`_claim`), running (`_execute`), recording progress (`_progress`) and settling (`_settle`)
know nothing of it.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import socket
import uuid
from datetime import timedelta

import anyio
from anyio.abc import TaskStatus

import storage
from server.config import Settings
from server.domain import _transactions as transactions
from server.domain._recent import Recent
from server.domain.events import EventHub
from server.domain.jobs._claim import claim
from server.domain.jobs._execute import execute
from server.domain.jobs._job import JobContext, RunningJob, StopReason
from server.domain.resources import event_of
from server.providers import ProviderRegistry

_log = logging.getLogger("atelier.jobs")

# How long shutdown waits for stopped jobs to record their requeue (one short transaction each).
_REQUEUE_SECONDS = 5.0


class JobRunner:
    """The in-process worker pool, plus the reaper for expired leases."""

    def __init__(
        self, *, db: storage.Database, hub: EventHub, providers: ProviderRegistry, settings: Settings
    ) -> None:
        self._db = db
        self._hub = hub
        self._settings = settings
        self._ctx = JobContext(
            db=db,
            hub=hub,
            providers=providers,
            settings=settings,
            recent=Recent(),
            worker=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            lease=timedelta(seconds=settings.job_lease_seconds),
        )
        # The events idle workers wait on, and wake-ups that came while none was idle.
        self._idle: collections.deque[anyio.Event] = collections.deque()
        self._missed_wakeups = 0
        self._stopping = False
        self._stop_requested = anyio.Event()
        # Set (and replaced) whenever a job of this process ends.
        self._job_ended = anyio.Event()
        self._running: dict[int, RunningJob] = {}

    def wake(self, *, everyone: bool = False) -> None:
        """Tells an idle worker (or every one) that a job was queued.

        One job needs one worker: waking them all would send each to the database for nothing.
        A wake-up that finds no idle worker is kept, for the next worker to go idle.
        """
        if not self._idle:
            self._missed_wakeups += 1
        while self._idle:
            self._idle.popleft().set()
            if not everyone:
                break

    def cancel_local(self, version_id: int) -> None:
        """Stops the version's job at once if it runs in this process (the heartbeat finds it otherwise)."""
        for job in self._running.values():
            if job.version_id == version_id:
                job.stop(StopReason.CANCEL)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Runs the workers and the reaper until `stop()`; returns when all are done."""
        await self.reap_expired()
        async with anyio.create_task_group() as group:
            for _ in range(min(self._settings.max_in_flight, 4)):  # replaced by the scheduler next
                group.start_soon(self._work_loop)
            group.start_soon(self._reap_loop)
            task_status.started()

    async def stop(self) -> None:
        """Stops claiming jobs; running jobs get the shutdown grace period, then are requeued."""
        self._stopping = True
        self._stop_requested.set()
        self.wake(everyone=True)
        await self._until_no_job_runs(self._settings.shutdown_grace_seconds)
        for job in list(self._running.values()):
            job.stop(StopReason.SHUTDOWN)
        # Let each stopped job record its requeue before the process goes: otherwise it stays
        # RUNNING until its lease expires and the reaper of another process requeues it.
        await self._until_no_job_runs(_REQUEUE_SECONDS)

    async def _until_no_job_runs(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            while self._running:
                await self._job_ended.wait()

    async def _work_loop(self) -> None:
        # Whether a job may be waiting. A worker that just finished a job does not look again
        # unless one was queued meanwhile or waits for the finished job's session: an empty
        # claim would only compete with delivering that job's last events.
        look = True
        while not self._stopping:
            if not look:
                if self._missed_wakeups:
                    self._missed_wakeups -= 1  # a job was queued while no worker was idle
                else:
                    await self._idle_until_woken()
                    if self._stopping:
                        break
            try:
                claimed = await transactions.write(self._db, functools.partial(claim, self._ctx))
            except Exception:
                # A database outage must not take the worker down: log it, back off, try again.
                _log.exception("could not claim a job; retrying")
                claimed = None
            look = claimed is not None
            if isinstance(claimed, RunningJob):
                self._hub.publish(claimed.version_id, [event_of(claimed.running)])
                try:
                    await self._run(claimed)
                except Exception:
                    # The job keeps its lease until it expires; the reaper then requeues it.
                    _log.exception("could not record the end of job %s", claimed.claimed.job_id)
                look = claimed.successor_waiting
            elif claimed is not None:
                self._hub.notify(claimed.version_id)

    async def _idle_until_woken(self) -> None:
        """Waits for a wake-up, or the poll interval (which also finds jobs nobody announced)."""
        wakeup = anyio.Event()
        self._idle.append(wakeup)
        with anyio.move_on_after(self._settings.progress_poll_seconds):
            await wakeup.wait()
        if wakeup in self._idle:
            self._idle.remove(wakeup)

    async def _reap_loop(self) -> None:
        interval = max(self._settings.job_lease_seconds / 2, 0.5)
        while not self._stopping:
            with anyio.move_on_after(interval):
                await self._stop_requested.wait()
            if not self._stopping:
                try:
                    await self.reap_expired()
                except Exception:
                    _log.exception("could not reap expired jobs; retrying")

    async def reap_expired(self) -> None:
        """Requeues (or, after too many attempts, fails) jobs whose worker stopped heartbeating."""
        max_attempts = self._settings.job_max_attempts

        def reap(tx: storage.Transaction) -> list[int]:
            touched: list[int] = []
            for job in storage.expired_jobs(tx):
                assert job.id is not None
                version = storage.get_version_by_id(tx, job.version_id)
                touched.append(job.version_id)
                if storage.VersionState(version.state).is_terminal:
                    storage.finish_job(tx, job_id=job.id)
                elif job.attempts >= max_attempts:
                    storage.end_job(
                        tx,
                        job_id=job.id,
                        version=version,
                        state=storage.VersionState.FAILED,
                        message="Failed: the worker running this job stopped",
                        error=storage.ErrorDetail(
                            code="UNAVAILABLE",
                            reason="WORKER_LOST",
                            message=f"the worker running this job stopped {job.attempts} times "
                            f"(limit {max_attempts}); the job was not retried again",
                        ),
                    )
                else:
                    storage.requeue_job(
                        tx,
                        job_id=job.id,
                        version=version,
                        message=f"Requeued: the worker running attempt {job.attempts} stopped",
                    )
            return touched

        touched = await transactions.write(self._db, reap)
        for version_id in touched:
            _log.warning("requeued or failed the job of version id %s after its lease expired", version_id)
            self._hub.notify(version_id)
        if touched:
            self.wake(everyone=True)

    async def _run(self, job: RunningJob) -> None:
        self._running[job.claimed.job_id] = job
        try:
            await execute(self._ctx, job)
        finally:
            self._running.pop(job.claimed.job_id, None)
            self._hub.notify(job.version_id)
            self._job_ended.set()
            self._job_ended = anyio.Event()
