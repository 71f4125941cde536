"""The generation service and the job runner, driven directly: no server process, no gRPC.

Each test builds the domain exactly as server/app.py does (a real database, the scripted
provider, a real JobRunner) and calls its verbs, so a behaviour is pinned where it lives.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.to_process
import pytest
import sqlalchemy as sa
from anyio.abc import TaskGroup

import storage
from server.config import Settings
from server.domain import (
    READ,
    WRITE,
    Aborted,
    AlreadyExists,
    CostQuestion,
    Estimate,
    EventHub,
    FailedPrecondition,
    GenerationService,
    InvalidArgument,
    JobRunner,
    NotFound,
    Principal,
    ProgressEvent,
    Strategy,
    Unavailable,
    Version,
    VersionKind,
    VersionState,
    follow_other_replicas,
    poll_followed_versions,
)
from server.domain.generations._base import fingerprint_of
from server.domain.resources import Draft
from server.files import FileContent
from server.providers import OPEN_GATE, DraftAnswer, DraftRequest, ModelGate, ProviderError, ProviderRegistry
from support.databases import fresh_database
from tests.conftest import check_backend

ALICE = Principal.of("alice", [READ, WRITE])
BOB = Principal.of("bob", [READ, WRITE])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Domain:
    db: storage.Database
    hub: EventHub
    runner: JobRunner
    service: GenerationService
    settings: Settings

    async def wait(self, version: Version, caller: Principal = ALICE) -> Version:
        async for _ in self.service.progress(caller=caller, ref=version.ref, after_seq=0):
            pass
        return await self.service.get_version(caller=caller, ref=version.ref)


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
async def _domain(database_url: str, **settings: object) -> AsyncIterator[Domain]:
    """The domain as server/app.py builds it; its background tasks are started by `_running`."""
    built = _settings(database_url, **settings)
    db = storage.Database(database_url)
    db.migrate()
    hub = EventHub()
    runner = JobRunner(db=db, hub=hub, providers=ProviderRegistry(built), settings=built)
    try:
        yield Domain(db, hub, runner, GenerationService(db=db, hub=hub, runner=runner, settings=built), built)
    finally:
        db.dispose()


@asynccontextmanager
async def _running(domain: Domain, *, jobs: bool = True) -> AsyncIterator[None]:
    """The background tasks server/app.py starts: the job runner (without it, with `jobs` false,
    every job stays QUEUED) and the poll of the versions that Progress streams follow."""
    async with anyio.create_task_group() as group:
        if jobs:
            await group.start(domain.runner.run)
        await group.start(
            functools.partial(
                poll_followed_versions, domain.db, domain.hub, interval=domain.settings.progress_poll_seconds
            )
        )
        yield
        if jobs:
            await domain.runner.stop()
        group.cancel_scope.cancel()


@pytest.fixture
async def domain(database_url: str) -> AsyncIterator[Domain]:
    async with _domain(database_url) as built, _running(built):
        yield built


def _script(**fields: object) -> str:
    return json.dumps(fields)


@pytest.mark.anyio
async def test_a_generation_runs_to_completed_with_its_stages_numbered_1_to_n(domain: Domain) -> None:
    queued = await domain.service.generate(
        caller=ALICE, prompt=_script(stages=2), model="", request_id="", attachments=()
    )
    assert (queued.number, queued.state) == (1, VersionState.QUEUED)
    events = [e async for e in domain.service.progress(caller=ALICE, ref=queued.ref, after_seq=0)]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    stages = [(e.stage, e.total_stages) for e in events if e.type == "STAGE_DONE"]
    total = stages[-1][1]
    assert stages == [(k, total) for k in range(1, total + 1)], "every stage is reported done, the last too"
    assert events[-1].state is VersionState.COMPLETED
    done = await domain.service.get_version(caller=ALICE, ref=queued.ref)
    assert done.state is VersionState.COMPLETED and done.file_count == 1


@pytest.mark.anyio
async def test_a_request_id_makes_one_version_and_refuses_another_request(domain: Domain) -> None:
    first = await domain.service.generate(
        caller=ALICE, prompt="one", model="", request_id="r-1", attachments=()
    )
    again = await domain.service.generate(
        caller=ALICE, prompt="one", model="", request_id="r-1", attachments=()
    )
    assert again.ref == first.ref
    with pytest.raises(AlreadyExists) as refused:
        await domain.service.generate(caller=ALICE, prompt="two", model="", request_id="r-1", attachments=())
    assert refused.value.reason == "REQUEST_ID_REUSED"
    # Another caller's request id is its own.
    other = await domain.service.generate(
        caller=BOB, prompt="one", model="", request_id="r-1", attachments=()
    )
    assert other.ref != first.ref


@pytest.mark.anyio
async def test_iterate_keeps_the_parents_files_and_checks_the_parent_first(domain: Domain) -> None:
    files = {f"src/f{i}.py": f"print({i})\n" for i in range(14)}
    v1 = await domain.wait(
        await domain.service.generate(
            caller=ALICE, prompt=_script(files=files), model="", request_id="", attachments=()
        )
    )
    with pytest.raises(Aborted):
        await domain.service.iterate(
            caller=ALICE, parent=v1.ref, prompt="x", model="", request_id="", etag='W/"0"'
        )
    with pytest.raises(NotFound):  # another owner's version is not found, not forbidden
        await domain.service.iterate(caller=BOB, parent=v1.ref, prompt="x", model="", request_id="", etag="")
    v2 = await domain.wait(
        await domain.service.iterate(
            caller=ALICE,
            parent=v1.ref,
            prompt=_script(files={"src/new.py": "new\n"}),
            model="",
            request_id="",
            etag=v1.etag,
        )
    )
    assert (v2.state, v2.parent_number, v2.file_count, v2.added_count) == (VersionState.COMPLETED, 1, 15, 1)
    listed = await domain.service.list_files(caller=ALICE, ref=v2.ref, after_path=None, limit=100)
    assert {entry.path for entry, _ in listed} == {*files, "src/new.py"}


@pytest.mark.anyio
async def test_a_version_still_running_cannot_be_built_on(domain: Domain) -> None:
    slow = await domain.service.generate(
        caller=ALICE, prompt=_script(stages=1, delay=5), model="", request_id="", attachments=()
    )
    with pytest.raises(FailedPrecondition) as refused:
        await domain.service.tweak(
            caller=ALICE, parent=slow.ref, prompt="more", model="", request_id="", etag="", attachments=()
        )
    assert refused.value.reason == "VERSION_NOT_READY"
    cancelled = await domain.service.cancel(caller=ALICE, ref=slow.ref)
    assert (await domain.wait(cancelled)).state is VersionState.CANCELLED


@pytest.mark.anyio
async def test_a_provider_that_crashes_fails_the_version_with_a_reason(domain: Domain) -> None:
    version = await domain.wait(
        await domain.service.generate(
            caller=ALICE, prompt=_script(crash="boom"), model="", request_id="", attachments=()
        )
    )
    assert version.state is VersionState.FAILED
    assert version.error is not None and version.error.reason == "PROVIDER_CRASHED"


@pytest.mark.anyio
async def test_upload_then_merge_of_two_refinements_keeps_both_changes(domain: Domain) -> None:
    uploaded = await domain.service.upload(
        caller=ALICE,
        description="two files",
        request_id="",
        files=[FileContent("a.txt", "", b"a\n"), FileContent("b.txt", "", b"b\n")],
    )
    assert uploaded.state is VersionState.COMPLETED
    ours = await domain.wait(
        await domain.service.iterate(
            caller=ALICE,
            parent=uploaded.ref,
            prompt=_script(files={"a.txt": "ours\n"}),
            model="",
            request_id="",
            etag="",
        )
    )
    theirs = await domain.wait(
        await domain.service.iterate(
            caller=ALICE,
            parent=uploaded.ref,
            prompt=_script(files={"b.txt": "theirs\n"}),
            model="",
            request_id="",
            etag="",
        )
    )
    merged, conflicts = await domain.service.merge(
        caller=ALICE, ours=ours.ref, theirs=theirs.ref, strategy=Strategy.NONE, request_id=""
    )
    assert conflicts == [] and merged is not None
    contents = {entry.path: data async for entry, data in domain.service.export(caller=ALICE, ref=merged.ref)}
    assert contents == {"a.txt": b"ours\n", "b.txt": b"theirs\n"}


# The least a PNG is to the server's content check: its signature.
_PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)


def _tokens(size: int) -> int:
    """The providers' local estimate of `size` bytes of text: one token per 4 bytes, rounded up."""
    return -(-size // 4)


@pytest.mark.anyio
async def test_an_estimate_counts_each_outputs_attachments_as_the_model_is_sent_them(domain: Domain) -> None:
    async def estimate(*attachments: FileContent, kind: VersionKind = VersionKind.GENERATE) -> Estimate:
        question = CostQuestion(kind=kind, prompt="a knight", count=2, attachments=attachments)
        return await domain.service.estimate_cost(caller=ALICE, question=question)

    plain = await estimate()
    notes = ("é" * 100 + "plain").encode()  # 205 bytes of UTF-8
    attached = await estimate(
        FileContent("notes.txt", "text/plain", notes),
        FileContent("sketch.png", "image/png", _PNG),
        FileContent("data.bin", "application/octet-stream", b"\x00\x01\x02"),
    )
    # Each of the 2 outputs sends the text by its bytes and the image at 258 tokens; the binary
    # file is only named.
    assert attached.input_tokens - plain.input_tokens == 2 * (_tokens(205) + 258)
    assert (attached.outputs, attached.calls) == (plain.outputs, plain.calls) == (2, 2)
    assert (
        "3 attachments (1 image or other media file at 258 tokens each, 205 bytes of text at 4 bytes "
        "a token, 1 other binary file, named only, not sent), sent with each call, are estimated locally"
    ) in attached.assumptions
    assert not any("attachment" in said for said in plain.assumptions)
    # Attachments are checked as Generate checks them.
    with pytest.raises(InvalidArgument) as refused:
        await estimate(FileContent("sketch.png", "image/png", b"not a png"))
    assert refused.value.reason == "CONTENT_TYPE_MISMATCH"


@pytest.mark.anyio
async def test_an_estimate_counts_the_earlier_turns_a_tweak_or_regenerate_sends_again(domain: Domain) -> None:
    first, second, asked = "draw a knight", "now a dragon!", "make it red"
    v1 = await domain.wait(
        await domain.service.generate(
            caller=ALICE,
            prompt=first,
            model="",
            request_id="",
            attachments=[FileContent("sketch.png", "image/png", _PNG)],
        )
    )
    v2 = await domain.wait(
        await domain.service.tweak(
            caller=ALICE, parent=v1.ref, prompt=second, model="", request_id="", etag="", attachments=()
        )
    )
    assert (v1.state, v2.state) == (VersionState.COMPLETED, VersionState.COMPLETED)

    async def estimate(
        kind: VersionKind, base: Version, prompt: str = asked, count: int | None = None
    ) -> Estimate:
        question = CostQuestion(kind=kind, prompt=prompt, base=base.ref, count=count)
        return await domain.service.estimate_cost(caller=ALICE, question=question)

    # The scripted provider's exchange: the prompt (with its attachments as inline data), then
    # "wrote 1 file"; its tree is answer.txt, the prompt.
    answer = "wrote 1 file"
    two_turns = _tokens(len(first) + len(answer)) + 258
    four_turns = _tokens(len(first) + len(answer) + len(second) + len(answer)) + 258
    of_v1 = await estimate(VersionKind.TWEAK, v1)
    of_v2 = await estimate(VersionKind.TWEAK, v2)
    assert of_v1.input_tokens == _tokens(len(asked)) + _tokens(len(first)) + two_turns
    assert of_v2.input_tokens == _tokens(len(asked)) + _tokens(len(second)) + four_turns
    assert of_v2.input_tokens > of_v1.input_tokens
    history = (
        "{} earlier turns of the conversation ({} bytes of text at 4 bytes a token, 1 media part at "
        "258 tokens each), which the model is sent again with each call, are estimated locally"
    )
    assert history.format(2, len(first) + len(answer)) in of_v1.assumptions
    assert history.format(4, len(first) + len(second) + 2 * len(answer)) in of_v2.assumptions
    assert not any("not counted" in said for said in of_v2.assumptions)
    # An Iterate starts a conversation of its own: the files, no turns.
    iterated = await estimate(VersionKind.ITERATE, v2)
    assert iterated.input_tokens == _tokens(len(asked)) + _tokens(len(second))
    assert not any("earlier turn" in said for said in iterated.assumptions)
    # Regenerating v2 asks its prompt again after v1's turns, on v1's files, once per output.
    again = await estimate(VersionKind.REGENERATE, v2, prompt="", count=2)
    assert again.input_tokens == 2 * (_tokens(len(second)) + _tokens(len(first)) + two_turns)
    assert history.format(2, len(first) + len(answer)) in again.assumptions
    # Regenerating v1 sends its prompt and its attachment again, and no turns.
    first_again = await estimate(VersionKind.REGENERATE, v1, prompt="")
    assert first_again.input_tokens == _tokens(len(first)) + 258
    assert first_again.assumptions[0].startswith("1 attachment (1 image or other media file at 258")


@pytest.mark.anyio
async def test_a_job_whose_worker_vanished_is_run_again_by_the_next_runner(database_url: str) -> None:
    async with _domain(database_url) as domain:
        version = await domain.service.generate(
            caller=ALICE, prompt=_script(stages=1), model="", request_id="", attachments=()
        )
        # A worker of another process claimed the job and died: nobody renews its lease.
        with domain.db.write() as tx:
            assert storage.claim_job(tx, worker="dead-worker", lease=timedelta(seconds=0)) is not None
        async with _running(domain):  # its first act is to reap expired leases
            done = await domain.wait(version)
        assert done.state is VersionState.COMPLETED
        with domain.db.read() as tx:
            row = storage.get_version(tx, owner="alice", generation_id=version.generation_id, number=1)
            assert row is not None and row.id is not None
            job = storage.job_for_version(tx, version_id=row.id)
        assert job is not None and job.attempts == 2


@pytest.mark.anyio
async def test_a_principal_runs_at_most_its_cap_and_others_are_not_held_back(database_url: str) -> None:
    async with _domain(database_url, max_in_flight_per_principal=2) as domain, _running(domain):
        slow = _script(stages=1, delay=0.6)
        mine = [
            await domain.service.generate(caller=ALICE, prompt=slow, model="", request_id="", attachments=())
            for _ in range(5)
        ]
        theirs = await domain.service.generate(
            caller=BOB, prompt=slow, model="", request_id="", attachments=()
        )
        await anyio.sleep(0.3)
        states = [(await domain.service.get_version(caller=ALICE, ref=v.ref)).state for v in mine]
        assert states.count(VersionState.RUNNING) == 2 and states.count(VersionState.QUEUED) == 3
        assert (await domain.service.get_version(caller=BOB, ref=theirs.ref)).state is VersionState.RUNNING
        for version in mine:
            assert (await domain.wait(version)).state is VersionState.COMPLETED


@pytest.mark.anyio
@pytest.mark.parametrize("budget", [{"requests_per_minute": 1}, {"tokens_per_minute": 10}])
async def test_a_models_budget_holds_its_requests_back(database_url: str, budget: dict[str, int]) -> None:
    from server.config import ModelConfig

    # One request a minute; or ten input tokens a minute, with each request estimated (at 4 bytes
    # a token) above the whole budget: the first goes with the bucket full and leaves it owing.
    budgeted = ModelConfig("budgeted", "scripted", "a small budget", **budget)  # type: ignore[arg-type]
    models = (ModelConfig("scripted", "scripted", "s"), budgeted)
    prompt = _script(stages=1, files={"a.txt": "x" * 100})
    async with _domain(database_url, models=models) as domain, _running(domain):
        versions = [
            await domain.service.generate(
                caller=ALICE, prompt=prompt, model="budgeted", request_id="", attachments=()
            )
            for _ in range(2)
        ]
        await anyio.sleep(1.0)
        seen = [await domain.service.get_version(caller=ALICE, ref=v.ref) for v in versions]
        # One request went out at once; the other waits for the budget to refill (a minute or
        # more): its job runs, but no stage has started.
        assert sorted(v.state for v in seen) == [VersionState.COMPLETED, VersionState.RUNNING]
        held = next(v for v in seen if v.state is VersionState.RUNNING)
        assert held.stage == 0
        await domain.service.cancel(caller=ALICE, ref=held.ref)
        assert (await domain.wait(held)).state is VersionState.CANCELLED


@pytest.mark.anyio
@pytest.mark.parametrize("budget", [{"requests_per_minute": 1}, {"tokens_per_minute": 10}])
async def test_a_job_that_waits_on_its_models_budget_too_long_fails_with_the_quota_reason(
    database_url: str, budget: dict[str, int]
) -> None:
    from server.config import ModelConfig

    # Waiting on a budget counts toward provider_max_wait_seconds, as a cooldown does: the second
    # request would wait about a minute for the bucket to refill, and the server allows 0.5 s.
    budgeted = ModelConfig("budgeted", "scripted", "a small budget", **budget)  # type: ignore[arg-type]
    models = (ModelConfig("scripted", "scripted", "s"), budgeted)
    prompt = _script(stages=1, files={"a.txt": "x" * 100})
    patient = _domain(database_url, models=models, provider_max_wait_seconds=0.5)
    async with patient as domain, _running(domain):
        versions = [
            await domain.service.generate(
                caller=ALICE, prompt=prompt, model="budgeted", request_id="", attachments=()
            )
            for _ in range(2)
        ]
        ended = [await domain.wait(v) for v in versions]
    assert sorted(v.state for v in ended) == [VersionState.COMPLETED, VersionState.FAILED]
    failed = next(v for v in ended if v.state is VersionState.FAILED)
    assert failed.error is not None and failed.error.reason == "MODEL_QUOTA_EXHAUSTED"
    assert "ATELIER_PROVIDER_MAX_WAIT_SECONDS" in failed.error.message


@pytest.mark.anyio
async def test_the_collector_deletes_the_draft_reservations_a_stopped_server_left(database_url: str) -> None:
    from server.domain.gc import collect_garbage
    from server.domain.generations import drafting_seconds

    async with _domain(database_url) as domain:
        reserved = {}
        for request_id in ("left", "drafting"):
            with domain.db.write() as tx:
                reserved[request_id] = storage.reserve_draft(
                    tx,
                    owner=ALICE.name,
                    request_id=request_id,
                    request_fingerprint=fingerprint_of("draft", "a cat", "", "scripted"),
                    text="a cat",
                    context="",
                    model="scripted",
                    drafter_model="scripted",
                    provider="scripted",
                )
        # "left" was reserved longer ago than any drafting call lasts: its server stopped mid-call.
        long_ago = storage.utcnow() - timedelta(seconds=drafting_seconds(domain.settings) + 60)
        with domain.db.write() as tx:
            tx.execute(
                sa.update(storage.Draft)
                .where(storage.Draft.id == reserved["left"].id)  # type: ignore[arg-type]
                .values(create_time=long_ago)
            )
        report = await collect_garbage(domain.db, domain.settings)
        assert report.reservations_deleted == 1
        with domain.db.read() as tx:
            assert storage.find_draft_by_request_id(tx, owner=ALICE.name, request_id="left") is None
            # One whose call may still be drafting is kept: that call will complete or free it.
            assert storage.find_draft_by_request_id(tx, owner=ALICE.name, request_id="drafting") is not None
        assert (await collect_garbage(domain.db, domain.settings)).reservations_deleted == 0


@contextmanager
def _statements(db: storage.Database) -> Iterator[list[str]]:
    """The SQL statements run on `db` inside the block."""
    statements: list[str] = []

    def record(_connection: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


class _Followers:
    """Progress streams of the domain, and what each received."""

    def __init__(self, domain: Domain) -> None:
        self._domain = domain
        self.received: list[list[ProgressEvent]] = []
        self._received_more = anyio.Event()

    def start(self, group: TaskGroup, version: Version, count: int = 1) -> None:
        for _ in range(count):
            events: list[ProgressEvent] = []
            self.received.append(events)
            group.start_soon(self._follow, version, events)

    async def _follow(self, version: Version, events: list[ProgressEvent]) -> None:
        async for event in self._domain.service.progress(caller=ALICE, ref=version.ref, after_seq=0):
            events.append(event)
            self._received_more.set()
            self._received_more = anyio.Event()

    async def until(self, condition: Callable[[list[ProgressEvent]], bool]) -> None:
        """Until every stream's events meet `condition`."""
        with anyio.fail_after(10):
            while True:
                received_more = self._received_more
                if all(condition(events) for events in self.received):
                    return
                await received_more.wait()


@pytest.mark.anyio
async def test_idle_streams_read_nothing_but_the_one_poll_per_interval(database_url: str) -> None:
    # No runner: the jobs stay QUEUED, and the only statements are the streams' and the poll's.
    async with _domain(database_url) as domain, _running(domain, jobs=False):
        versions = [
            await domain.service.generate(
                caller=ALICE, prompt=f"idle {n}", model="", request_id="", attachments=()
            )
            for n in range(10)
        ]
        followers = _Followers(domain)
        async with anyio.create_task_group() as group:
            for version in versions:
                followers.start(group, version, count=20)
            await followers.until(lambda events: [e.seq for e in events] == [1])
            interval = domain.settings.progress_poll_seconds
            with _statements(domain.db) as statements:
                await anyio.sleep(5 * interval)
            group.cancel_scope.cancel()
        assert domain.hub.followed() == []
    reads = [s for s in statements if not s.startswith("BEGIN")]
    polls = [s for s in reads if s.startswith("SELECT version.id, version.last_event_seq")]
    # 200 streams that each read every interval would have run about a thousand.
    assert reads == polls, "an idle stream read the database itself"
    assert 1 <= len(polls) <= 7, "one statement per interval for all the followed versions"


@pytest.mark.anyio
async def test_events_that_another_process_writes_unannounced_reach_streams_through_the_poll(
    database_url: str,
) -> None:
    # Nobody listens for notifications here: only the poll can find the other process's events.
    async with _domain(database_url) as domain, _running(domain, jobs=False):
        version = await domain.service.generate(
            caller=ALICE, prompt="elsewhere", model="", request_id="", attachments=()
        )
        followers = _Followers(domain)
        with anyio.fail_after(10):  # the streams end at the terminal event
            async with anyio.create_task_group() as group:
                followers.start(group, version, count=3)
                await followers.until(lambda events: len(events) == 1)
                # Another Database writes, as another process would.
                await anyio.to_thread.run_sync(_run_elsewhere, database_url, version)
    for events in followers.received:
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert [e.state for e in events] == [
            VersionState.QUEUED,
            *[VersionState.RUNNING] * 3,
            VersionState.CANCELLED,
        ]
        assert events[3].message == "halfway"


@pytest.mark.anyio
@pytest.mark.postgres
async def test_events_that_another_replica_announces_reach_streams_before_any_poll(tmp_path: Path) -> None:
    check_backend("postgres")
    with fresh_database("postgres", tmp_path) as url:
        async with _domain(url, progress_poll_seconds=60.0) as domain, _running(domain, jobs=False):
            version = await domain.service.generate(
                caller=ALICE, prompt="elsewhere", model="", request_id="", attachments=()
            )
            stop_listening = follow_other_replicas(domain.db, domain.hub, domain.runner)
            followers = _Followers(domain)
            try:
                with anyio.fail_after(20):  # far under the poll's minute
                    async with anyio.create_task_group() as group:
                        followers.start(group, version, count=3)
                        await followers.until(lambda events: len(events) == 1)
                        # A process of its own: a replica ignores the notifications it sent itself.
                        await anyio.to_process.run_sync(_run_elsewhere, url, version)
            finally:
                await anyio.to_thread.run_sync(stop_listening)
    for events in followers.received:
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]


def _run_elsewhere(database_url: str, version: Version) -> None:
    """What another process's worker records for `version`, one transaction per event."""
    running, cancelled = storage.VersionState.RUNNING, storage.VersionState.CANCELLED
    steps = [
        functools.partial(storage.append_event, type=storage.EventType.STATE, state=running),
        functools.partial(
            storage.append_event, type=storage.EventType.STAGE_STARTED, stage=1, total_stages=2
        ),
        functools.partial(storage.append_event, type=storage.EventType.MESSAGE, message="halfway"),
        functools.partial(storage.append_event, type=storage.EventType.STATE, state=cancelled),
    ]
    db = storage.Database(database_url)
    try:
        with db.read() as tx:
            row = storage.get_version(
                tx, owner="alice", generation_id=version.generation_id, number=version.number
            )
        assert row is not None
        for step in steps:
            with db.write() as tx:
                step(tx, version=row)
    finally:
        db.dispose()


class _Drafter:
    """The scripted provider's `draft`, counted: each call is one model call. With `hold`, a call
    waits until `release` is set; with `fail_next`, the next call fails as a model would."""

    def __init__(self, domain: Domain, monkeypatch: pytest.MonkeyPatch, *, hold: bool = False) -> None:
        provider = domain.runner.providers.get("scripted")
        self.calls = 0
        self.hold = hold
        self.fail_next = False
        self.started = anyio.Event()
        self.release = anyio.Event()
        draft = provider.draft

        async def counted(request: DraftRequest, gate: ModelGate = OPEN_GATE) -> DraftAnswer:
            self.calls += 1
            self.started.set()
            if self.hold:
                await self.release.wait()
            if self.fail_next:
                self.fail_next = False
                raise ProviderError("the model is down", reason="MODEL_DOWN", code="UNAVAILABLE")
            return await draft(request, gate)

        monkeypatch.setattr(provider, "draft", counted)


async def _draft(
    domain: Domain, request_id: str, *, caller: Principal = ALICE, text: str = "a cat", context: str = ""
) -> Draft:
    return await domain.service.draft_prompt(
        caller=caller, text=text, context=context, model="", request_id=request_id
    )


@pytest.mark.anyio
async def test_a_draft_request_id_asks_the_model_once_and_refuses_another_input(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafter = _Drafter(domain, monkeypatch)
    first = await _draft(domain, "d-1")
    assert first.request_id == "d-1"
    assert await _draft(domain, "d-1") == first
    assert drafter.calls == 1
    for text, context in (("a dog", ""), ("a cat", "watercolour")):
        with pytest.raises(AlreadyExists) as refused:
            await _draft(domain, "d-1", text=text, context=context)
        assert (refused.value.reason, refused.value.metadata) == ("REQUEST_ID_REUSED", {"request_id": "d-1"})
    assert drafter.calls == 1
    # Another owner's request id is its own; a version's request id is another namespace.
    bobs = await _draft(domain, "d-1", caller=BOB)
    assert bobs.id != first.id and bobs.owner == "bob" and drafter.calls == 2
    await domain.service.generate(caller=ALICE, prompt="x", model="", request_id="d-1", attachments=())
    # Without a request id, each call drafts anew.
    await _draft(domain, "")
    await _draft(domain, "")
    assert drafter.calls == 4
    listed = await domain.service.list_drafts(caller=ALICE, before_id=None, limit=10)
    assert len(listed) == 3 and first in listed


@pytest.mark.anyio
async def test_concurrent_drafts_with_one_request_id_ask_the_model_once(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafter = _Drafter(domain, monkeypatch, hold=True)
    answers: list[Draft] = []
    async with anyio.create_task_group() as group:

        async def first() -> None:
            answers.append(await _draft(domain, "d-race"))

        group.start_soon(first)
        await drafter.started.wait()
        # The first call holds the request id while its model drafts: the second asks no model,
        # and is told to retry; nor does a reservation show as a draft.
        with pytest.raises(Unavailable) as busy:
            await _draft(domain, "d-race")
        assert busy.value.reason == "REQUEST_IN_PROGRESS"
        assert await domain.service.list_drafts(caller=ALICE, before_id=None, limit=10) == []
        drafter.release.set()
    assert await _draft(domain, "d-race") == answers[0]
    assert drafter.calls == 1


@pytest.mark.anyio
async def test_a_draft_that_failed_or_was_cancelled_frees_its_request_id(
    domain: Domain, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafter = _Drafter(domain, monkeypatch)
    drafter.fail_next = True
    with pytest.raises(Unavailable) as down:
        await _draft(domain, "d-2")
    assert down.value.reason == "MODEL_DOWN"
    # Nothing was drafted: the retry asks the model again, and stores the draft.
    draft = await _draft(domain, "d-2")
    assert drafter.calls == 2 and draft.prompt == "a cat"

    drafter.hold = True
    drafter.started = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(_draft, domain, "d-3")
        await drafter.started.wait()
        group.cancel_scope.cancel()
    drafter.hold = False
    assert (await _draft(domain, "d-3")).prompt == "a cat"
    assert drafter.calls == 4


@pytest.mark.anyio
async def test_an_abandoned_draft_reservation_is_taken_over_once_it_is_too_old(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def reserve(domain: Domain, request_id: str) -> storage.Draft:
        """What a server that stopped while its model drafted leaves behind."""
        model = domain.settings.resolved_default_model.name
        with domain.db.write() as tx:
            return storage.reserve_draft(
                tx,
                owner="alice",
                request_id=request_id,
                request_fingerprint=fingerprint_of("draft", "a cat", "", model),
                text="a cat",
                context="",
                model=model,
                drafter_model=model,
                provider="scripted",
            )

    async with _domain(database_url) as domain:
        drafter = _Drafter(domain, monkeypatch)
        await reserve(domain, "d-4")
        with pytest.raises(Unavailable) as busy:
            await _draft(domain, "d-4")
        assert busy.value.reason == "REQUEST_IN_PROGRESS" and drafter.calls == 0
    # A drafting call takes at most 0.05 s here: the reservation is abandoned by then.
    quick = {"provider_max_wait_seconds": 0.0, "provider_max_attempts": 1, "gemini_attempt_seconds": 0.05}
    async with _domain(database_url, **quick) as domain:
        drafter = _Drafter(domain, monkeypatch)
        abandoned = await reserve(domain, "d-5")
        await anyio.sleep(0.1)
        draft = await _draft(domain, "d-5")
        assert draft.id != abandoned.id and draft.prompt == "a cat" and drafter.calls == 1
        with pytest.raises(NotFound):
            await domain.service.get_draft(caller=ALICE, draft_id=abandoned.id)
