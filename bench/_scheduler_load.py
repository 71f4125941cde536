"""The client side of the scheduler rows (bench/_scheduler.py): grpc.aio loads run inside a child
process, as callers of a server whose jobs wait on a model.

Times that are compared with the server's `create_time` stamps are wall-clock (`time.time_ns`,
the same machine's clock); spans measured by the client alone use `time.perf_counter`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2

_CALL_TIMEOUT = 60.0
# A job of the many-jobs row waits 10 s on the model, behind up to a thousand others.
_JOB_TIMEOUT = 180.0
# Generate calls in flight while a principal fills the queue.
_QUEUE_CONCURRENCY = 64
_PROMPT = "a small python package that greets its user, variant {index}"
_RUNNING = generation_pb2.VERSION_STATE_RUNNING


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    return () if token is None else (("authorization", f"Bearer {token}"),)


def _outcome(state: int) -> str:
    return generation_pb2.VersionState.Name(state).removeprefix("VERSION_STATE_")


@dataclass(frozen=True, slots=True)
class JobsRun:
    """Jobs submitted at once, each followed by its own Progress stream."""

    jobs: int
    # When the first Generate call was made (time.monotonic(): one clock for the whole machine).
    began_at: float
    # From the first Generate call to the last terminal event received.
    span_seconds: float
    # From the first Generate call to the last Generate answer.
    submit_seconds: float
    # How the jobs ended: COMPLETED, FAILED, ... or "RPC error <code>", with counts.
    outcomes: dict[str, int]
    first_error: str
    # CPU seconds this client process used, from the first call to the last event.
    client_cpu_seconds: float


async def _follow(
    stub: atelier_service_pb2_grpc.AtelierServiceStub, name: str, metadata: tuple[tuple[str, str], ...]
) -> int:
    """Follows a version's Progress to its end; returns its last state."""
    state = generation_pb2.VERSION_STATE_UNSPECIFIED
    request = pb.ProgressRequest(name=name)
    async for event in stub.Progress(request, timeout=_JOB_TIMEOUT, metadata=metadata):
        state = event.state
    return state


async def _jobs_at_once(target: str, *, jobs: int, start_at: float | None) -> JobsRun:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        outcomes: Counter[str] = Counter()
        first_error = ""
        began_at, cpu_before = time.monotonic(), time.process_time()
        last_submitted = last_ended = began = time.perf_counter()

        async def one(index: int) -> None:
            nonlocal last_submitted, last_ended, first_error
            try:
                request = pb.GenerateRequest(prompt=_PROMPT.format(index=index))
                version = await stub.Generate(request, timeout=_CALL_TIMEOUT)
                last_submitted = max(last_submitted, time.perf_counter())
                outcome = _outcome(await _follow(stub, version.name, ()))
            except grpc.aio.AioRpcError as exc:
                outcome = f"RPC error {exc.code().name}"
                first_error = first_error or f"{exc.code().name}: {exc.details()}"
            last_ended = max(last_ended, time.perf_counter())
            outcomes[outcome] += 1

        await asyncio.gather(*(one(index) for index in range(jobs)))
        client_cpu_seconds = time.process_time() - cpu_before
    return JobsRun(
        jobs=jobs,
        began_at=began_at,
        span_seconds=last_ended - began,
        submit_seconds=last_submitted - began,
        outcomes=dict(outcomes),
        first_error=first_error,
        client_cpu_seconds=client_cpu_seconds,
    )


def jobs_at_once_load(target: str, *, jobs: int, start_at: float | None = None) -> JobsRun:
    """`jobs` Generate calls at once, each followed by its Progress stream to its terminal event,
    as the UIs of that many users would. `start_at` (a time.monotonic() value: one clock for
    every process of the machine) holds the first call back until then."""
    return asyncio.run(_jobs_at_once(target, jobs=jobs, start_at=start_at))


@dataclass(frozen=True, slots=True)
class FairnessRun:
    queued_jobs: int
    # How long the first principal took to queue its jobs.
    queue_seconds: float
    # The second principal's one job: from its Generate call to its RUNNING event's create_time,
    # and to its terminal event received. None if it never ran.
    wait_seconds: float | None
    end_seconds: float
    outcome: str


async def _fairness(target: str, *, first_token: str, second_token: str, queued_jobs: int) -> FairnessRun:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        first = _metadata(first_token)
        indexes = iter(range(queued_jobs))

        async def queue_some() -> None:
            for index in indexes:
                request = pb.GenerateRequest(prompt=_PROMPT.format(index=index))
                await stub.Generate(request, timeout=_CALL_TIMEOUT, metadata=first)

        began = time.perf_counter()
        await asyncio.gather(*(queue_some() for _ in range(_QUEUE_CONCURRENCY)))
        queue_seconds = time.perf_counter() - began

        second = _metadata(second_token)
        called_ns = time.time_ns()
        request = pb.GenerateRequest(prompt=_PROMPT.format(index=queued_jobs))
        version = await stub.Generate(request, timeout=_CALL_TIMEOUT, metadata=second)
        running_ns: int | None = None
        state = version.state
        progress = pb.ProgressRequest(name=version.name)
        async for event in stub.Progress(progress, timeout=_JOB_TIMEOUT, metadata=second):
            if running_ns is None and event.state == _RUNNING:
                running_ns = event.create_time.ToNanoseconds()
            state = event.state
        ended_ns = time.time_ns()
    return FairnessRun(
        queued_jobs=queued_jobs,
        queue_seconds=queue_seconds,
        wait_seconds=None if running_ns is None else (running_ns - called_ns) / 1e9,
        end_seconds=(ended_ns - called_ns) / 1e9,
        outcome=_outcome(state),
    )


def fairness_load(target: str, *, first_token: str, second_token: str, queued_jobs: int) -> FairnessRun:
    """The first principal queues `queued_jobs` jobs (Generate only); once all are queued, the
    second principal submits one job and follows it to its end."""
    return asyncio.run(
        _fairness(target, first_token=first_token, second_token=second_token, queued_jobs=queued_jobs)
    )
