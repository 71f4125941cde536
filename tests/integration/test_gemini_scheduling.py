"""The scheduler on the Gemini path: the real server, the real google-genai client, and a local fake
of Gemini that counts the requests it holds. Limits and storms are measured where they matter:
at the model.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen

from support.databases import fresh_database
from support.gemini_fake import USAGE, FakeGemini
from tests._support import Api, ServerProcess
from tests.conftest import BACKENDS, check_backend

LIMITED = "gemini-2.5-flash"
FREE = "gemini-2.5-flash-lite"
TOKEN_LIMITED = "gemini-2.5-pro"
# 24 input tokens a second.
_TOKENS_PER_MINUTE = 1440
_CONFIG = f"""
provider = "gemini"

[[models]]
name = "{LIMITED}"
provider = "gemini"
max_concurrent = 5

[[models]]
name = "{FREE}"
provider = "gemini"

[[models]]
name = "{TOKEN_LIMITED}"
provider = "gemini"
tokens_per_minute = {_TOKENS_PER_MINUTE}
"""


def _env(fake: FakeGemini, tmp: Path) -> dict[str, str]:
    config = tmp / "atelier.toml"
    config.write_text(_CONFIG)
    return {
        "ATELIER_CONFIG": str(config),
        "GEMINI_API_KEY": "test-key",
        "ATELIER_GEMINI_BASE_URL": fake.base_url,
        "ATELIER_TOKENS": "alice-token:alice,bob-token:bob",
        "ATELIER_JOB_LEASE_SECONDS": "5",
        "ATELIER_JOB_HEARTBEAT_SECONDS": "0.5",
        "ATELIER_PROGRESS_POLL_SECONDS": "0.5",
    }


@pytest.fixture(params=BACKENDS)
def gemini(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, FakeGemini]]:
    backend = check_backend(request.param)
    with FakeGemini() as fake, fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=_env(fake, tmp_path))
        server.start()
        try:
            yield server, fake
        finally:
            server.kill()


def _run_all(
    api: Api, count: int, model: str, *, padding: str = "", timeout: float = 120
) -> list[gen.Version]:
    prompts = [f"a tiny python package number {index}{padding}" for index in range(count)]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        names = list(pool.map(lambda prompt: api.generate(prompt, model=model).name, prompts))
        return list(pool.map(lambda name: api.wait(name, timeout=timeout), names))


def _completed(versions: Sequence[gen.Version]) -> None:
    failed = [v.error.message for v in versions if v.state != gen.VERSION_STATE_COMPLETED]
    assert not failed, failed[:3]


def test_a_hundred_jobs_have_their_requests_at_the_model_at_once(
    gemini: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini
    # Long enough that every request is out before the first answer, on a busy 2-core machine.
    fake.latency_seconds = 4.0
    with server.channel() as channel:
        versions = _run_all(Api(channel, "alice-token"), 100, FREE)
    _completed(versions)
    assert fake.peak_in_flight >= 90, f"only {fake.peak_in_flight} requests were at the model at once"


def test_a_models_limit_of_five_holds_at_the_model(gemini: tuple[ServerProcess, FakeGemini]) -> None:
    server, fake = gemini
    fake.latency_seconds = 0.4
    with server.channel() as channel:
        versions = _run_all(Api(channel, "alice-token"), 20, LIMITED)
    _completed(versions)
    assert fake.peak_in_flight == 5
    assert fake.requests_per_model[LIMITED] == 20


def test_a_models_tokens_per_minute_space_its_requests_at_the_model(
    gemini: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini
    # Each prompt alone is estimated (4 bytes a token) above the whole budget of 1440: a request
    # goes only with the bucket full, and takes it below zero. The fake counts 12 input tokens
    # (USAGE), which corrects the debt to 12: the next request goes half a second later, not
    # the minute and more its estimate would have cost.
    padding = ", with a long description" + "." * 8000
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        versions = _run_all(api, 5, TOKEN_LIMITED, padding=padding, timeout=30)
        listed = {
            m.name: m for m in api.stub.ListModels(pb.ListModelsRequest(), metadata=api.metadata).models
        }
    _completed(versions)
    assert (listed[TOKEN_LIMITED].tokens_per_minute, listed[FREE].tokens_per_minute) == (
        _TOKENS_PER_MINUTE,
        0,
    )
    assert fake.requests_per_model[TOKEN_LIMITED] == 5
    times = sorted(r.received_at for r in fake.requests if r.model == TOKEN_LIMITED)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    half_a_second = USAGE["promptTokenCount"] * 60 / _TOKENS_PER_MINUTE
    # The budget spaces the takes; the fake sees them after each request's own way there, which
    # varies by a few hundred ms on a busy machine (the first request also opens a connection).
    # So the spacing is judged over the four gaps together, each may be off by that much.
    assert 4 * half_a_second * 0.8 <= times[-1] - times[0] < 10, gaps
    assert min(gaps) >= half_a_second * 0.3, gaps


def test_a_quota_storm_with_retry_info_is_waited_out_and_every_job_completes(
    gemini: tuple[ServerProcess, FakeGemini],
) -> None:
    server, fake = gemini
    fake.storm(time.monotonic() + 3.0, retry_delay_seconds=1.0)
    with server.channel() as channel:
        versions = _run_all(Api(channel, "alice-token"), 20, FREE)
    _completed(versions)
    # The first requests meet the storm; after that only probes go out until it ends.
    assert fake.storm_refusals <= 30, f"{fake.storm_refusals} requests hit the model during the storm"
    assert max(v.ledger.cooldown_duration.ToTimedelta().total_seconds() for v in versions) >= 1.0
    assert all(v.ledger.attempts == 1 for v in versions), "waiting out a storm spends no attempt"


def test_the_ledger_has_the_models_usage_for_each_request(gemini: tuple[ServerProcess, FakeGemini]) -> None:
    server, fake = gemini
    fake.latency_seconds = 0.3
    with server.channel() as channel:
        api = Api(channel, "alice-token")
        version = api.wait(api.generate("a tiny python package", model=FREE).name)
    assert version.state == gen.VERSION_STATE_COMPLETED, version.error.message
    ledger = version.ledger
    assert ledger.attempts == 1 and len(ledger.usage) == 1
    usage = ledger.usage[0]
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert ledger.run_duration.ToTimedelta().total_seconds() >= 0.3
    assert ledger.cooldown_duration.ToTimedelta().total_seconds() == 0


@pytest.mark.postgres
def test_a_models_limit_holds_at_the_model_across_two_replicas(tmp_path: Path) -> None:
    check_backend("postgres")
    with FakeGemini(latency_seconds=0.4) as fake, fresh_database("postgres", tmp_path) as url:
        env = _env(fake, tmp_path)
        replicas = [
            ServerProcess(database_url=url, log_path=tmp_path / f"replica{n}.log", env=env).start()
            for n in (1, 2)
        ]
        try:
            with (
                replicas[0].channel() as one,
                replicas[1].channel() as two,
                concurrent.futures.ThreadPoolExecutor(2) as pool,
            ):
                runs = [
                    pool.submit(_run_all, Api(channel, token), 12, LIMITED)
                    for channel, token in ((one, "alice-token"), (two, "bob-token"))
                ]
                versions = [v for run in runs for v in run.result()]
        finally:
            for replica in replicas:
                replica.kill()
    _completed(versions)
    assert fake.peak_in_flight == 5
