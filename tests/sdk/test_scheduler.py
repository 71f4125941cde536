"""What the scheduler reports, as the SDK's typed fields: a queued version's place and ETA, the
QUEUED events, the ledger, and each model's limits and live state.

Jobs on the model `one-at-a-time` (max_concurrent = 1) run one after another, so the later ones
queue. The server looks at the queue about once per poll (0.5 s here), after a job waited a second.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from atelier import (
    AtelierClient,
    Ledger,
    ModelStatus,
    ModelUsage,
    ProgressEventType,
    VersionState,
)

from tests._client_support import queueing_server
from tests._support import ServerProcess, script

_USAGE = {"input_tokens": 120, "output_tokens": 45, "thinking_tokens": 7}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with queueing_server(tmp_path_factory.mktemp("sdk-queueing-server")) as process:
        yield process


def _one_at_a_time(client: AtelierClient, count: int, delay: float) -> list[str]:
    return [
        client.generate(
            script(stages=1, delay=delay, files={f"{i}.txt": "x"}, usage=_USAGE), model="one-at-a-time"
        ).name
        for i in range(count)
    ]


def test_a_queued_version_knows_its_place_and_its_events_count_down(client: AtelierClient) -> None:
    names = _one_at_a_time(client, 5, 0.8)
    last = names[-1]
    time.sleep(1.8)  # the last job has waited over a second, and the queue was looked at since
    queued = client.get(last)
    models = {model.name: model for model in client.models()}
    events = list(client.progress(last))
    done = client.get(last)

    assert queued.state == VersionState.QUEUED and queued.queue_position >= 1, queued
    limited = models["one-at-a-time"]
    assert limited.status.jobs_in_flight == 1 and limited.status.jobs_queued >= 1, limited.status

    places = [e for e in events if e.type == ProgressEventType.QUEUED]
    positions = [e.queue_position for e in places]
    assert len(positions) >= 2 and positions == sorted(positions, reverse=True), positions
    assert len(set(positions)) == len(positions) and min(positions) >= 1, positions
    # Once the model has run times, a queued version also knows when it should start and end.
    estimated = [e for e in places if e.estimated_start_time is not None]
    assert estimated, "no QUEUED event carried an estimated start"
    for event in estimated:
        assert event.estimated_start_time is not None and event.estimated_start_time.tzinfo is not None
        assert event.estimated_complete_time is not None
        assert event.estimated_complete_time >= event.estimated_start_time
    assert all(e.queue_position == 0 for e in events if e.type != ProgressEventType.QUEUED)

    assert done.state == VersionState.COMPLETED
    assert (done.queue_position, done.estimated_start_time, done.estimated_complete_time) == (0, None, None)
    assert done.ledger.attempts == 1
    assert done.ledger.queue_time >= timedelta(seconds=1.5), done.ledger  # four jobs ran before it


def test_the_ledger_holds_times_attempts_and_the_model_s_usage(client: AtelierClient) -> None:
    version = client.wait(
        client.generate(script(stages=1, delay=0.3, usage=_USAGE), model="scripted").name, timeout=60
    )
    ledger = version.ledger
    assert isinstance(ledger, Ledger)
    assert ledger.usage == (ModelUsage(input_tokens=120, output_tokens=45, thinking_tokens=7),)
    assert ledger.total_usage == ModelUsage(input_tokens=120, output_tokens=45, thinking_tokens=7)
    assert ledger.attempts == 1
    assert ledger.run_time >= timedelta(seconds=0.3)
    assert timedelta(0) <= ledger.queue_time < timedelta(seconds=30)
    assert ledger.cooldown_time == timedelta(0)


def test_models_show_their_limits_and_a_cooldown(client: AtelierClient) -> None:
    models = {model.name: model for model in client.models()}
    limited, unlimited = models["one-at-a-time"], models["scripted"]
    assert (limited.max_concurrent, limited.requests_per_minute, limited.tokens_per_minute) == (
        1,
        600,
        250000,
    )
    # 0 on the wire: no limit of its own.
    assert (unlimited.max_concurrent, unlimited.requests_per_minute, unlimited.tokens_per_minute) == (
        None,
        None,
        None,
    )
    assert unlimited.status == ModelStatus(jobs_in_flight=0, jobs_queued=0, cooldown_until=None)

    storm_ends = time.time() + 2.0
    names = [
        client.generate(
            script(stages=1, quota_storm_until=storm_ends, retry_after=0.5, files={f"{i}.txt": "x"}),
            model="scripted",
        ).name
        for i in range(3)
    ]
    # Cooldowns of 0.5 s follow each other while the storm lasts, with a probe between two: one
    # look can fall between them, so look until one is seen (or the storm is over).
    shown: list[ModelStatus] = []
    while not shown and time.time() < storm_ends:
        asked = datetime.now(UTC)
        status = next(model for model in client.models() if model.name == "scripted").status
        if status.cooldown_until is not None and status.cooldown_until > asked - timedelta(seconds=1):
            shown.append(status)
        time.sleep(0.1)
    versions = [client.wait(name, timeout=60) for name in names]

    assert shown, "ListModels never showed the model cooling down during the storm"
    assert all(v.state == VersionState.COMPLETED for v in versions)
    assert max(v.ledger.cooldown_time for v in versions) > timedelta(seconds=0.3)
    assert all(v.ledger.attempts == 1 for v in versions), "waiting out a cooldown spends no attempt"
