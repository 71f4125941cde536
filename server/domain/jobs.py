"""Workers that run jobs: claim with a lease, heartbeat, run the provider, commit the result.

Every job ends COMPLETED, FAILED (with a reason) or CANCELLED. A job whose worker
dies keeps its lease only until the lease expires; the reaper then requeues it
(or fails it after too many attempts), so no job stays RUNNING forever.

While a worker holds a job's lease it is the only writer of the version's events, so it
numbers them itself and writes them in small batches; the version's result (its tree, its
turns in the session, its last events and its terminal state) commits in one transaction.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import anyio
import sqlalchemy.exc
from anyio.abc import TaskStatus
from sqlmodel import Session

import storage
from server.config import Settings
from server.domain import _transactions as transactions
from server.domain import conversation, trees
from server.domain._recent import Recent, Tree
from server.domain.events import EventHub
from server.providers import ProviderRegistry
from server.providers._base import (
    Attachment,
    ChangeSet,
    JobKind,
    Provider,
    ProviderError,
    ProviderRequest,
    SourceFile,
    Turn,
)

_log = logging.getLogger("atelier.jobs")

MERGE_STAGE = "Merge"
SAVE_STAGE = "Save"
CANCELLED_BY_USER = storage.ErrorDetail(
    code="CANCELLED", reason="CANCELLED", message="cancelled by CancelVersion"
)
# How long events wait to be written together: short enough for live progress, long enough
# that a burst of events costs one transaction.
_EVENT_BATCH_SECONDS = 0.02

# How long shutdown waits for stopped jobs to record their requeue (one short transaction each).
_REQUEUE_SECONDS = 5.0

_STOPPED_BY_SHUTDOWN = "shutdown"
_STOPPED_BY_CANCEL = "cancel"
_STOPPED_BY_LOST_LEASE = "lost-lease"


@dataclass(slots=True)
class _Job:
    """A claimed job and everything its run needs, gathered in the claiming transaction."""

    claimed: storage.ClaimedJob
    # The version as the claim read it (what the job needs of it never changes while it runs).
    version: storage.Version
    session_id: str | None
    request: ProviderRequest
    provider: Provider
    # The tree the result merges onto (with its files' contents), and its version; None when
    # the version starts from nothing.
    base_tree: Tree | None
    base_version: storage.Version | None
    titles: list[str]
    # The RUNNING event the claim recorded.
    running: storage.Event
    # The seq of the version's last stored event.
    stored_seq: int
    scope: anyio.CancelScope | None = None
    stop_reason: str | None = None
    # Set when the job ends while another job of its session waits in the queue.
    successor_waiting: bool = False
    # Set when the result must be held back as NEEDS_REVIEW instead of COMPLETED.
    review_reason: str | None = None
    pending: list[storage.EventDraft] = field(default_factory=list)

    @property
    def version_id(self) -> int:
        return self.claimed.version_id

    @property
    def base(self) -> Mapping[str, storage.TreeEntry] | None:
        return self.base_tree.entries if self.base_tree is not None else None

    def stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.scope is not None:
            self.scope.cancel()


class JobRunner:
    """The in-process worker pool, plus the reaper for expired leases."""

    def __init__(
        self, *, db: storage.Database, hub: EventHub, providers: ProviderRegistry, settings: Settings
    ) -> None:
        self._db = db
        self._hub = hub
        self._providers = providers
        self._settings = settings
        self._worker_name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = timedelta(seconds=settings.job_lease_seconds)
        # The events idle workers wait on, and wake-ups that came while none was idle.
        self._idle: collections.deque[anyio.Event] = collections.deque()
        self._missed_wakeups = 0
        self._stopping = False
        self._stop_requested = anyio.Event()
        # Set (and replaced) whenever a job of this process ends.
        self._job_ended = anyio.Event()
        self._running: dict[int, _Job] = {}
        self._recent = Recent()

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
        self.wake(everyone=True)
        await self._until_no_job_runs(self._settings.shutdown_grace_seconds)
        for job in list(self._running.values()):
            job.stop(_STOPPED_BY_SHUTDOWN)
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
                claimed = await transactions.write(self._db, self._claim)
            except Exception:
                # A database outage must not take the worker down: log it, back off, try again.
                _log.exception("could not claim a job; retrying")
                claimed = None
            look = claimed is not None
            if isinstance(claimed, _Job):
                self._hub.publish(claimed.version_id, [claimed.running])
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

        touched = await transactions.write(self._db, reap)
        for version_id in touched:
            _log.warning("requeued or failed the job of version id %s after its lease expired", version_id)
            self._hub.notify(version_id)
        if touched:
            self.wake(everyone=True)

    # Claiming

    def _claim(self, session: Session) -> _Job | storage.ClaimedJob | None:
        """Claims a job and marks its version RUNNING, in one transaction.

        Returns None when no job is waiting, and the bare claim when the job cannot start at
        all (it is then FAILED in the same transaction).
        """
        claimed = storage.claim_job(session, worker=self._worker_name, lease=self._lease)
        if claimed is None:
            return None
        version = storage.get_version_by_id(session, claimed.version_id)
        # _prepare only reads, until its last step records the RUNNING event, so a failure leaves
        # nothing of its own to undo.
        try:
            return self._prepare(session, claimed, version)
        except ProviderError as exc:
            error = storage.ErrorDetail(code=exc.code, reason=exc.reason, message=exc.message)
        except sqlalchemy.exc.DBAPIError:
            raise  # the database's doing, not the job's: the claim is tried again later
        except Exception as exc:
            # Left QUEUED, the job would be claimed again at once, failing the same way, ahead
            # of every job queued after it.
            _log.exception("could not start the job of version id %s", claimed.version_id)
            error = storage.ErrorDetail(
                code="INTERNAL", reason="JOB_NOT_STARTED", message=f"the job could not be started: {exc!r}"
            )
        storage.end_job(
            session,
            job_id=claimed.job_id,
            version=version,
            state=storage.VersionState.FAILED,
            message=f"Failed: {error.message}",
            error=error,
        )
        return claimed

    def _prepare(self, session: Session, claimed: storage.ClaimedJob, version: storage.Version) -> _Job:
        assert version.id is not None
        attachments = storage.list_attachments(session, version_id=version.id)
        contents = storage.read_blobs(session, (a.blob_sha256 for a in attachments))
        base_version: storage.Version | None = None
        source_files: list[SourceFile] = []
        base_tree: Tree | None = None
        if version.parent_number is not None:
            parent = storage.get_version(
                session,
                owner=version.owner,
                generation_id=version.generation_id,
                number=version.parent_number,
            )
            assert parent is not None and parent.id is not None
            base_version = parent
            base_tree = self._recent.tree(parent.id)
            if base_tree is None:
                entries = storage.read_tree(session, version_id=parent.id)
                files = storage.read_blobs(session, (e.blob_sha256 for e in entries.values()))
                base_tree = Tree(entries, files)
            source_files = base_tree.files()
        history: Sequence[Turn] | None = None
        if version.base_turn_id is not None:
            history = self._recent.branch(version.base_turn_id)
        if history is None:
            history = conversation.history(session, head_turn_id=version.base_turn_id)
        conversation_session = storage.get_session(
            session, owner=version.owner, generation_id=version.generation_id
        )
        request = ProviderRequest(
            kind=JobKind(version.kind.lower()),
            prompt=version.prompt,
            model=version.model,
            attachments=[Attachment(a.name, a.mime_type, contents[a.blob_sha256]) for a in attachments],
            source_files=source_files,
            history=history,
            system_instruction=conversation_session.system_instruction if conversation_session else "",
        )
        provider = self._providers.get(version.provider)  # raises ProviderError if not configured
        titles = [
            *provider.stage_titles(request),
            *([MERGE_STAGE] if base_tree is not None else []),
            SAVE_STAGE,
        ]
        running = storage.append_event(
            session,
            version=version,
            type=storage.EventType.STATE,
            state=storage.VersionState.RUNNING,
            stage=0,
            total_stages=len(titles),
            message=f"Running (attempt {claimed.attempt})",
        )
        return _Job(
            claimed=claimed,
            version=version,
            session_id=conversation_session.id if conversation_session else None,
            request=request,
            provider=provider,
            base_tree=base_tree,
            base_version=base_version,
            titles=titles,
            running=running,
            stored_seq=running.seq,
        )

    # Running

    async def _run(self, job: _Job) -> None:
        job.scope = anyio.CancelScope()
        self._running[job.claimed.job_id] = job
        progress = _JobProgress(self, job)
        outcome: trees.MergedTree | ChangeSet | BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._heartbeat, job)
                group.start_soon(progress.write_batches)
                with job.scope:
                    try:
                        changes = await job.provider.run(job.request, progress)
                        progress.check_provider_stages()
                        outcome = await self._merge(job, progress, changes)
                    except ProviderError as exc:
                        outcome = exc
                    except Exception as exc:
                        _log.exception(
                            "provider %s crashed on version id %s", job.provider.name, job.version_id
                        )
                        outcome = exc
                group.cancel_scope.cancel()
            await self._settle(job, progress, outcome)
        finally:
            self._running.pop(job.claimed.job_id, None)
            self._hub.notify(job.version_id)
            self._job_ended.set()
            self._job_ended = anyio.Event()

    async def _merge(self, job: _Job, progress: _JobProgress, changes: ChangeSet) -> trees.MergedTree:
        limits = trees.Limits.of(self._settings)
        if job.base is None:
            merged = trees.merge({}, changes, limits)
            if not merged.file_count:
                raise ProviderError(
                    "the model produced no files", reason="NO_FILES", code="FAILED_PRECONDITION"
                )
            return merged
        async with progress.stage(MERGE_STAGE):
            merged = trees.merge(job.base, changes, limits)
            share = merged.deleted / len(job.base) if job.base else 0.0
            if share > self._settings.max_deletion_share and not trees.asks_for_deletion(job.request.prompt):
                # Never applied silently: the version keeps the result, held back for a person.
                job.review_reason = (
                    f"the model's changes delete {merged.deleted} of {len(job.base)} files "
                    f"({share:.0%}), but the prompt asked for no deletion: review before using it"
                )
                await progress.message(job.review_reason)
            if not merged.changed:
                raise ProviderError(
                    "the model's answer changes no file, so no new version was made",
                    reason="NO_CHANGES",
                    code="FAILED_PRECONDITION",
                )
            await progress.message(
                f"merged onto {len(job.base)} files: {merged.added} added, {merged.modified} changed, "
                f"{merged.deleted} deleted, {merged.file_count} in the new tree"
            )
        return merged

    async def _heartbeat(self, job: _Job) -> None:
        while True:
            await anyio.sleep(self._settings.job_heartbeat_seconds)
            cancel_requested = await transactions.write(
                self._db,
                lambda s: storage.renew_lease(
                    s, job_id=job.claimed.job_id, worker=self._worker_name, lease=self._lease
                ),
            )
            if cancel_requested is None:
                job.stop(_STOPPED_BY_LOST_LEASE)
            elif cancel_requested:
                job.stop(_STOPPED_BY_CANCEL)

    async def _settle(
        self, job: _Job, progress: _JobProgress, outcome: trees.MergedTree | ChangeSet | BaseException | None
    ) -> None:
        """Writes the job's end and its last events in one transaction, if this worker still owns the job."""
        if job.stop_reason == _STOPPED_BY_LOST_LEASE:
            _log.warning("lost the lease of job %s; another worker owns it now", job.claimed.job_id)
            return
        if isinstance(outcome, trees.MergedTree) and job.stop_reason is None:
            await progress.start_stage(SAVE_STAGE)
            end, error, message = storage.VersionState.COMPLETED, None, _summary(outcome, job)
            if job.review_reason is not None:
                end, message = storage.VersionState.NEEDS_REVIEW, f"Needs review: {job.review_reason}"
                error = storage.ErrorDetail(
                    code="FAILED_PRECONDITION", reason="MASS_DELETION", message=job.review_reason
                )
        elif job.stop_reason == _STOPPED_BY_SHUTDOWN:
            end, error, message = storage.VersionState.QUEUED, None, "Requeued: the server is shutting down"
        elif job.stop_reason == _STOPPED_BY_CANCEL:
            end, error, message = storage.VersionState.CANCELLED, CANCELLED_BY_USER, "Cancelled"
        elif isinstance(outcome, ProviderError):
            end, message = storage.VersionState.FAILED, f"Failed: {outcome.message}"
            error = storage.ErrorDetail(code=outcome.code, reason=outcome.reason, message=outcome.message)
        else:
            end, message = storage.VersionState.FAILED, "Failed: internal error in the provider"
            error = storage.ErrorDetail(
                code="INTERNAL",
                reason="PROVIDER_CRASHED",
                message=f"the provider failed unexpectedly: {outcome!r}",
            )
        # Only a result that is kept is stored: a job stopped after its merge stores nothing.
        kept = (storage.VersionState.COMPLETED, storage.VersionState.NEEDS_REVIEW)
        merged = outcome if isinstance(outcome, trees.MergedTree) and end in kept else None
        if merged is not None:
            progress.finish_stage(f"{SAVE_STAGE} done: {merged.file_count} files")
        # What the next job on this version can start from, once the transaction commits.
        made: tuple[list[storage.TreeEntry], Sequence[Turn] | None, int | None] | None = None

        def settle(session: Session, drafts: list[storage.EventDraft]) -> list[storage.Event]:
            nonlocal made
            if not storage.holds_lease(session, job_id=job.claimed.job_id, worker=self._worker_name):
                return []
            if merged is not None:
                made = self._store_result(session, job, merged)
            if end is storage.VersionState.QUEUED:
                events = progress.write(session, drafts)
                return [
                    *events,
                    storage.requeue_job(
                        session, job_id=job.claimed.job_id, version=job.version, message=message
                    ),
                ]
            # The terminal event goes with the rest of the batch: one statement for all of them.
            storage.finish_job(session, job_id=job.claimed.job_id)
            if job.session_id is not None:
                job.successor_waiting = storage.has_queued_job(session, session_id=job.session_id)
            return progress.write(session, [*drafts, progress.final(end, message, error)])

        try:
            await progress.flush(settle)
        except storage.StateConflictError as exc:
            _log.info("version id %s ended elsewhere first: %s", job.version_id, exc)
            return
        if made is not None and merged is not None:
            written, branch, head_turn_id = made
            self._keep(job, merged, written)
            if branch is not None and head_turn_id is not None:
                self._recent.keep_branch(head_turn_id, branch)

    def _store_result(
        self, session: Session, job: _Job, merged: trees.MergedTree
    ) -> tuple[list[storage.TreeEntry], Sequence[Turn] | None, int | None]:
        """Stores the new tree and the exchange with the model; returns what `_keep` needs:
        the stored new files, the conversation branch now ending at the version, and its head turn."""
        version = job.version
        written = storage.store_files(session, merged.written)
        if job.base_version is not None and job.base is not None:
            storage.write_changes(
                session,
                version=version,
                base=(job.base_version, job.base),
                upserts=[*merged.moved, *written],
                deletions=merged.removed,
            )
        else:
            storage.write_tree(session, version=version, entries=written)
        if job.session_id is None:
            return written, None, None
        exchange = self._exchange(job, merged)
        storage.record_exchange(
            session,
            version=version,
            session_id=job.session_id,
            turns=[conversation.to_record(session, turn) for turn in exchange],
        )
        branch = [*job.request.history, *map(conversation.as_read_back, exchange)]
        return written, branch, version.head_turn_id

    def _keep(self, job: _Job, merged: trees.MergedTree, written: Sequence[storage.TreeEntry]) -> None:
        """Keeps the version's tree for the next job on it (built after the commit, off its path)."""
        base_contents = job.base_tree.contents if job.base_tree is not None else {}
        contents = {entry.blob_sha256: base_contents[entry.blob_sha256] for entry in merged.carried}
        contents.update(
            (entry.blob_sha256, file.data) for entry, file in zip(written, merged.written, strict=True)
        )
        entries = {entry.path: entry for entry in (*merged.carried, *written)}
        self._recent.keep_tree(job.version_id, Tree(entries, contents))

    @staticmethod
    def _exchange(job: _Job, merged: trees.MergedTree) -> Sequence[Turn]:
        turns = merged.turns
        if turns:
            return turns
        return conversation.default_exchange(job.request.prompt, job.request.attachments, merged.summary)


def _summary(merged: trees.MergedTree, job: _Job) -> str:
    if merged.summary:
        return merged.summary
    if job.base is None:
        return f"Completed: {merged.file_count} files"
    return f"Completed: {merged.added} added, {merged.modified} changed, {merged.deleted} deleted"


class _JobProgress:
    """The provider's view of progress: numbers stages, records events, and is a cancellation checkpoint.

    Events are numbered as they happen and written in batches by `write_batches`; the
    ones still pending at the end go into the job's final transaction.
    """

    def __init__(self, runner: JobRunner, job: _Job) -> None:
        self._runner = runner
        self._job = job
        self._provider_stages = len(job.titles) - (2 if job.base is not None else 1)
        self._current = 0
        self._open = False
        self._dirty = anyio.Event()
        # Held while a batch is being written, so batches (and the final write) never overlap.
        self._writing = anyio.Lock()

    @property
    def total(self) -> int:
        return len(self._job.titles)

    def _add(self, type: storage.EventType, message: str, paths: Sequence[str] = ()) -> None:
        self._job.pending.append(
            storage.EventDraft(
                type=type,
                state=storage.VersionState.RUNNING,
                stage=self._current,
                total_stages=self.total,
                message=message,
                paths=list(paths),
                create_time=storage.utcnow(),
            )
        )
        self._dirty.set()

    async def start_stage(self, title: str) -> None:
        await anyio.lowlevel.checkpoint()  # lets a cancellation land before more is recorded
        if self._open:
            raise RuntimeError(f"stage {title!r} started inside stage {self._current}")
        if self._current >= self.total or self._job.titles[self._current] != title:
            raise RuntimeError(f"stage {title!r} is not the next declared stage")
        self._current += 1
        self._open = True
        self._add(storage.EventType.STAGE_STARTED, f"{title} ({self._current}/{self.total})")

    def finish_stage(self, message: str | None = None) -> None:
        title = self._job.titles[self._current - 1]
        self._open = False
        self._add(storage.EventType.STAGE_DONE, message or f"{title} done ({self._current}/{self.total})")

    @asynccontextmanager
    async def stage(self, title: str) -> AsyncIterator[None]:
        await self.start_stage(title)
        yield
        self.finish_stage()

    async def message(self, text: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._add(storage.EventType.MESSAGE, text)

    async def output(self, paths: Sequence[str]) -> None:
        await anyio.lowlevel.checkpoint()
        self._add(storage.EventType.OUTPUT, f"Produced {len(paths)} files", paths)

    def final(
        self, state: storage.VersionState, message: str, error: storage.ErrorDetail | None
    ) -> storage.EventDraft:
        """The job's terminal event, at the stage it reached."""
        return storage.EventDraft(
            type=storage.EventType.STATE,
            state=state,
            stage=self._current,
            total_stages=self.total,
            message=message,
            error=error,
            create_time=storage.utcnow(),
        )

    def check_provider_stages(self) -> None:
        if self._current != self._provider_stages:
            raise ProviderError(
                f"the provider declared {self._provider_stages} stages but ran {self._current}",
                reason="PROVIDER_STAGE_MISMATCH",
            )

    def write(self, session: Session, drafts: Sequence[storage.EventDraft]) -> list[storage.Event]:
        """Stores events taken from the pending list, in the caller's transaction."""
        return storage.append_events(
            session, version_id=self._job.version_id, after_seq=self._job.stored_seq, drafts=drafts
        )

    async def flush(self, work: Callable[[Session, list[storage.EventDraft]], list[storage.Event]]) -> None:
        """Runs `work` on the pending events in one write transaction, one flush at a time, and
        publishes the events it stored.

        The pending list is only touched on the event loop's thread; events recorded while
        the transaction runs wait for the next flush.
        """
        async with self._writing:
            job = self._job
            drafts, job.pending = job.pending, []
            try:
                stored = await transactions.write(self._runner._db, lambda session: work(session, drafts))
            except BaseException:
                job.pending[:0] = drafts
                raise
            job.stored_seq += len(drafts)
        self._runner._hub.publish(job.version_id, stored)

    async def write_batches(self) -> None:
        """Writes pending events every few milliseconds while the job runs."""
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await anyio.sleep(_EVENT_BATCH_SECONDS)
            try:
                await self.flush(self.write)
            except storage.StateConflictError:
                # Someone else wrote this version's events: this worker lost the job.
                self._job.stop(_STOPPED_BY_LOST_LEASE)
                return
