"""Idle Progress streams: what the server spends on streams whose jobs make no progress.

The scripted model is limited to one call at a time, and a first job holds it, sleeping for an
hour; the versions made after it stay QUEUED behind it, and each is followed by a Progress
stream from one grpc.aio client (in a process of its own). Once every stream has had its first
events, the server's CPU is read from /proc over a window, before and after the streams open,
so that what the streams cost stands apart from what the idle server (its heartbeat, its queue
reporter, its one poll for every stream) costs.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2

from bench._child import run_in_child
from bench._load import process_cpu_seconds
from bench._servers import atelier_server

STREAMS = 1000
# A job that runs for an hour: it holds the model, and every stream stays open and quiet.
_SLEEPING_JOB = json.dumps({"stages": 1, "delay": 3600})
_CONFIG = """
provider = "scripted"

[[models]]
name = "scripted"
provider = "scripted"
max_concurrent = 1
"""
_SERVER_ENV = {
    # The heartbeat, the queue reporter and the poll keep their defaults: they are what a server does.
    "ATELIER_SHUTDOWN_GRACE_SECONDS": "0",
}
_CALL_TIMEOUT = 30.0
_SUBMIT_CONCURRENCY = 32
# Streams opening, then the server settling, before a window; and the child's time beyond them.
_OPEN_SECONDS = 120.0
_SETTLE_SECONDS = 3.0
_CHILD_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class IdleFigures:
    """Cores the server used (1.0 = one core) with the versions queued, without and with the streams."""

    streams: int
    versions: int
    seconds: float
    without_streams: float
    with_streams: float
    # Versions that were not QUEUED when their stream opened (the blocker's model ran one anyway).
    not_queued: int

    @property
    def streams_cost(self) -> float:
        return self.with_streams - self.without_streams


async def _server_cores(pid: int, seconds: float) -> float:
    before = process_cpu_seconds(pid)
    await asyncio.sleep(seconds)
    after = process_cpu_seconds(pid)
    if before is None or after is None:
        raise RuntimeError("the server's CPU time cannot be read (not Linux?)")
    return (after - before) / seconds


async def _idle_streams(target: str, pid: int, *, streams: int, versions: int, seconds: float) -> IdleFigures:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        request = pb.GenerateRequest(prompt=_SLEEPING_JOB)
        await stub.Generate(request, timeout=_CALL_TIMEOUT)  # the blocker: it takes the model's one call
        names: list[str] = []

        async def submit(count: int) -> None:
            for _ in range(count):
                names.append((await stub.Generate(request, timeout=_CALL_TIMEOUT)).name)

        share, extra = divmod(versions, _SUBMIT_CONCURRENCY)
        await asyncio.gather(*(submit(share + (n < extra)) for n in range(_SUBMIT_CONCURRENCY)))
        await asyncio.sleep(_SETTLE_SECONDS)
        without_streams = await _server_cores(pid, seconds)

        opened = not_queued = 0
        all_open = asyncio.Event()

        async def follow(name: str) -> None:
            nonlocal opened, not_queued
            first = True
            async for event in stub.Progress(pb.ProgressRequest(name=name)):
                if first:
                    first = False
                    opened += 1
                    not_queued += event.state != generation_pb2.VERSION_STATE_QUEUED
                    if opened == streams:
                        all_open.set()
            raise RuntimeError(f"the Progress stream of {name} ended: its job was meant to wait")

        followers = [asyncio.create_task(follow(names[index % versions])) for index in range(streams)]
        try:
            waiting = asyncio.create_task(all_open.wait())
            done, _ = await asyncio.wait(
                [waiting, *followers], timeout=_OPEN_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting not in done:
                for task in done:
                    task.result()  # raises what ended a stream early
                raise RuntimeError(f"only {opened} of {streams} streams had their first event in time")
            await asyncio.sleep(_SETTLE_SECONDS)
            with_streams = await _server_cores(pid, seconds)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    return IdleFigures(
        streams=streams,
        versions=versions,
        seconds=seconds,
        without_streams=without_streams,
        with_streams=with_streams,
        not_queued=not_queued,
    )


def idle_streams_load(
    target: str, *, server_pid: int, streams: int, versions: int, seconds: float
) -> IdleFigures:
    return asyncio.run(_idle_streams(target, server_pid, streams=streams, versions=versions, seconds=seconds))


def measure_idle(
    workdir: Path, *, streams: int = STREAMS, versions: int = STREAMS, seconds: float = 10.0
) -> IdleFigures:
    """Starts a server on a fresh SQLite database and measures it with `streams` idle streams
    spread over `versions` queued versions."""
    config = workdir / "idle.toml"
    config.write_text(_CONFIG)
    env = {**_SERVER_ENV, "ATELIER_CONFIG": str(config)}
    with atelier_server("sqlite", workdir, label="idle", env=env) as server:
        limit = _OPEN_SECONDS + 2 * (seconds + _SETTLE_SECONDS) + _CHILD_GRACE_SECONDS
        return run_in_child(
            limit,
            idle_streams_load,
            server.target,
            server_pid=server.pid,
            streams=streams,
            versions=versions,
            seconds=seconds,
        )
