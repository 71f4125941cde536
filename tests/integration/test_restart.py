"""Crashes and restarts: no job stays RUNNING, whatever happens to the server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, ServerProcess, fresh_database, script
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
