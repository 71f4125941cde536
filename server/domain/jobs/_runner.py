"""The job runner: this process's scheduler, which claims jobs and runs each as an async task, its
heartbeat, the reaper of expired leases, and the queue's reporter.

A job is mostly an await on its model, so what limits how many run is each model's capacity
and `max_in_flight`, not a worker count. Every job ends COMPLETED, FAILED (with a reason) or
CANCELLED. A job whose process dies keeps its lease only until the lease expires (or, for the
jobs of this host's previous process, until this process starts); the reaper then requeues it,
or fails it after too many attempts, so no job stays RUNNING for ever.

How many jobs run at once and which runs next is decided here and in storage.claim_jobs only:
claiming (`_claim`), running (`_execute`), recording progress (`_progress`) and settling
(`_settle`) know nothing of it.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup, TaskStatus

import storage
from server import metrics
from server.config import ModelConfig, Settings
from server.domain import _transactions as transactions
from server.domain._recent import Recent
from server.domain.events import EventHub
from server.domain.jobs import _queue
from server.domain.jobs._claim import claim
from server.domain.jobs._execute import execute
from server.domain.jobs._gate import ModelCapacity
from server.domain.jobs._job import JobContext, RunningJob, StopReason
from server.domain.resources import event_of
from server.providers import ProviderRegistry, TokenCount

_log = logging.getLogger("atelier.jobs")

# How long shutdown waits for stopped jobs to record their requeue (one short transaction each).
_REQUEUE_SECONDS = 5.0
# At most this many jobs are claimed (and prepared) in one transaction, so that a burst of
# queued jobs does not hold the database's write lock for long, and above all so that few jobs
# start in the same turn of the event loop: each claimed job's first steps (building and sending
# its request: 2-3 ms of CPU) run in the turn after the claim, and every other task waits for
# them. Batches of 64 made turns of 100-450 ms while a thousand jobs started; batches of 8 keep
# them under 50 ms, for about a hundred more short claims per thousand jobs.
_CLAIM_BATCH = 8
# A job queued for less than this is not worth a position event yet: it is about to start.
_REPORT_AFTER_SECONDS = 1.0


class JobRunner:
    """Runs this process's jobs; one per process."""

    def __init__(
        self, *, db: storage.Database, hub: EventHub, providers: ProviderRegistry, settings: Settings
    ) -> None:
        self._db = db
        self._hub = hub
        self._settings = settings
        self._hostname = socket.gethostname()
        self._ctx = JobContext(
            db=db,
            hub=hub,
            providers=providers,
            settings=settings,
            recent=Recent(),
            worker=f"{self._hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            lease=timedelta(seconds=settings.job_lease_seconds),
        )
        self._stopping = False
        self._stop_requested = anyio.Event()
        # Set when a job was queued, a job ended or a model's state changed: claim again.
        self._wakeup = anyio.Event()
        # Set (and replaced) whenever a job of this process ends.
        self._job_ended = anyio.Event()
        self._running: dict[int, RunningJob] = {}
        self._group: TaskGroup | None = None
        # The scheduler's own thread for its claims, made in run().
        self._thread: anyio.CapacityLimiter | None = None
        self._capacities: dict[str, ModelCapacity] = {}
        self._limits = {model.name: model.max_concurrent for model in settings.available_models}
        # What the queue reporter saw last: each model's outlook, and each queued version's estimate.
        self._outlooks: dict[str, _queue.Outlook] = {}
        self._estimates: dict[int, storage.QueueEstimate] = {}

    # What the rest of the domain asks of the runner.

    def wake(self) -> None:
        """Tells the scheduler that a job may be ready to start."""
        self._wakeup.set()

    def cancel_local(self, version_id: int) -> None:
        """Stops the version's job at once if it runs in this process (the heartbeat finds it otherwise)."""
        for job in self._running.values():
            if job.version_id == version_id:
                job.stop(StopReason.CANCEL)

    async def count_tokens(self, model: ModelConfig, text: str) -> TokenCount:
        """`text`'s input tokens for `model`, by its provider's counter (or its estimate)."""
        return await self._ctx.providers.get(model.provider).count_tokens(model.name, text)

    def estimate_of(self, version_id: int) -> storage.QueueEstimate | None:
        """Where a queued version stood when the queue was last looked at (about a second ago)."""
        return self._estimates.get(version_id)

    @property
    def providers(self) -> ProviderRegistry:
        """The providers the jobs call (DraftPrompt calls them too, outside any job)."""
        return self._ctx.providers

    def capacity(self, model: str) -> ModelCapacity:
        found = self._capacities.get(model)
        if found is None:
            config = self._settings.find_model(model) or ModelConfig(model, "", model)
            found = self._capacities[model] = ModelCapacity(
                config,
                db=self._db,
                settings=self._settings,
                spawn=self._spawn,
                on_refused=lambda name: metrics.MODEL_REFUSALS.labels(name).inc(),
            )
        return found

    # Running.

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Runs the scheduler, the heartbeat, the reaper and the queue reporter until `stop()`,
        and every job they start; returns when all are done."""
        # Claims must not queue behind the requests' transactions: a thousand Generate calls at
        # once put a thousand writes in the shared pool's queue, and a claim behind them all
        # started no job until the last call was answered (measured: 32 of 1,000 jobs had sent
        # their request by then). On a thread of its own, a claim waits only for SQLite's writer,
        # so jobs start while the calls still come in, and their answers come back spread out.
        self._thread = anyio.CapacityLimiter(1)
        await self.reap_expired(at_start=True)
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._schedule_loop)
            group.start_soon(self._heartbeat_loop)
            group.start_soon(self._reap_loop)
            group.start_soon(self._queue_loop)
            task_status.started()

    async def stop(self) -> None:
        """Stops claiming jobs; running jobs get the shutdown grace period, then are requeued."""
        self._stopping = True
        self._stop_requested.set()
        self.wake()
        await self._until_no_job_runs(self._settings.shutdown_grace_seconds)
        for job in list(self._running.values()):
            job.stop(StopReason.SHUTDOWN)
        # Let each stopped job record its requeue before the process goes: otherwise it stays
        # RUNNING until its lease expires and the reaper of another process requeues it.
        await self._until_no_job_runs(_REQUEUE_SECONDS)

    def _spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        """Runs `function(*args)` in the background. Whatever it raises is logged: a background
        task's failure must never take the runner (and every job with it) down."""

        async def guarded() -> None:
            try:
                await function(*args)
            except Exception:
                _log.exception("a background task of the job runner failed")

        if self._group is not None:
            self._group.start_soon(guarded)

    async def _until_no_job_runs(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            while self._running:
                await self._job_ended.wait()

    async def _idle(self, seconds: float) -> None:
        """Waits for a wake-up or `seconds`, whichever comes first (or for the stop)."""
        with anyio.move_on_after(seconds):
            await self._wakeup.wait()
        self._wakeup = anyio.Event()

    async def _schedule_loop(self) -> None:
        while not self._stopping:
            free = self._settings.max_in_flight - len(self._running)
            started = 0
            if free > 0:
                limit = min(free, _CLAIM_BATCH)
                try:
                    work = functools.partial(claim, self._ctx, self._limits, limit)
                    claimed = await transactions.write(self._db, work, threads=self._thread)
                except Exception:
                    # A database outage must not stop the scheduler: log it, back off, try again.
                    _log.exception("could not claim jobs; retrying")
                    await self._idle(self._settings.progress_poll_seconds)
                    continue
                for item in claimed:
                    if isinstance(item, RunningJob):
                        started += 1
                        self._start(item)
                    else:
                        self._hub.notify(item.version_id)  # it could not start: it failed
                if len(claimed) == limit:
                    continue  # more may be waiting: look again at once
            if self._stopping:
                break
            await self._idle(self._settings.progress_poll_seconds)

    def _start(self, job: RunningJob) -> None:
        self._hub.publish(job.version_id, [event_of(job.running)])
        self._running[job.claimed.job_id] = job
        metrics.JOBS_RUNNING.labels(job.version.model).inc()
        metrics.QUEUE_SECONDS.labels(job.version.model).observe(job.claimed.queued_seconds)
        assert self._group is not None
        self._group.start_soon(self._run, job)
        if self._stopping:
            # Claimed while stop() ran: it never saw this job, and must not wait on it.
            job.stop(StopReason.SHUTDOWN)

    async def _run(self, job: RunningJob) -> None:
        gate = self.capacity(job.version.model).gate()
        started = time.monotonic()
        try:
            await execute(self._ctx, job, gate)
        except Exception:
            # The job keeps its lease until it expires; the reaper then requeues it.
            _log.exception("could not record the end of job %s", job.claimed.job_id)
        finally:
            gate.release()
            self._running.pop(job.claimed.job_id, None)
            metrics.JOBS_RUNNING.labels(job.version.model).dec()
            metrics.RUN_SECONDS.labels(job.version.model).observe(time.monotonic() - started)
            self._hub.notify(job.version_id)
            self._job_ended.set()
            self._job_ended = anyio.Event()
            self.wake()  # a slot is free

    async def _heartbeat_loop(self) -> None:
        """Renews the leases of all this process's jobs in one statement per tick."""
        while not self._stopping:
            with anyio.move_on_after(self._settings.job_heartbeat_seconds):
                await self._stop_requested.wait()
            held = set(self._running)
            if not held:
                continue
            renew = functools.partial(_renew_leases, self._ctx.worker, self._ctx.lease)
            try:
                renewed = await transactions.write(self._db, renew)
            except Exception:
                _log.exception("could not renew the leases of running jobs; retrying")
                continue
            for job_id in held:
                job = self._running.get(job_id)
                if job is None:
                    continue  # it ended meanwhile
                if job_id not in renewed:
                    job.stop(StopReason.LOST_LEASE)
                elif renewed[job_id]:
                    job.stop(StopReason.CANCEL)

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

    async def reap_expired(self, *, at_start: bool = False) -> None:
        """Requeues (or, after too many attempts, fails) jobs whose worker stopped heartbeating.

        At start, the jobs this host's previous process held are taken back at once: that process
        no longer exists, so nobody will renew their leases. (Other replicas' jobs wait for their
        leases to expire.)
        """
        max_attempts = self._settings.job_max_attempts
        prefix = f"{self._hostname}:"

        def reap(tx: storage.Transaction) -> list[int]:
            gone = [w for w in storage.lease_owners(tx, prefix=prefix) if _is_gone(w)] if at_start else []
            touched: list[int] = []
            for job in storage.expired_jobs(tx, also_leased_by=gone):
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
            _log.warning("requeued or failed the job of version id %s after its worker stopped", version_id)
            self._hub.notify(version_id)
        if touched:
            self.wake()

    async def _queue_loop(self) -> None:
        """Every poll interval: learn the models' shared state, and tell queued versions where they stand."""
        while not self._stopping:
            with anyio.move_on_after(self._settings.progress_poll_seconds):
                await self._stop_requested.wait()
            if self._stopping:
                break
            try:
                await self._look_at_the_queue()
            except Exception:
                _log.exception("could not look at the queue; retrying")

    async def _look_at_the_queue(self) -> None:
        settings = self._settings
        read_at = time.monotonic()
        activity = await transactions.read(self._db, storage.model_activity)
        for model, state in activity.items():
            self.capacity(model).adopt(state.cooldown_until, state.cooldown_step, read_at=read_at)
            metrics.QUEUE_DEPTH.labels(model).set(state.queued)
            metrics.JOBS_IN_FLIGHT.labels(model).set(state.running)
            until = self.capacity(model).cooling_until
            metrics.COOLDOWN_SECONDS.labels(model).set(
                max(0.0, until.timestamp() - time.time()) if until is not None else 0.0
            )
        estimates: dict[int, storage.QueueEstimate] = {}
        for model, state in activity.items():
            if not state.queued:
                continue
            recent, queue, running = await transactions.read(self._db, functools.partial(_queue_facts, model))
            outlook = _queue.Outlook(
                # A model without a limit of its own runs as many as a replica may (at least one).
                capacity=self._limits.get(model) or max(settings.max_in_flight, 1),
                running=state.running,
                mean_run_seconds=_queue.mean_run_seconds(recent),
                cooldown_until=self.capacity(model).cooling_until,
            )
            self._outlooks[model] = outlook
            await self._report(model, queue, running, outlook, estimates)
        self._estimates = estimates

    async def _report(
        self,
        model: str,
        queue: list[storage.QueuedJob],
        running: dict[str, int],
        outlook: _queue.Outlook,
        estimates: dict[int, storage.QueueEstimate],
    ) -> None:
        now = storage.utcnow()
        places = _queue.positions(queue, running)
        due: list[tuple[storage.QueuedJob, storage.QueueEstimate]] = []
        for job in queue:
            estimate = _queue.estimate(places[job.job_id], outlook, now)
            estimates[job.version_id] = estimate
            waited = (now - job.queued_at).total_seconds()
            if (
                waited >= _REPORT_AFTER_SECONDS
                and _queue.held_back(estimate.position, outlook)
                and _queue.worth_reporting(job.reported_position, estimate.position)
            ):
                due.append((job, estimate))
        if not due:
            return

        def write(tx: storage.Transaction) -> list[storage.Event]:
            changed = set(storage.report_positions(tx, [(job.job_id, e.position) for job, e in due]))
            events = []
            for job, estimate in due:
                if job.job_id not in changed:
                    continue  # another replica reported it, or it started meanwhile
                version = storage.get_version_by_id(tx, job.version_id)
                events.append(
                    storage.append_event(
                        tx,
                        version=version,
                        type=storage.EventType.QUEUED,
                        message=_queue.describe(model, estimate, outlook, now),
                        queue=estimate,
                    )
                )
            return events

        for event in await transactions.write(self._db, write):
            self._hub.notify(event.version_id)


def _renew_leases(worker: str, lease: timedelta, tx: storage.Transaction) -> dict[int, bool]:
    return storage.renew_leases(tx, worker=worker, lease=lease)


def _queue_facts(
    model: str, tx: storage.Transaction
) -> tuple[list[float], list[storage.QueuedJob], dict[str, int]]:
    return (
        storage.recent_run_seconds(tx, model=model),
        storage.queue_of(tx, model=model),
        storage.running_by_owner(tx, model=model),
    )


def _is_gone(worker: str) -> bool:
    """Whether the process named by a worker name of this host no longer runs."""
    _, _, rest = worker.partition(":")
    pid_text, _, _ = rest.partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # that was an earlier process with this pid (a container restarted)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # a process of another user has that pid now
    return False
