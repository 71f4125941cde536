"""Several server processes on one PostgreSQL database: any replica serves any call, and work
and live events cross replicas through LISTEN/NOTIFY, not by waiting for a poll."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from atelier.v1 import generation_pb2 as gen

from support.databases import fresh_database
from tests._support import Api, ServerProcess, script
from tests.conftest import check_backend
from tests.integration.conftest import SERVER_ENV


@pytest.mark.postgres
def test_a_job_queued_on_one_replica_runs_on_another_and_its_events_stream_live(tmp_path: Path) -> None:
    check_backend("postgres")
    # Polls so slow that only notifications can make this test finish in time.
    slow_polls = {**SERVER_ENV, "ATELIER_PROGRESS_POLL_SECONDS": "60"}
    with fresh_database("postgres", tmp_path) as url:
        worker = ServerProcess(database_url=url, log_path=tmp_path / "worker.log", env=slow_polls).start()
        front = ServerProcess(
            database_url=url,
            log_path=tmp_path / "front.log",
            env={**slow_polls, "ATELIER_MAX_IN_FLIGHT": "0"},
        ).start()
        try:
            time.sleep(1.0)  # both are idle, waiting on their (slow) polls
            with front.channel() as channel:
                api = Api(channel, "alice-token")
                started = time.monotonic()
                name = api.generate(script(stages=3, delay=0.3)).name
                events = api.progress(name, timeout=30)
                elapsed = time.monotonic() - started
                version = api.get(name)
        finally:
            front.kill()
            worker.kill()
    assert version.state == gen.VERSION_STATE_COMPLETED
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert elapsed < 15, f"took {elapsed:.1f} s: the replicas did not notify each other"
