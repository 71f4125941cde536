"""The generation service and the job runner, driven directly: no server process, no gRPC.

Each test builds the domain exactly as server/app.py does (a real database, the scripted
provider, a real JobRunner) and calls its verbs, so a behaviour is pinned where it lives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

import anyio
import pytest

import storage
from server.config import Settings
from server.domain import (
    Aborted,
    AlreadyExists,
    EventHub,
    FailedPrecondition,
    GenerationService,
    JobRunner,
    NotFound,
    Strategy,
    Version,
    VersionState,
)
from server.files import FileContent
from server.providers import ProviderRegistry


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Domain:
    db: storage.Database
    runner: JobRunner
    service: GenerationService

    async def wait(self, version: Version, owner: str = "alice") -> Version:
        async for _ in self.service.progress(owner=owner, ref=version.ref, after_seq=0):
            pass
        return await self.service.get_version(owner=owner, ref=version.ref)


def _settings(database_url: str, **overrides: object) -> Settings:
    return replace(
        Settings(
            database_url=database_url,
            provider="scripted",
            job_lease_seconds=2.0,
            job_heartbeat_seconds=0.2,
            progress_poll_seconds=0.2,
            shutdown_grace_seconds=1.0,
        ),
        **overrides,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def _domain(database_url: str) -> AsyncIterator[Domain]:
    """The domain as server/app.py builds it; its runner is started by `_running`."""
    settings = _settings(database_url)
    db = storage.Database(database_url)
    db.migrate()
    hub = EventHub()
    runner = JobRunner(db=db, hub=hub, providers=ProviderRegistry(settings), settings=settings)
    try:
        yield Domain(db, runner, GenerationService(db=db, hub=hub, runner=runner, settings=settings))
    finally:
        db.dispose()


@asynccontextmanager
async def _running(runner: JobRunner) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        await group.start(runner.run)
        yield
        await runner.stop()
        group.cancel_scope.cancel()


@pytest.fixture
async def domain(database_url: str) -> AsyncIterator[Domain]:
    async with _domain(database_url) as built, _running(built.runner):
        yield built


def _script(**fields: object) -> str:
    return json.dumps(fields)


@pytest.mark.anyio
async def test_a_generation_runs_to_completed_with_its_stages_numbered_1_to_n(domain: Domain) -> None:
    queued = await domain.service.generate(
        owner="alice", prompt=_script(stages=2), model="", request_id="", attachments=()
    )
    assert (queued.number, queued.state) == (1, VersionState.QUEUED)
    events = [e async for e in domain.service.progress(owner="alice", ref=queued.ref, after_seq=0)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    stages = [(e.stage, e.total_stages) for e in events if e.type == "STAGE_DONE"]
    total = stages[-1][1]
    assert stages == [(k, total) for k in range(1, total + 1)], "every stage is reported done, the last too"
    assert events[-1].state is VersionState.COMPLETED
    done = await domain.service.get_version(owner="alice", ref=queued.ref)
    assert done.state is VersionState.COMPLETED and done.file_count == 1


@pytest.mark.anyio
async def test_a_request_id_makes_one_version_and_refuses_another_request(domain: Domain) -> None:
    first = await domain.service.generate(
        owner="alice", prompt="one", model="", request_id="r-1", attachments=()
    )
    again = await domain.service.generate(
        owner="alice", prompt="one", model="", request_id="r-1", attachments=()
    )
    assert again.ref == first.ref
    with pytest.raises(AlreadyExists) as refused:
        await domain.service.generate(owner="alice", prompt="two", model="", request_id="r-1", attachments=())
    assert refused.value.reason == "REQUEST_ID_REUSED"
    # Another caller's request id is its own.
    other = await domain.service.generate(
        owner="bob", prompt="one", model="", request_id="r-1", attachments=()
    )
    assert other.ref != first.ref


@pytest.mark.anyio
async def test_iterate_keeps_the_parents_files_and_checks_the_parent_first(domain: Domain) -> None:
    files = {f"src/f{i}.py": f"print({i})\n" for i in range(14)}
    v1 = await domain.wait(
        await domain.service.generate(
            owner="alice", prompt=_script(files=files), model="", request_id="", attachments=()
        )
    )
    with pytest.raises(Aborted):
        await domain.service.iterate(
            owner="alice", parent=v1.ref, prompt="x", model="", request_id="", etag='W/"0"'
        )
    with pytest.raises(NotFound):  # another owner's version is not found, not forbidden
        await domain.service.iterate(owner="bob", parent=v1.ref, prompt="x", model="", request_id="", etag="")
    v2 = await domain.wait(
        await domain.service.iterate(
            owner="alice",
            parent=v1.ref,
            prompt=_script(files={"src/new.py": "new\n"}),
            model="",
            request_id="",
            etag=v1.etag,
        )
    )
    assert (v2.state, v2.parent_number, v2.file_count, v2.added_count) == (VersionState.COMPLETED, 1, 15, 1)
    listed = await domain.service.list_files(owner="alice", ref=v2.ref, after_path=None, limit=100)
    assert {entry.path for entry in listed} == {*files, "src/new.py"}


@pytest.mark.anyio
async def test_a_version_still_running_cannot_be_built_on(domain: Domain) -> None:
    slow = await domain.service.generate(
        owner="alice", prompt=_script(stages=1, delay=5), model="", request_id="", attachments=()
    )
    with pytest.raises(FailedPrecondition) as refused:
        await domain.service.tweak(
            owner="alice", parent=slow.ref, prompt="more", model="", request_id="", etag="", attachments=()
        )
    assert refused.value.reason == "VERSION_NOT_READY"
    cancelled = await domain.service.cancel(owner="alice", ref=slow.ref)
    assert (await domain.wait(cancelled)).state is VersionState.CANCELLED


@pytest.mark.anyio
async def test_a_provider_that_crashes_fails_the_version_with_a_reason(domain: Domain) -> None:
    version = await domain.wait(
        await domain.service.generate(
            owner="alice", prompt=_script(crash="boom"), model="", request_id="", attachments=()
        )
    )
    assert version.state is VersionState.FAILED
    assert version.error is not None and version.error.reason == "PROVIDER_CRASHED"


@pytest.mark.anyio
async def test_upload_then_merge_of_two_refinements_keeps_both_changes(domain: Domain) -> None:
    uploaded = await domain.service.upload(
        owner="alice",
        description="two files",
        request_id="",
        files=[FileContent("a.txt", "", b"a\n"), FileContent("b.txt", "", b"b\n")],
    )
    assert uploaded.state is VersionState.COMPLETED
    ours = await domain.wait(
        await domain.service.iterate(
            owner="alice",
            parent=uploaded.ref,
            prompt=_script(files={"a.txt": "ours\n"}),
            model="",
            request_id="",
            etag="",
        )
    )
    theirs = await domain.wait(
        await domain.service.iterate(
            owner="alice",
            parent=uploaded.ref,
            prompt=_script(files={"b.txt": "theirs\n"}),
            model="",
            request_id="",
            etag="",
        )
    )
    merged, conflicts = await domain.service.merge(
        owner="alice", ours=ours.ref, theirs=theirs.ref, strategy=Strategy.NONE, request_id=""
    )
    assert conflicts == [] and merged is not None
    contents = {
        entry.path: data async for entry, data in domain.service.export(owner="alice", ref=merged.ref)
    }
    assert contents == {"a.txt": b"ours\n", "b.txt": b"theirs\n"}


@pytest.mark.anyio
async def test_a_job_whose_worker_vanished_is_run_again_by_the_next_runner(database_url: str) -> None:
    async with _domain(database_url) as domain:
        version = await domain.service.generate(
            owner="alice", prompt=_script(stages=1), model="", request_id="", attachments=()
        )
        # A worker of another process claimed the job and died: nobody renews its lease.
        with domain.db.write() as tx:
            assert storage.claim_job(tx, worker="dead-worker", lease=timedelta(seconds=0)) is not None
        async with _running(domain.runner):  # its first act is to reap expired leases
            done = await domain.wait(version)
        assert done.state is VersionState.COMPLETED
        with domain.db.read() as tx:
            row = storage.get_version(tx, owner="alice", generation_id=version.generation_id, number=1)
            assert row is not None and row.id is not None
            job = storage.job_for_version(tx, version_id=row.id)
        assert job is not None and job.attempts == 2


@asynccontextmanager
async def _domain_with(database_url: str, **overrides: object) -> AsyncIterator[Domain]:
    settings = _settings(database_url, **overrides)
    db = storage.Database(database_url)
    db.migrate()
    hub = EventHub()
    runner = JobRunner(db=db, hub=hub, providers=ProviderRegistry(settings), settings=settings)
    try:
        domain = Domain(db, runner, GenerationService(db=db, hub=hub, runner=runner, settings=settings))
        async with _running(runner):
            yield domain
    finally:
        db.dispose()


@pytest.mark.anyio
async def test_a_principal_runs_at_most_its_cap_and_others_are_not_held_back(database_url: str) -> None:
    async with _domain_with(database_url, max_in_flight_per_principal=2) as domain:
        slow = _script(stages=1, delay=0.6)
        mine = [
            await domain.service.generate(owner="alice", prompt=slow, model="", request_id="", attachments=())
            for _ in range(5)
        ]
        theirs = await domain.service.generate(
            owner="bob", prompt=slow, model="", request_id="", attachments=()
        )
        await anyio.sleep(0.3)
        states = [(await domain.service.get_version(owner="alice", ref=v.ref)).state for v in mine]
        assert states.count(VersionState.RUNNING) == 2 and states.count(VersionState.QUEUED) == 3
        assert (await domain.service.get_version(owner="bob", ref=theirs.ref)).state is VersionState.RUNNING
        for version in mine:
            assert (await domain.wait(version)).state is VersionState.COMPLETED


@pytest.mark.anyio
async def test_a_models_requests_per_minute_hold_its_requests_back(database_url: str) -> None:
    from server.config import ModelConfig

    budgeted = ModelConfig("budgeted", "scripted", "one request a minute", requests_per_minute=1)
    models = (ModelConfig("scripted", "scripted", "s"), budgeted)
    async with _domain_with(database_url, models=models) as domain:
        versions = [
            await domain.service.generate(
                owner="alice", prompt=_script(stages=1), model="budgeted", request_id="", attachments=()
            )
            for _ in range(2)
        ]
        await anyio.sleep(1.0)
        seen = [await domain.service.get_version(owner="alice", ref=v.ref) for v in versions]
        # One request went out at once; the other waits for the budget to refill (a minute): its
        # job runs, but no stage has started.
        assert sorted(v.state for v in seen) == [VersionState.COMPLETED, VersionState.RUNNING]
        held = next(v for v in seen if v.state is VersionState.RUNNING)
        assert held.stage == 0
        await domain.service.cancel(owner="alice", ref=held.ref)
        assert (await domain.wait(held)).state is VersionState.CANCELLED
