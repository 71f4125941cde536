"""The client side: closed-loop load with grpc.aio, run inside a child process.

Every load keeps a fixed number of calls (or jobs) in flight. Only what finishes inside
the measurement window counts: the warm-up before it lets connections, caches and the
server's thread pool settle, and whatever is still running at its end is left out.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2, progress_pb2

from bench._echo import METHOD, STREAM_METHOD
from support.processes import child_pids

# Long enough for a job on a loaded server; the window bounds the run, not these.
_CALL_TIMEOUT = 30.0
_JOB_TIMEOUT = 60.0
# How long jobs still running at the end of the window may take to finish (or fail).
_DRAIN_SECONDS = 30.0
_PROMPT = "a python CLI that converts celsius to fahrenheit, variant {index}"


@dataclass(frozen=True, slots=True)
class Window:
    warmup: float
    seconds: float


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Cores busy during the window (1.0 = one core): who of server and client is the bottleneck."""

    server: float | None
    client: float


@dataclass(frozen=True, slots=True)
class CallStats:
    """Unary calls that finished inside the window."""

    calls: int
    errors: int
    seconds: float
    cpu: CpuUse
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.calls / self.seconds


@dataclass(frozen=True, slots=True)
class JobStats:
    """Generate → Progress → terminal state, as jobs."""

    # COMPLETED jobs whose last event arrived inside the window.
    completed: int
    seconds: float
    # Every job that did not end COMPLETED, at any time of the run, by outcome.
    failures: dict[str, int]
    # Jobs still running when the drain after the window ran out.
    unfinished: int
    # Receive time - event.create_time, for every event received inside the window.
    latencies_ms: tuple[float, ...]
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.completed / self.seconds


class _Clock:
    def __init__(self, window: Window) -> None:
        self.begin = time.perf_counter() + window.warmup
        self.end = self.begin + window.seconds

    def running(self) -> bool:
        return time.perf_counter() < self.end

    def inside(self, moment: float) -> bool:
        return self.begin <= moment < self.end


def process_cpu_seconds(pid: int, *, children: bool = True) -> float | None:
    """User + system CPU time of a process and all its threads, and of the processes it started
    that still run (`children`: a server's Gemini worker is part of the server) (Linux); None
    elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name start at field 3 (state); utime and stime are 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if not children:
        return own
    return own + sum(process_cpu_seconds(child, children=False) or 0.0 for child in child_pids(pid))


def process_rss_mib(pid: int) -> float:
    """The resident memory (VmRSS) in MiB of a process and of the processes it started (Linux)."""
    return rss_mib(pid, *child_pids(pid))


def rss_mib(*pids: int) -> float:
    """The resident memory (VmRSS) in MiB of these processes (Linux); 0 for one that has ended."""
    return sum(_rss_mib(pid) for pid in pids)


def _rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0  # it ended meanwhile
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def _cpu_during(clock: _Clock, server_pid: int) -> CpuUse:
    await asyncio.sleep(max(0.0, clock.begin - time.perf_counter()))
    server_before, client_before = process_cpu_seconds(server_pid), time.process_time()
    await asyncio.sleep(max(0.0, clock.end - time.perf_counter()))
    server_after, client_after = process_cpu_seconds(server_pid), time.process_time()
    seconds = clock.end - clock.begin
    server = None
    if server_before is not None and server_after is not None:
        server = (server_after - server_before) / seconds
    return CpuUse(server=server, client=(client_after - client_before) / seconds)


async def _closed_loop(
    once: Callable[[], Awaitable[None]], *, concurrency: int, window: Window, server_pid: int
) -> CallStats:
    clock = _Clock(window)
    cpu = asyncio.create_task(_cpu_during(clock, server_pid))
    calls = errors = 0
    first_error = ""

    async def caller() -> None:
        nonlocal calls, errors, first_error
        while clock.running():
            try:
                await once()
                ok = True
            except (grpc.aio.AioRpcError, ValueError) as exc:
                ok = False
                first_error = first_error or repr(exc)
                await asyncio.sleep(0.01)  # a dead server must not turn this into a busy loop
            if clock.inside(time.perf_counter()):
                calls += ok
                errors += not ok

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return CallStats(
        calls=calls, errors=errors, seconds=window.seconds, cpu=await cpu, first_error=first_error
    )


def echo_load(
    target: str, *, server_pid: int, payload_bytes: int, concurrency: int, window: Window
) -> CallStats:
    """Unary echo calls of `payload_bytes` bytes."""

    async def load() -> CallStats:
        payload = b"\x5a" * payload_bytes
        async with grpc.aio.insecure_channel(target) as channel:
            # No (de)serializers: bytes go out and come back as they are.
            echo = channel.unary_unary(METHOD)

            async def once() -> None:
                if len(await echo(payload, timeout=_CALL_TIMEOUT)) != payload_bytes:
                    raise ValueError("the echo server answered with different bytes")

            return await _closed_loop(once, concurrency=concurrency, window=window, server_pid=server_pid)

    return asyncio.run(load())


# Progress events of one offline Generate job, counted in the benchmark's runs.
JOB_SHAPE_EVENTS = 19


def job_shape_load(target: str, *, server_pid: int, concurrency: int, window: Window) -> CallStats:
    """A job's gRPC calls on the echo server: a unary call, then a stream of JOB_SHAPE_EVENTS
    messages (64 bytes each), with as many in flight as the jobs load. What gRPC alone costs
    a job, as a ceiling for Atelier's jobs/s."""

    async def load() -> CallStats:
        payload = b"\x5a" * 64
        async with grpc.aio.insecure_channel(target) as channel:
            echo = channel.unary_unary(METHOD)
            stream = channel.unary_stream(STREAM_METHOD)

            async def once() -> None:
                await echo(payload, timeout=_CALL_TIMEOUT)
                received = [
                    message async for message in stream(payload[:JOB_SHAPE_EVENTS], timeout=_CALL_TIMEOUT)
                ]
                if len(received) != JOB_SHAPE_EVENTS:
                    raise ValueError("the echo server streamed a different number of messages")

            return await _closed_loop(once, concurrency=concurrency, window=window, server_pid=server_pid)

    return asyncio.run(load())


async def _run_job(
    stub: atelier_service_pb2_grpc.AtelierServiceStub,
    prompt: str,
    on_event: Callable[[progress_pb2.ProgressEvent], None] | None = None,
) -> tuple[str, int]:
    """Generates, follows Progress to its end; returns the version's name and final state."""
    version = await stub.Generate(pb.GenerateRequest(prompt=prompt), timeout=_CALL_TIMEOUT)
    state: int = version.state
    async for event in stub.Progress(pb.ProgressRequest(name=version.name), timeout=_JOB_TIMEOUT):
        if on_event is not None:
            on_event(event)
        state = event.state
    return version.name, state


def get_version_load(target: str, *, server_pid: int, concurrency: int, window: Window) -> CallStats:
    """GetVersion on one COMPLETED version (made first, outside the window)."""

    async def load() -> CallStats:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
            name, state = await _run_job(stub, _PROMPT.format(index=0))
            if state != generation_pb2.VERSION_STATE_COMPLETED:
                raise RuntimeError(f"{name} ended {generation_pb2.VersionState.Name(state)}, not COMPLETED")
            request = pb.GetVersionRequest(name=name)

            async def once() -> None:
                await stub.GetVersion(request, timeout=_CALL_TIMEOUT)

            return await _closed_loop(once, concurrency=concurrency, window=window, server_pid=server_pid)

    return asyncio.run(load())


def jobs_load(target: str, *, server_pid: int, concurrency: int, window: Window) -> JobStats:
    """`concurrency` jobs in flight: each a Generate, then Progress until its terminal event."""

    async def load() -> JobStats:
        clock = _Clock(window)
        completed = 0
        failures: Counter[str] = Counter()
        latencies: list[float] = []
        numbers = iter(range(1, 1 << 30))

        def on_event(event: progress_pb2.ProgressEvent) -> None:
            # Wall clock on both sides: the server stamps create_time with the same machine's clock.
            received_ns = time.time_ns()
            if clock.inside(time.perf_counter()):
                latencies.append((received_ns - event.create_time.ToNanoseconds()) / 1e6)

        async def worker(stub: atelier_service_pb2_grpc.AtelierServiceStub) -> None:
            nonlocal completed
            while clock.running():
                try:
                    _, state = await _run_job(stub, _PROMPT.format(index=next(numbers)), on_event)
                    outcome = generation_pb2.VersionState.Name(state)
                except grpc.aio.AioRpcError as exc:
                    outcome = f"with an RPC error {exc.code().name}"
                    await asyncio.sleep(0.01)  # a dead server must not turn this into a busy loop
                if outcome != "VERSION_STATE_COMPLETED":
                    failures[outcome] += 1
                elif clock.inside(time.perf_counter()):
                    completed += 1

        async with grpc.aio.insecure_channel(target) as channel:
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
            cpu = asyncio.create_task(_cpu_during(clock, server_pid))
            tasks = [asyncio.create_task(worker(stub)) for _ in range(concurrency)]
            done, pending = await asyncio.wait(tasks, timeout=window.warmup + window.seconds + _DRAIN_SECONDS)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()  # a bug in the load itself must fail the run, not vanish
        return JobStats(
            completed=completed,
            seconds=window.seconds,
            failures=dict(failures),
            unfinished=len(pending),
            latencies_ms=tuple(latencies),
            cpu=await cpu,
        )

    return asyncio.run(load())


# How long a child running one of these loads may take beyond its window before it is killed:
# the drain, plus room for the set-up job and the process start.
CHILD_GRACE_SECONDS = _DRAIN_SECONDS + 45.0
