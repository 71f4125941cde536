"""Crashes and restarts: no job stays RUNNING, whatever happens to the server."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

import storage
from support.databases import fresh_database
from tests._support import Api, ServerProcess, script
from tests.conftest import check_backend
from tests.integration.conftest import SERVER_ENV


def _wait_running(api: Api, name: str) -> None:
    deadline = time.monotonic() + 15
    while api.get(name).state != gen.VERSION_STATE_RUNNING:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_job_running_when_the_server_is_killed_finishes_after_restart(backend: str, tmp_path: Path) -> None:
    check_backend(backend)
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=SERVER_ENV).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                name = api.generate(script(stages=2, delay=0.7)).name
                _wait_running(api, name)
            server.kill()  # no shutdown, no cleanup: its lease simply stops being renewed

            server.start()
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                events = api.progress(name, timeout=60)
                version = api.get(name)
        finally:
            server.kill()
    assert version.state == gen.VERSION_STATE_COMPLETED
    assert any("Requeued" in e.message for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_a_job_that_keeps_losing_its_worker_fails_with_a_reason(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        env = {**SERVER_ENV, "ATELIER_JOB_MAX_ATTEMPTS": "1"}
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                name = api.generate(script(stages=2, delay=5)).name
                _wait_running(api, name)
            server.kill()
            server.start()
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                api.progress(name, timeout=60)
                version = api.get(name)
        finally:
            server.kill()
    assert version.state == gen.VERSION_STATE_FAILED
    assert "worker" in version.error.message


def test_sigterm_requeues_a_running_job_and_the_next_server_finishes_it(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        env = {**SERVER_ENV, "ATELIER_SHUTDOWN_GRACE_SECONDS": "0.5"}
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                name = api.generate(script(stages=2, delay=3)).name
                _wait_running(api, name)
            assert server.terminate() == 0
            assert "received SIGTERM" in server.log() and "Atelier stopped" in server.log()

            server.start()
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                events = api.progress(name, timeout=60)
                version = api.get(name)
        finally:
            server.kill()
    assert version.state == gen.VERSION_STATE_COMPLETED
    assert any(e.message == "Requeued: the server is shutting down" for e in events)


def test_a_job_that_cannot_be_prepared_fails_with_a_reason_and_blocks_no_other(tmp_path: Path) -> None:
    # A stored turn that refers to a blob the database no longer has: the tweak's job cannot
    # be prepared. It must fail with a reason, not stay first in the queue for ever.
    with fresh_database("sqlite", tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=SERVER_ENV).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                v1 = api.wait(api.generate("a tiny CLI", model="offline").name)
            server.kill()  # the next server has nothing of v1's conversation in memory
            db = storage.Database(url)
            with db.write() as session:
                session.execute(
                    sa.update(storage.Turn).values(parts=[{"blob": "0" * 64, "mime_type": "x/y"}])
                )
            db.dispose()

            server.start()
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                request = pb.TweakRequest(name=v1.name, prompt="add file notes.md")
                tweak = api.stub.Tweak(request, metadata=api.metadata, timeout=10)
                failed = api.wait(tweak.name)
                after = api.wait(api.generate("another CLI", model="offline").name)
        finally:
            server.kill()
    assert failed.state == gen.VERSION_STATE_FAILED
    assert failed.error.code == grpc.StatusCode.INTERNAL.value[0]
    assert "could not be started" in failed.error.message
    assert after.state == gen.VERSION_STATE_COMPLETED


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_restarted_server_takes_back_its_own_jobs_at_once(backend: str, tmp_path: Path) -> None:
    """Its previous process is gone, so its jobs need not wait for their leases (60 s here) to expire."""
    check_backend(backend)
    env = {**SERVER_ENV, "ATELIER_JOB_LEASE_SECONDS": "60", "ATELIER_JOB_HEARTBEAT_SECONDS": "1"}
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                name = api.generate(script(stages=1, delay=1.0)).name
                _wait_running(api, name)
            server.kill()
            restarted = time.monotonic()
            server.start()
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                events = api.progress(name, timeout=50)
                took = time.monotonic() - restarted
                version = api.get(name)
        finally:
            server.kill()
    assert version.state == gen.VERSION_STATE_COMPLETED
    assert any("Requeued" in e.message for e in events)
    # Waiting for the lease would take 60 s; taking the job back takes the start and one run.
    assert took < 30, f"the restarted server waited {took:.0f} s for its own job"
