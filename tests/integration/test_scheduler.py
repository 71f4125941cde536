"""The scheduler: jobs run at once up to what their model allows, across replicas; callers take
turns; a quota storm is waited out; queued versions know where they stand; the ledger is kept.

The scripted provider plays the model here (server/providers/scripted.py): its jobs make one
request through the runner's model gate, then sleep through their stages. Concurrency is read
from the jobs' own events: each job runs from its RUNNING event to its terminal one.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from atelier.v1 import progress_pb2

from support.databases import fresh_database
from tests._support import Api, ServerProcess, script
from tests.conftest import BACKENDS, check_backend
from tests.integration.conftest import SERVER_ENV

_CONFIG = """
provider = "scripted"

[[models]]
name = "scripted"
provider = "scripted"

[[models]]
name = "five-at-a-time"
provider = "scripted"
max_concurrent = 5

[[models]]
name = "two-at-a-time"
provider = "scripted"
max_concurrent = 2

[[models]]
name = "one-at-a-time"
provider = "scripted"
max_concurrent = 1
"""


def _env(tmp: Path) -> dict[str, str]:
    config = tmp / "atelier.toml"
    config.write_text(_CONFIG)
    return {**SERVER_ENV, "ATELIER_CONFIG": str(config)}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    backend = check_backend(request.param)
    tmp = tmp_path_factory.mktemp(f"scheduler-{backend}")
    with fresh_database(backend, tmp) as url:
        process = ServerProcess(database_url=url, log_path=tmp / "server.log", env=_env(tmp)).start()
        try:
            yield process
        finally:
            process.kill()


def _generate_many(api: Api, prompts: Sequence[str], model: str) -> list[str]:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda prompt: api.generate(prompt, model=model).name, prompts))


def _follow_all(api: Api, names: Sequence[str]) -> dict[str, list[progress_pb2.ProgressEvent]]:
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        return dict(zip(names, pool.map(lambda name: api.progress(name, timeout=120), names), strict=True))


def _run_interval(events: Sequence[progress_pb2.ProgressEvent]) -> tuple[datetime, datetime]:
    """From the job's (last) RUNNING event to its terminal event."""
    running = [
        e
        for e in events
        if e.type == progress_pb2.PROGRESS_EVENT_TYPE_STATE and e.state == gen.VERSION_STATE_RUNNING
    ]
    assert running and events[-1].state == gen.VERSION_STATE_COMPLETED, [e.message for e in events]
    return running[-1].create_time.ToDatetime(), events[-1].create_time.ToDatetime()


def _most_at_once(intervals: Sequence[tuple[datetime, datetime]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in edges:  # an end sorts before a start at the same instant
        now += step
        most = max(most, now)
    return most


def test_a_hundred_jobs_that_wait_on_their_model_run_at_once(server: ServerProcess) -> None:
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        # Each job waits 4 s: longer than the 100 calls and the claims (8 jobs at a time) take
        # to start them all, even on PostgreSQL on a machine busy with the rest of the suite.
        names = _generate_many(
            api, [script(stages=1, delay=4.0, files={f"{i}.txt": "x"}) for i in range(100)], "scripted"
        )
        followed = _follow_all(api, names)
    intervals = [_run_interval(events) for events in followed.values()]
    assert _most_at_once(intervals) >= 90, "jobs waiting on a model must not queue behind a worker count"


def test_a_models_limit_holds(server: ServerProcess) -> None:
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        names = _generate_many(
            api, [script(stages=1, delay=0.3, files={f"{i}.txt": "x"}) for i in range(20)], "five-at-a-time"
        )
        followed = _follow_all(api, names)
        listed = api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata)
    most = _most_at_once([_run_interval(events) for events in followed.values()])
    assert most == 5, f"{most} jobs of a model limited to 5 ran at once"
    limited = next(model for model in listed.models if model.name == "five-at-a-time")
    assert (limited.max_concurrent, limited.status.jobs_in_flight, limited.status.jobs_queued) == (5, 0, 0)


def test_one_caller_cannot_starve_another(server: ServerProcess) -> None:
    with server.channel() as channel:
        alice, bob = Api(channel, "alice-token"), Api(channel, "bob-token")
        burst = _generate_many(
            alice, [script(stages=1, delay=0.4, files={f"{i}.txt": "x"}) for i in range(24)], "two-at-a-time"
        )
        time.sleep(0.5)  # alice's jobs fill both slots; the rest queue
        mine = bob.generate(script(stages=1, delay=0.4), model="two-at-a-time").name
        bobs = bob.progress(mine, timeout=120)
        alices = _follow_all(alice, burst)
    bob_started = _run_interval(bobs)[0]
    ahead = [name for name, events in alices.items() if bob_started > _run_interval(events)[0]]
    # Bob's job takes one of the next free slots: the jobs of Alice's that run when Bob asks, and
    # one that starts in the same claim, go before it; not the twenty queued before Bob asked.
    assert len(ahead) <= 6, f"{len(ahead)} of alice's 24 jobs started before bob's one job"


def test_a_queued_version_sees_its_place_fall_as_the_jobs_ahead_end(server: ServerProcess) -> None:
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        # One after the other, so that the last one asked for is the last in line.
        for index in range(6):
            last = api.generate(
                script(stages=1, delay=0.7, files={f"{index}.txt": "x"}), model="one-at-a-time"
            ).name
        time.sleep(1.6)  # the queue is looked at about every poll (0.5 s here), after a second of waiting
        queued = api.get(last)
        events = api.progress(last, timeout=60)
    assert queued.state == gen.VERSION_STATE_QUEUED and queued.queue_position >= 2
    positions = [e.queue_position for e in events if e.type == progress_pb2.PROGRESS_EVENT_TYPE_QUEUED]
    assert len(positions) >= 2 and positions == sorted(positions, reverse=True), positions
    assert len(set(positions)) == len(positions), "a position is reported once"
    assert positions[-1] <= 2 and all(p > 0 for p in positions)
    assert all("Waiting for one-at-a-time" in e.message for e in events if e.queue_position)
    # Once the model has run times, a queued version also knows when it should start.
    assert any(e.HasField("estimated_start_time") for e in events if e.queue_position)
    assert events[-1].state == gen.VERSION_STATE_COMPLETED


def test_a_quota_storm_is_waited_out_and_every_job_completes(server: ServerProcess) -> None:
    storm_ends = time.time() + 3.0
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        prompts = [
            script(stages=1, quota_storm_until=storm_ends, retry_after=0.5, files={f"{i}.txt": "x"})
            for i in range(20)
        ]
        names = _generate_many(api, prompts, "scripted")
        # The model cools down for 0.5 s after each 429, so a single look can fall between two
        # cooldowns: look until the storm is over.
        cooling = False
        while not cooling and time.time() < storm_ends:
            during = api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata)
            model = next(m for m in during.models if m.name == "scripted")
            cooling = model.status.HasField("cooldown_end_time")
            time.sleep(0.05)
        followed = _follow_all(api, names)
        versions = [api.get(name) for name in names]
    assert all(v.state == gen.VERSION_STATE_COMPLETED for v in versions)
    assert cooling, "the model cools down during the storm"
    waited = [v.ledger.cooldown_duration.ToTimedelta().total_seconds() for v in versions]
    assert max(waited) > 0.3, "jobs waited out the cooldown instead of failing"
    assert all(v.ledger.attempts == 1 for v in versions), "waiting spends no attempt"
    assert all(followed[name][-1].state == gen.VERSION_STATE_COMPLETED for name in names)


def test_the_ledger_records_times_attempts_and_usage(server: ServerProcess) -> None:
    usage = {"input_tokens": 120, "output_tokens": 45, "thinking_tokens": 7}
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        version = api.wait(api.generate(script(stages=1, delay=0.2, usage=usage), model="scripted").name)
    ledger = version.ledger
    assert ledger.attempts == 1
    assert ledger.run_duration.ToTimedelta().total_seconds() >= 0.2
    assert ledger.queue_duration.ToTimedelta().total_seconds() >= 0
    assert [(u.input_tokens, u.output_tokens, u.thinking_tokens) for u in ledger.usage] == [(120, 45, 7)]


def test_a_models_limit_holds_across_two_replicas(tmp_path: Path) -> None:
    check_backend("postgres")
    env = _env(tmp_path)
    with fresh_database("postgres", tmp_path) as url:
        one = ServerProcess(database_url=url, log_path=tmp_path / "one.log", env=env).start()
        two = ServerProcess(database_url=url, log_path=tmp_path / "two.log", env=env).start()
        try:
            with one.channel() as first, two.channel() as second:
                apis = [Api(first, "alice-token"), Api(second, "bob-token")]
                names = {
                    api: _generate_many(
                        api,
                        [script(stages=1, delay=0.3, files={f"{i}.txt": "x"}) for i in range(12)],
                        "five-at-a-time",
                    )
                    for api in apis
                }
                intervals = [
                    _run_interval(events) for api in apis for events in _follow_all(api, names[api]).values()
                ]
        finally:
            one.kill()
            two.kill()
    assert _most_at_once(intervals) == 5


def test_a_models_limit_below_one_is_refused_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[models]]\nname = "m"\nprovider = "scripted"\nmax_concurrent = 0\n')
    with fresh_database("sqlite", tmp_path) as url:
        process = ServerProcess(
            database_url=url, log_path=tmp_path / "bad.log", env={**SERVER_ENV, "ATELIER_CONFIG": str(config)}
        )
        with pytest.raises(RuntimeError, match="max_concurrent must be a whole number above 0"):
            process.start()


def test_operators_see_the_scheduler_in_prometheus_metrics(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "ATELIER_METRICS_LISTEN": "127.0.0.1:0"}
    with fresh_database("sqlite", tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "metrics.log", env=env).start()
        try:
            with server.channel() as channel:
                api = Api(channel, "alice-token")
                done = api.wait(api.generate(script(stages=1), model="five-at-a-time").name)
                time.sleep(1.2)  # the queue's gauges are read about once per poll
            address = re.search(r"metrics on (http://\S+/metrics)", server.log())
            assert address is not None, server.log()
            text = urllib.request.urlopen(address.group(1), timeout=10).read().decode()
        finally:
            server.kill()
    assert done.state == gen.VERSION_STATE_COMPLETED
    assert re.search(r'^atelier_job_run_seconds_count\{model="five-at-a-time"\} 1\.0$', text, re.M), text
    assert re.search(r'^atelier_jobs_in_flight\{model="five-at-a-time"\} 0\.0$', text, re.M)
    assert re.search(r'^atelier_queue_depth\{model="five-at-a-time"\} 0\.0$', text, re.M)
    assert "atelier_event_loop_lag_seconds_bucket" in text and "atelier_model_refusals" in text
