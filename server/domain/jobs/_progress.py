"""Recording a running job's progress: stages numbered 1..n of n, messages and outputs, as events.

Events are numbered as they happen and written in small batches while the job runs, so one
transaction carries a burst of them; the ones still pending at the end go into the job's
final transaction. While a worker holds a job's lease it is the only writer of the version's
events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio

import storage
from server.domain import _transactions as transactions
from server.domain.jobs._job import JobContext, RunningJob, StopReason
from server.domain.resources import event_of
from server.providers import ModelUsage, ProviderError

# How long events wait to be written together: short enough for live progress, long enough
# that a burst of events costs one transaction.
_EVENT_BATCH_SECONDS = 0.02
# A job that ends sooner than this writes all its events with its result, in one transaction
# (most offline jobs do): a separate write for them would cost more than the wait saves. A
# watcher of a longer job sees its first events this late at most.
_FIRST_BATCH_SECONDS = 0.1


class JobProgress:
    """The provider's view of progress: numbers stages, records events, and is a cancellation checkpoint.

    Events are numbered as they happen and written in batches by `write_batches`; the
    ones still pending at the end go into the job's final transaction.
    """

    def __init__(self, ctx: JobContext, job: RunningJob) -> None:
        self._ctx = ctx
        self._job = job
        self._provider_stages = len(job.titles) - (2 if job.parent_tree is not None else 1)
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

    def usage(self, usage: ModelUsage) -> None:
        self._job.usage.append(usage)

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

    def write(self, tx: storage.Transaction, drafts: Sequence[storage.EventDraft]) -> list[storage.Event]:
        """Stores events taken from the pending list, in the caller's transaction."""
        return storage.append_events(
            tx, version_id=self._job.version_id, after_seq=self._job.stored_seq, drafts=drafts
        )

    async def flush(
        self, work: Callable[[storage.Transaction, list[storage.EventDraft]], list[storage.Event]]
    ) -> None:
        """Runs `work` on the pending events in one write transaction, one flush at a time, and
        publishes the events it stored.

        The pending list is only touched on the event loop's thread; events recorded while
        the transaction runs wait for the next flush.
        """
        async with self._writing:
            job = self._job
            drafts, job.pending = job.pending, []
            try:
                stored = await transactions.write(self._ctx.db, lambda tx: work(tx, drafts))
            except BaseException:
                job.pending[:0] = drafts
                raise
            job.stored_seq += len(drafts)
        self._ctx.hub.publish(job.version_id, [event_of(event) for event in stored])

    async def write_batches(self) -> None:
        """Writes pending events every few milliseconds while the job runs (after its first tenth
        of a second)."""
        await anyio.sleep(_FIRST_BATCH_SECONDS)
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await anyio.sleep(_EVENT_BATCH_SECONDS)
            try:
                await self.flush(self.write)
            except storage.StateConflict:
                # Someone else wrote this version's events: this worker lost the job.
                self._job.stop(StopReason.LOST_LEASE)
                return
