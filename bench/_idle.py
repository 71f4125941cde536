"""Idle Progress streams: what the server spends on streams whose jobs make no progress.

Versions that stay RUNNING (the scripted provider sleeping for an hour) or QUEUED behind them
are followed by many Progress streams from one grpc.aio client; once every stream has had its
first events, the server's CPU is read from /proc over a window, before and after the streams
open, so that what the streams cost stands apart from what the idle server costs.

`python -m bench._idle [--backend sqlite|postgres] [--streams 1000] [--versions 100]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc

from bench._load import _process_cpu_seconds
from bench._servers import atelier_server

# A job that runs for an hour: its stream stays open and quiet for the whole measurement.
_SLEEPING_JOB = json.dumps({"stages": 1, "delay": 3600})
_SERVER_ENV = {
    "ATELIER_PROVIDER": "scripted",
    # The defaults would heartbeat every 2 s; keep them, they are what a server does anyway.
    "ATELIER_SHUTDOWN_GRACE_SECONDS": "0",
}
_CALL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class IdleFigures:
    """Cores the server used (1.0 = one core) with the versions made, without and with the streams."""

    streams: int
    versions: int
    without_streams: float
    with_streams: float

    @property
    def streams_cost(self) -> float:
        return self.with_streams - self.without_streams


async def _server_cores(pid: int, seconds: float) -> float:
    before = _process_cpu_seconds(pid)
    await asyncio.sleep(seconds)
    after = _process_cpu_seconds(pid)
    if before is None or after is None:
        raise RuntimeError("the server's CPU time cannot be read (not Linux?)")
    return (after - before) / seconds


async def _load(
    target: str, pid: int, *, streams: int, versions: int, settle: float, seconds: float
) -> IdleFigures:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
        names = [
            (await stub.Generate(pb.GenerateRequest(prompt=_SLEEPING_JOB), timeout=_CALL_TIMEOUT)).name
            for _ in range(versions)
        ]
        await asyncio.sleep(settle)
        without_streams = await _server_cores(pid, seconds)

        opened = 0
        all_open = asyncio.Event()

        async def follow(name: str) -> None:
            nonlocal opened
            first = True
            async for _ in stub.Progress(pb.ProgressRequest(name=name)):
                if first:
                    first = False
                    opened += 1
                    if opened == streams:
                        all_open.set()
            raise RuntimeError(f"the Progress stream of {name} ended: its job was meant to sleep")

        followers = [asyncio.create_task(follow(names[index % versions])) for index in range(streams)]
        try:
            waiting = asyncio.create_task(all_open.wait())
            done, _ = await asyncio.wait(
                [waiting, *followers], timeout=120, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting not in done:
                for task in done:
                    task.result()  # raises what ended a stream early
                raise RuntimeError(f"only {opened} of {streams} streams had their first event in time")
            await asyncio.sleep(settle)
            with_streams = await _server_cores(pid, seconds)
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
    return IdleFigures(
        streams=streams, versions=versions, without_streams=without_streams, with_streams=with_streams
    )


def measure_idle(
    backend: str,
    workdir: Path,
    *,
    streams: int = 1000,
    versions: int = 100,
    settle: float = 3.0,
    seconds: float = 10.0,
    env: dict[str, str] | None = None,
) -> IdleFigures:
    """Starts a server on a fresh `backend` database and measures it with `streams` idle streams
    spread over `versions` versions (the first few RUNNING, the others QUEUED behind them)."""
    with atelier_server(backend, workdir, env={**_SERVER_ENV, **(env or {})}) as server:
        return asyncio.run(
            _load(
                server.target, server.pid, streams=streams, versions=versions, settle=settle, seconds=seconds
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._idle", description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--poll-seconds", type=float, default=1.0, help="ATELIER_PROGRESS_POLL_SECONDS (1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atelier-idle-") as workdir:
        figures = measure_idle(
            args.backend,
            Path(workdir),
            streams=args.streams,
            versions=args.versions,
            seconds=args.seconds,
            env={"ATELIER_PROGRESS_POLL_SECONDS": str(args.poll_seconds)},
        )
    print(
        f"{args.backend}: {figures.streams} idle streams over {figures.versions} versions: server "
        f"{figures.with_streams:.3f} cores with them, {figures.without_streams:.3f} without "
        f"(the streams cost {figures.streams_cost:.3f})"
    )


if __name__ == "__main__":
    main()
