"""Workers that run jobs: claim with a lease, heartbeat, run the provider, commit the result.

Every job ends COMPLETED, FAILED (with a reason) or CANCELLED. A job whose worker
dies keeps its lease only until the lease expires; the reaper then requeues it
(or fails it after too many attempts), so no job stays RUNNING forever.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import anyio
from anyio.abc import TaskStatus
from sqlmodel import Session

import storage
from server.config import Settings
from server.domain.events import EventHub
from server.providers import ProviderRegistry
from server.providers._base import (
    Attachment,
    ChangeSet,
    JobKind,
    Provider,
    ProviderError,
    ProviderRequest,
)

_log = logging.getLogger("atelier.jobs")
_T = TypeVar("_T")

SAVE_STAGE = "Save"
CANCELLED_BY_USER = storage.ErrorDetail(
    code="CANCELLED", reason="CANCELLED", message="cancelled by CancelVersion"
)
_STOPPED_BY_SHUTDOWN = "shutdown"
_STOPPED_BY_CANCEL = "cancel"
_STOPPED_BY_LOST_LEASE = "lost-lease"


@dataclass(slots=True)
class _RunningJob:
    claimed: storage.ClaimedJob
    scope: anyio.CancelScope
    stop_reason: str | None = None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self.scope.cancel()


class JobRunner:
    """The in-process worker pool, plus the reaper for expired leases."""

    def __init__(
        self, *, db: storage.Database, hub: EventHub, providers: ProviderRegistry, settings: Settings
    ):
        self._db = db
        self._hub = hub
        self._providers = providers
        self._settings = settings
        self._worker_name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=settings.job_lease_seconds)
        self._wakeup = anyio.Event()
        self._stopping = False
        self._stop_requested = anyio.Event()
        # Set (and replaced) whenever a job of this process ends.
        self._job_ended = anyio.Event()
        self._running: dict[int, _RunningJob] = {}

    async def _db_write(self, work: Callable[[Session], _T]) -> _T:
        def run() -> _T:
            with self._db.write() as session:
                return work(session)

        return await anyio.to_thread.run_sync(run)

    def wake(self) -> None:
        """Tells idle workers that a job was queued."""
        self._wakeup.set()

    def cancel_local(self, version_id: int) -> None:
        """Stops the version's job at once if it runs in this process (the heartbeat finds it otherwise)."""
        for job in self._running.values():
            if job.claimed.version_id == version_id:
                job.stop(_STOPPED_BY_CANCEL)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Runs the workers and the reaper until `stop()`; returns when all are done."""
        await self.reap_expired()
        async with anyio.create_task_group() as group:
            for _ in range(self._settings.workers):
                group.start_soon(self._work_loop)
            group.start_soon(self._reap_loop)
            task_status.started()

    async def stop(self) -> None:
        """Stops claiming jobs; running jobs get the shutdown grace period, then are requeued."""
        self._stopping = True
        self._stop_requested.set()
        self._wakeup.set()
        with anyio.move_on_after(self._settings.shutdown_grace_seconds):
            while self._running:
                await self._job_ended.wait()
        for job in list(self._running.values()):
            job.stop(_STOPPED_BY_SHUTDOWN)

    async def _work_loop(self) -> None:
        while not self._stopping:
            if self._wakeup.is_set():
                # A fresh event before claiming, so a wake-up during the claim is not lost.
                self._wakeup = anyio.Event()
            wakeup = self._wakeup
            try:
                claimed = await self._db_write(self._claim)
            except Exception:
                # A database outage must not take the worker down: log it, back off, try again.
                _log.exception("could not claim a job; retrying")
                claimed = None
            if claimed is None:
                with anyio.move_on_after(self._settings.progress_poll_seconds):
                    await wakeup.wait()
                continue
            job, started = claimed
            self._hub.notify(job.version_id)
            if started is not None:
                try:
                    await self._run(job, *started)
                except Exception:
                    # The job keeps its lease until it expires; the reaper then requeues it.
                    _log.exception("could not record the end of job %s", job.job_id)

    async def _reap_loop(self) -> None:
        interval = max(self._settings.job_lease_seconds / 2, 0.5)
        while not self._stopping:
            with anyio.move_on_after(interval):
                await self._stop_requested.wait()
            if not self._stopping:
                await self.reap_expired()

    async def reap_expired(self) -> None:
        """Requeues (or, after too many attempts, fails) jobs whose worker stopped heartbeating."""
        max_attempts = self._settings.job_max_attempts

        def reap(session: Session) -> list[int]:
            touched: list[int] = []
            for job in storage.expired_jobs(session):
                assert job.id is not None
                version = storage.get_version_by_id(session, job.version_id)
                touched.append(job.version_id)
                if storage.VersionState(version.state).is_terminal:
                    storage.finish_job(session, job_id=job.id)
                elif job.attempts >= max_attempts:
                    storage.end_job(
                        session,
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
                        session,
                        job_id=job.id,
                        version=version,
                        message=f"Requeued: the worker running attempt {job.attempts} stopped",
                    )
            return touched

        touched = await self._db_write(reap)
        for version_id in touched:
            _log.warning("requeued or failed the job of version id %s after its lease expired", version_id)
            self._hub.notify(version_id)
        if touched:
            self.wake()

    def _claim(
        self, session: Session
    ) -> tuple[storage.ClaimedJob, tuple[ProviderRequest, Provider] | None] | None:
        """Claims a job and marks its version RUNNING, in one transaction.

        Returns None when no job is waiting, and (job, None) when the claimed job
        cannot start at all (it is then FAILED in the same transaction).
        """
        claimed = storage.claim_job(session, worker=self._worker_name, lease=self._lease)
        if claimed is None:
            return None
        version = storage.get_version_by_id(session, claimed.version_id)
        try:
            return claimed, self._start(session, claimed, version)
        except ProviderError as exc:
            storage.end_job(
                session,
                job_id=claimed.job_id,
                version=version,
                state=storage.VersionState.FAILED,
                message=f"Failed: {exc.message}",
                error=storage.ErrorDetail(code=exc.code, reason=exc.reason, message=exc.message),
            )
            return claimed, None

    def _start(
        self, session: Session, claimed: storage.ClaimedJob, version: storage.Version
    ) -> tuple[ProviderRequest, Provider]:
        attachments = [
            Attachment(
                name=a.name, mime_type=a.mime_type, data=storage.read_blob(session, a.blob_sha256) or b""
            )
            for a in storage.list_attachments(session, version_id=claimed.version_id)
        ]
        request = ProviderRequest(
            kind=JobKind(version.kind.lower()),
            prompt=version.prompt,
            model=version.model,
            attachments=attachments,
        )
        provider = self._providers.get(version.provider)  # raises ProviderError if not configured
        total = len(provider.stage_titles(request)) + 1
        storage.append_event(
            session,
            version=version,
            type=storage.EventType.STATE,
            state=storage.VersionState.RUNNING,
            stage=0,
            total_stages=total,
            message=f"Running (attempt {claimed.attempt})",
        )
        return request, provider

    async def _run(self, claimed: storage.ClaimedJob, request: ProviderRequest, provider: Provider) -> None:
        job = self._running[claimed.job_id] = _RunningJob(claimed=claimed, scope=anyio.CancelScope())
        job_id, version_id = claimed.job_id, claimed.version_id
        reporter = _JobProgress(runner=self, version_id=version_id, titles=provider.stage_titles(request))
        outcome: ChangeSet | BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._heartbeat, job)
                with job.scope:
                    try:
                        outcome = await provider.run(request, reporter)
                        await reporter.finish_provider_stages()
                    except ProviderError as exc:
                        outcome = exc
                    except Exception as exc:
                        _log.exception("provider %s crashed on version id %s", provider.name, version_id)
                        outcome = exc
                group.cancel_scope.cancel()
            await self._settle(job, reporter, outcome)
        finally:
            self._running.pop(job_id, None)
            self._hub.notify(version_id)
            self._job_ended.set()
            self._job_ended = anyio.Event()

    async def _heartbeat(self, job: _RunningJob) -> None:
        while True:
            await anyio.sleep(self._settings.job_heartbeat_seconds)
            cancel_requested = await self._db_write(
                lambda s: storage.renew_lease(
                    s, job_id=job.claimed.job_id, worker=self._worker_name, lease=self._lease
                )
            )
            if cancel_requested is None:
                job.stop(_STOPPED_BY_LOST_LEASE)
            elif cancel_requested:
                job.stop(_STOPPED_BY_CANCEL)

    async def _settle(
        self, job: _RunningJob, reporter: _JobProgress, outcome: ChangeSet | BaseException | None
    ) -> None:
        """Writes the job's end in one transaction, if this worker still owns the job."""
        job_id, version_id = job.claimed.job_id, job.claimed.version_id
        if job.stop_reason == _STOPPED_BY_LOST_LEASE:
            _log.warning("lost the lease of job %s; another worker owns it now", job_id)
            return
        if isinstance(outcome, ChangeSet) and job.stop_reason is None:
            await reporter.begin_save()
            files = _files_of(outcome)
            end = storage.VersionState.COMPLETED
            error = None
            message = outcome.summary or f"Completed: {len(files)} files"
        elif job.stop_reason == _STOPPED_BY_SHUTDOWN:
            files, end, error, message = (
                [],
                storage.VersionState.QUEUED,
                None,
                "Requeued: the server is shutting down",
            )
        elif job.stop_reason == _STOPPED_BY_CANCEL:
            files, end, message = [], storage.VersionState.CANCELLED, "Cancelled"
            error = CANCELLED_BY_USER
        elif isinstance(outcome, ProviderError):
            files, end, message = [], storage.VersionState.FAILED, f"Failed: {outcome.message}"
            error = storage.ErrorDetail(code=outcome.code, reason=outcome.reason, message=outcome.message)
        else:
            files, end, message = [], storage.VersionState.FAILED, "Failed: internal error in the provider"
            error = storage.ErrorDetail(
                code="INTERNAL",
                reason="PROVIDER_CRASHED",
                message=f"the provider failed unexpectedly: {outcome!r}",
            )

        def settle(session: Session) -> None:
            if not storage.holds_lease(session, job_id=job_id, worker=self._worker_name):
                return
            version = storage.get_version_by_id(session, version_id)
            if end is storage.VersionState.QUEUED:
                storage.requeue_job(session, job_id=job_id, version=version, message=message)
                return
            if end is storage.VersionState.COMPLETED:
                storage.write_manifest(session, version=version, files=files)
                storage.append_event(
                    session,
                    version=version,
                    type=storage.EventType.STAGE_DONE,
                    stage=reporter.total,
                    message=f"{SAVE_STAGE} done: {len(files)} files",
                )
            storage.end_job(session, job_id=job_id, version=version, state=end, message=message, error=error)

        # The end must be written even if this task is being cancelled (for example at shutdown).
        with anyio.CancelScope(shield=True):
            try:
                await self._db_write(settle)
            except storage.StateConflictError as exc:
                _log.info("version id %s ended elsewhere first: %s", version_id, exc)


def _files_of(changes: ChangeSet) -> list[storage.NewFile]:
    """The tree of a new version made from scratch (GENERATE): the change set's upserts."""
    files: dict[str, storage.NewFile] = {}
    for upsert in changes.upserts:
        mime_type = upsert.mime_type or mimetypes.guess_type(upsert.path)[0] or "application/octet-stream"
        files[upsert.path] = storage.NewFile(path=upsert.path, mime_type=mime_type, data=upsert.data)
    return [files[path] for path in sorted(files)]


class _JobProgress:
    """The provider's view of progress: numbers stages, records events, and is a cancellation checkpoint."""

    def __init__(self, *, runner: JobRunner, version_id: int, titles: Sequence[str]) -> None:
        self._runner = runner
        self._version_id = version_id
        self._titles = list(titles)
        self.total = len(self._titles) + 1  # the provider's stages, then Save
        self._current = 0
        self._open = False

    async def _record(self, **event: object) -> None:
        await anyio.lowlevel.checkpoint()  # lets a cancellation land before more is written

        def write(session: Session) -> None:
            version = storage.get_version_by_id(session, self._version_id)
            storage.append_event(session, version=version, **event)  # type: ignore[arg-type]

        await self._runner._db_write(write)
        self._runner._hub.notify(self._version_id)

    @asynccontextmanager
    async def stage(self, title: str) -> AsyncIterator[None]:
        if self._open:
            raise RuntimeError(f"stage {title!r} started inside stage {self._current}")
        if self._current >= len(self._titles):
            raise RuntimeError(f"stage {title!r} was not declared by stage_titles()")
        self._current += 1
        self._open = True
        await self._record(
            type=storage.EventType.STAGE_STARTED,
            stage=self._current,
            total_stages=self.total,
            message=f"{title} ({self._current}/{self.total})",
        )
        yield
        self._open = False
        await self._record(
            type=storage.EventType.STAGE_DONE,
            stage=self._current,
            message=f"{title} done ({self._current}/{self.total})",
        )

    async def message(self, text: str) -> None:
        await self._record(type=storage.EventType.MESSAGE, message=text)

    async def output(self, paths: Sequence[str]) -> None:
        await self._record(
            type=storage.EventType.OUTPUT, message=f"Produced {len(paths)} files", paths=list(paths)
        )

    async def finish_provider_stages(self) -> None:
        if self._current != len(self._titles):
            raise ProviderError(
                f"the provider declared {len(self._titles)} stages but ran {self._current}",
                reason="PROVIDER_STAGE_MISMATCH",
            )

    async def begin_save(self) -> None:
        self._current = self.total
        await self._record(
            type=storage.EventType.STAGE_STARTED,
            stage=self.total,
            message=f"{SAVE_STAGE} ({self.total}/{self.total})",
        )
