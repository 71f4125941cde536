"""Session memory: the server's RSS while it serves more and more sessions.

The database is filled before the server starts: 10,000 generations, each with its
conversation session and a COMPLETED version 1 (so that the server finds no job to run).
Then a client process touches every session through the API (GetSession, then GetVersion of
its version 1) and reads the server's VmRSS (/proc/<pid>/status) at every quarter.

Making 10,000 sessions with Generate and the offline provider would take minutes, and so
would 10,000 calls of storage's verbs (about 5 ms each here). So one session is made by the
verbs, exactly as Generate and the end of its job make it, and its rows are copied with new
ids, table by table, in batches. The copies are what the verbs write, column for column.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2

from bench._child import run_in_child
from bench._load import process_rss_mib
from bench._servers import atelier_server

SESSIONS = 10_000
# RSS may grow by less than this between a quarter and all of the sessions touched.
GROWTH_CEILING_MB = 10.0
_BATCH = 500
_QUARTERS = 4
_CONCURRENCY = 8
_CALL_TIMEOUT = 30.0
# The principal every call is made as when the server has no tokens (server/api/_auth.py).
_OWNER = "local"
_PROMPT = "a python CLI that converts celsius to fahrenheit, session {index}"
# The tables one finished Generate writes rows to, parents first.
_TABLES = ("generation", "session", "version", "job", "event")


@dataclass(frozen=True, slots=True)
class MemoryStats:
    sessions: int
    # (sessions touched, server VmRSS in MiB), from 0 to `sessions`.
    samples: tuple[tuple[int, float], ...]
    errors: int
    first_error: str
    populate_seconds: float
    touch_seconds: float

    def growth_mb(self) -> float | None:
        """RSS growth from the first quarter of the sessions touched to all of them."""
        if len(self.samples) < 3:
            return None
        return self.samples[-1][1] - self.samples[1][1]

    def last_step_mb(self) -> float | None:
        """RSS growth over the last quarter: still growing, or levelled off?"""
        if len(self.samples) < 3:
            return None
        return self.samples[-1][1] - self.samples[-2][1]

    def flat(self) -> bool:
        """Less than the ceiling from a quarter to all, and levelling off: the last quarter grew by
        less than a third of it (the rate that would reach the ceiling over the three quarters)."""
        growth, last = self.growth_mb(), self.last_step_mb()
        return (
            growth is not None
            and last is not None
            and growth < GROWTH_CEILING_MB
            and (last < GROWTH_CEILING_MB / 3)
        )


def populate_sessions(database_url: str, *, sessions: int) -> list[str]:
    """Fills a fresh database with `sessions` finished generations; returns their ids."""
    import sqlalchemy as sa
    from sqlmodel import SQLModel

    import storage

    db = storage.Database(database_url)
    try:
        db.migrate()
        with db.write() as tx:
            generation, version = storage.create_generation(
                tx,
                owner=_OWNER,
                prompt=_PROMPT.format(index=0),
                model="offline",
                provider="offline",
                request_id=None,
                request_fingerprint=None,
            )
            assert version.id is not None
            job = storage.job_for_version(tx, version_id=version.id)
            assert job is not None and job.id is not None
            storage.end_job(
                tx,
                job_id=job.id,
                version=version,
                state=storage.VersionState.COMPLETED,
                message="Completed",
            )
        tables = {name: SQLModel.metadata.tables[name] for name in _TABLES}
        with db.read() as session:
            template = {
                name: [dict(row) for row in session.execute(sa.select(table)).mappings()]
                for name, table in tables.items()
            }
            others = [
                name
                for name, table in SQLModel.metadata.tables.items()
                if name not in tables
                and session.execute(sa.select(sa.func.count()).select_from(table)).scalar()
            ]
        if others or any(len(template[name]) != 1 for name in _TABLES[:-1]):
            # The schema changed: copying these tables would no longer make whole sessions.
            raise RuntimeError(f"one Generate wrote rows this benchmark does not copy: {others or template}")
        ids = [generation.id]
        prefix = generation.id[:12]  # the creation time; the rest of an id is random
        for start in range(1, sessions, _BATCH):
            rows: dict[str, list[dict[str, Any]]] = {name: [] for name in _TABLES}
            for index in range(start, min(sessions, start + _BATCH)):
                generation_id = f"{prefix}{index:08x}"
                session_id = f"bench{index:015x}"
                version_id = version.id + index
                prompt = _PROMPT.format(index=index)
                ids.append(generation_id)
                rows["generation"].append(
                    {**template["generation"][0], "id": generation_id, "prompt": prompt}
                )
                rows["session"].append(
                    {**template["session"][0], "id": session_id, "generation_id": generation_id}
                )
                rows["version"].append(
                    {
                        **template["version"][0],
                        "id": version_id,
                        "generation_id": generation_id,
                        "prompt": prompt,
                    }
                )
                rows["job"].append(
                    {
                        **template["job"][0],
                        "id": job.id + index,
                        "version_id": version_id,
                        "session_id": session_id,
                    }
                )
                rows["event"].extend({**event, "version_id": version_id} for event in template["event"])
            with db.write() as session:
                for name in _TABLES:
                    session.execute(sa.insert(tables[name]), rows[name])
        return ids
    finally:
        db.dispose()


def touch_sessions(
    target: str, *, server_pid: int, generation_ids: Sequence[str]
) -> tuple[tuple[tuple[int, float], ...], int, str, float]:
    """GetSession and GetVersion(version 1) of every generation, in quarters; RSS after each.

    Returns the samples, the failed touches, the first failure, and the seconds it took.
    """

    async def load() -> tuple[tuple[tuple[int, float], ...], int, str, float]:
        samples = [(0, process_rss_mib(server_pid))]
        errors, first_error = 0, ""
        began = time.perf_counter()
        async with grpc.aio.insecure_channel(target) as channel:
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)

            async def touch(generation_id: str) -> None:
                nonlocal errors, first_error
                try:
                    name = f"generations/{generation_id}/session"
                    found = await stub.GetSession(pb.GetSessionRequest(name=name), timeout=_CALL_TIMEOUT)
                    version = await stub.GetVersion(
                        pb.GetVersionRequest(name=f"generations/{generation_id}/versions/1"),
                        timeout=_CALL_TIMEOUT,
                    )
                    if found.name != name or version.state != generation_pb2.VERSION_STATE_COMPLETED:
                        raise ValueError(f"{generation_id}: unexpected answers {found.name}, {version.state}")
                except (grpc.aio.AioRpcError, ValueError) as exc:
                    errors += 1
                    first_error = first_error or repr(exc)

            async def worker(queue: list[str]) -> None:
                while queue:
                    await touch(queue.pop())

            quarter = -(-len(generation_ids) // _QUARTERS)
            for start in range(0, len(generation_ids), quarter):
                queue = list(reversed(generation_ids[start : start + quarter]))
                await asyncio.gather(*(worker(queue) for _ in range(_CONCURRENCY)))
                samples.append((min(len(generation_ids), start + quarter), process_rss_mib(server_pid)))
        return tuple(samples), errors, first_error, time.perf_counter() - began

    return asyncio.run(load())


def measure_memory(workdir: Path, *, sessions: int, say: Callable[[str], None]) -> MemoryStats:
    ids: list[str] = []
    populate_seconds = 0.0

    def prepare(database_url: str) -> None:
        nonlocal ids, populate_seconds
        began = time.perf_counter()
        ids = run_in_child(300.0, populate_sessions, database_url, sessions=sessions)
        populate_seconds = time.perf_counter() - began

    say(f"session memory: {sessions:,} sessions written, then touched through the API (SQLite)")
    with atelier_server("sqlite", workdir, label="memory", prepare=prepare) as server:
        samples, errors, first_error, seconds = run_in_child(
            60.0 + sessions * 0.05, touch_sessions, server.target, server_pid=server.pid, generation_ids=ids
        )
    return MemoryStats(
        sessions=sessions,
        samples=samples,
        errors=errors,
        first_error=first_error,
        populate_seconds=populate_seconds,
        touch_seconds=seconds,
    )
