"""DeleteGeneration and UndeleteGeneration (AIP-135, AIP-164), the purge after expiry, and retention,
against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from google.rpc import error_details_pb2

import storage
from support.databases import fresh_database
from tests._support import Api, ServerProcess, error_details, script
from tests.integration.conftest import SERVER_ENV

WEEK = 7 * 24 * 3600


def _delete(api: Api, name: str) -> gen.Generation:
    generation: gen.Generation = api.stub.DeleteGeneration(
        pb.DeleteGenerationRequest(name=name), metadata=api.metadata, timeout=10
    )
    return generation


def _undelete(api: Api, name: str) -> gen.Generation:
    generation: gen.Generation = api.stub.UndeleteGeneration(
        pb.UndeleteGenerationRequest(name=name), metadata=api.metadata, timeout=10
    )
    return generation


def _tweak(api: Api, name: str, prompt: str) -> gen.Version:
    version: gen.Version = api.stub.Tweak(
        pb.TweakRequest(name=name, prompt=prompt), metadata=api.metadata, timeout=10
    )
    return version


def _listed(api: Api, *, show_deleted: bool = False) -> dict[str, gen.Generation]:
    response = api.stub.ListGenerations(
        pb.ListGenerationsRequest(page_size=1000, show_deleted=show_deleted), metadata=api.metadata
    )
    return {g.name: g for g in response.generations}


def _refused(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    info, _ = error_details(caught.value)
    return caught.value.code(), info.reason  # type: ignore[attr-defined]


def _until(condition: Callable[[], bool], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_deleted_generation_answers_not_found_everywhere_until_undeleted(alice: Api, bob: Api) -> None:
    v1 = alice.wait(alice.generate(script(files={"a.txt": "first"})).name)
    v2 = alice.wait(_tweak(alice, v1.name, script(files={"b.txt": "second"})).name)
    assert v2.state == gen.VERSION_STATE_COMPLETED
    name = v1.name.split("/versions/")[0]
    session = f"{name}/session"
    trees = {v.name: alice.export(v.name) for v in (v1, v2)}
    s, md = alice.stub, alice.metadata

    assert _refused(lambda: _delete(bob, name)) == (grpc.StatusCode.NOT_FOUND, "GENERATION_NOT_FOUND")
    deleted = _delete(alice, name)
    assert deleted.name == name and deleted.HasField("delete_time") and deleted.HasField("expire_time")
    kept_for = deleted.expire_time.ToDatetime() - deleted.delete_time.ToDatetime()
    assert kept_for.total_seconds() == pytest.approx(WEEK, abs=1)

    calls: dict[str, Callable[[], object]] = {
        "GetGeneration": lambda: s.GetGeneration(pb.GetGenerationRequest(name=name), metadata=md),
        "ListVersions": lambda: s.ListVersions(pb.ListVersionsRequest(parent=name), metadata=md),
        "GetVersion": lambda: alice.get(v1.name),
        "ListFiles": lambda: alice.list_files(v2.name),
        "ReadFile": lambda: alice.read_file(v2.name, "a.txt"),
        "ExportTree": lambda: alice.export(v2.name),
        "Progress": lambda: alice.progress(v1.name),
        "Diff": lambda: s.Diff(pb.DiffRequest(base=v1.name, target=v2.name), metadata=md),
        "GetSession": lambda: s.GetSession(pb.GetSessionRequest(name=session), metadata=md),
        "ListTurns": lambda: s.ListTurns(pb.ListTurnsRequest(parent=session), metadata=md),
        "Tweak": lambda: _tweak(alice, v2.name, "more"),
        "Iterate": lambda: s.Iterate(pb.IterateRequest(parent=v2.name, prompt="more"), metadata=md),
        "Regenerate": lambda: s.Regenerate(pb.RegenerateRequest(name=v1.name), metadata=md),
        "CancelVersion": lambda: s.CancelVersion(pb.CancelVersionRequest(name=v1.name), metadata=md),
        "DeleteGeneration": lambda: _delete(alice, name),
    }
    for method, call in calls.items():
        code, reason = _refused(call)
        assert code == grpc.StatusCode.NOT_FOUND, method
        assert reason in {"GENERATION_NOT_FOUND", "VERSION_NOT_FOUND", "SESSION_NOT_FOUND"}, method
    assert name not in _listed(alice)
    assert _listed(alice, show_deleted=True)[name].delete_time == deleted.delete_time

    assert _refused(lambda: _undelete(bob, name)) == (grpc.StatusCode.NOT_FOUND, "GENERATION_NOT_FOUND")
    restored = _undelete(alice, name)
    assert not restored.HasField("delete_time") and not restored.HasField("expire_time")
    assert {v: alice.export(v) for v in trees} == trees
    assert alice.get(v2.name).state == gen.VERSION_STATE_COMPLETED
    assert name in _listed(alice)
    assert _refused(lambda: _undelete(alice, name)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "GENERATION_NOT_DELETED",
    )


def test_delete_and_undelete_refuse_a_malformed_name(alice: Api) -> None:
    for call in (_delete, _undelete):
        code, reason = _refused(lambda call=call: call(alice, "generations/Not A Name"))  # type: ignore[misc]
        assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_NAME")


def test_deleting_a_generation_cancels_its_running_and_queued_jobs(alice: Api) -> None:
    v1 = alice.wait(alice.generate(script(files={"a.txt": "first"})).name)
    name = v1.name.split("/versions/")[0]
    running = _tweak(alice, v1.name, script(stages=1, delay=60))
    _until(lambda: alice.get(running.name).state == gen.VERSION_STATE_RUNNING)
    # The session runs one job at a time: this one waits for the running one.
    queued = _tweak(alice, v1.name, script(files={"c.txt": "never"}))
    assert alice.get(queued.name).state == gen.VERSION_STATE_QUEUED
    started = time.monotonic()
    _delete(alice, name)
    _undelete(alice, name)
    _until(lambda: alice.get(running.name).state == gen.VERSION_STATE_CANCELLED, seconds=10)
    assert time.monotonic() - started < 10, "the running job stopped long before its minute of work"
    cancelled = alice.get(queued.name)
    assert cancelled.state == gen.VERSION_STATE_CANCELLED
    assert _error_reason(cancelled) == "GENERATION_DELETED"
    assert alice.get(v1.name).state == gen.VERSION_STATE_COMPLETED


def _error_reason(version: gen.Version) -> str:
    info = error_details_pb2.ErrorInfo()
    assert version.error.details and version.error.details[0].Unpack(info)
    return str(info.reason)


@pytest.fixture
def collecting_server(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ServerProcess]:
    """A server whose garbage collector runs every 0.2 s, with the settings the test asks for."""
    extra: dict[str, str] = request.param
    with fresh_database(backend, tmp_path) as url:
        process = ServerProcess(
            database_url=url,
            log_path=tmp_path / "server.log",
            env={**SERVER_ENV, "ATELIER_GC_INTERVAL_SECONDS": "0.2", **extra},
        ).start()
        try:
            yield process
        finally:
            process.kill()


def _stored(url: str, query: str, **params: object) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "collecting_server",
    [{"ATELIER_DELETED_RETENTION_SECONDS": "1", "ATELIER_GC_GRACE_SECONDS": "0"}],
    indirect=True,
)
def test_an_expired_generation_is_purged_with_the_blobs_only_it_used(
    collecting_server: ServerProcess,
) -> None:
    with collecting_server.channel() as channel:
        alice = Api(channel, "alice-token")
        doomed = alice.wait(alice.generate(script(files={"shared.txt": "shared", "own.txt": "its own"})).name)
        kept = alice.wait(alice.generate(script(files={"shared.txt": "shared"})).name)
        name = doomed.name.split("/versions/")[0]
        generation_id = name.removeprefix("generations/")
        url = collecting_server.database_url
        _delete(alice, name)
        _until(lambda: not _stored(url, "SELECT id FROM generation WHERE id = :g", g=generation_id))
        for table in ("version", "session"):
            assert not _stored(url, f"SELECT id FROM {table} WHERE generation_id = :g", g=generation_id)
        assert _refused(lambda: _undelete(alice, name)) == (grpc.StatusCode.NOT_FOUND, "GENERATION_NOT_FOUND")
        own, shared = storage.sha256_hex(b"its own"), storage.sha256_hex(b"shared")
        _until(lambda: own not in _stored(url, "SELECT sha256 FROM blob"))
        assert shared in _stored(url, "SELECT sha256 FROM blob")
        assert alice.export(kept.name) == {"shared.txt": b"shared"}
    assert "Traceback" not in collecting_server.log()


@pytest.mark.parametrize("collecting_server", [{"ATELIER_RETENTION_SECONDS": "2"}], indirect=True)
def test_retention_deletes_generations_not_updated_for_its_period(collecting_server: ServerProcess) -> None:
    with collecting_server.channel() as channel:
        alice = Api(channel, "alice-token")
        old = alice.wait(alice.generate(script(files={"a.txt": "old"})).name)
        name = old.name.split("/versions/")[0]
        _until(lambda: name not in _listed(alice))
        assert _refused(lambda: alice.get(old.name)) == (grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND")
        fresh = alice.generate(script(files={"b.txt": "new"}))
        assert alice.wait(fresh.name).state == gen.VERSION_STATE_COMPLETED
        deleted = _listed(alice, show_deleted=True)[name]
        kept_for = deleted.expire_time.ToDatetime() - deleted.delete_time.ToDatetime()
        assert kept_for.total_seconds() == pytest.approx(WEEK, abs=1)
        # Undeleting counts as an update: the generation has a whole period again.
        _undelete(alice, name)
        time.sleep(0.5)
        assert alice.export(old.name) == {"a.txt": b"old"}
