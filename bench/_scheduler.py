"""Jobs that wait on models: the scheduler's rows of `make bench`.

Each row starts its own server on a fresh SQLite database, with the gemini provider pointed at a
fake Gemini (support/gemini_fake/) that runs in this process, on its own thread; the callers run
in a client process of their own (bench/_scheduler_load.py). What the fake sees (model calls in
flight, refusals) is read here, and so are the server's memory and metrics; the figures are
judged and printed by bench/_scheduler_report.py.

- many jobs in flight: 1,000 jobs at once, default settings, the fake answering after 10 s;
- fairness: one principal queues 1,000 jobs on a model limited to 20 calls of 1 s, then another
  principal submits one;
- quota storm: 100 jobs while the fake answers 429 (retryDelay 1 s) for 6 s;
- idle streams: 1,000 Progress streams on queued jobs (bench/_idle.py).
"""

from __future__ import annotations

import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench._child import run_in_child
from bench._idle import IdleFigures, measure_idle
from bench._load import process_cpu_seconds, process_rss_mib, rss_mib
from bench._scheduler_load import FairnessRun, JobsRun, fairness_load, jobs_at_once_load
from bench._servers import atelier_server
from support.gemini_fake import FakeGemini
from support.processes import child_pids

MANY_JOBS = 1000
MANY_JOBS_LATENCY = 10.0
FAIRNESS_JOBS = 1000
FAIRNESS_LIMIT = 20
FAIRNESS_LATENCY = 1.0
STORM_JOBS = 100
STORM_SECONDS = 6.0
STORM_RETRY_DELAY = 1.0
# How fast the model answers once the storm is over.
STORM_LATENCY = 1.0
IDLE_STREAMS = 1000

_MODEL = "gemini-2.5-flash"
_API_KEY = "bench-key"
_FIRST_TOKEN, _SECOND_TOKEN = "bench-alice", "bench-bob"
_FAIRNESS_CONFIG = f"""
provider = "gemini"

[[models]]
name = "{_MODEL}"
provider = "gemini"
max_concurrent = {FAIRNESS_LIMIT}
"""
# A spawned client process is up and connected well within this; the storm starts with its calls.
_CLIENT_START_SECONDS = 3.0
# A child's time limit beyond what its load should take.
_CHILD_GRACE_SECONDS = 120.0
_LAG_HISTOGRAM = "atelier_event_loop_lag_seconds"
_SAMPLE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class ManyJobsStats:
    run: JobsRun
    latency_seconds: float
    # What the fake saw: the most model calls open at once.
    peak_in_flight: int
    # From the first Generate call to the last model call's arrival at the fake.
    last_request_seconds: float
    # The server's VmRSS before the first job, and at the sample with the most calls in flight.
    rss_before_mib: float
    rss_at_peak_mib: float
    in_flight_at_rss: int
    # The loop lag's p99 over the run, as the upper bound of its histogram bucket (inf: above
    # the last bucket; None: no observation), and how many observations it is taken from.
    lag_p99_seconds: float | None
    lag_observations: int
    # The server's CPU over the run, its Gemini worker process's included, and that worker's share.
    server_cpu_seconds: float | None
    worker_cpu_seconds: float | None

    @property
    def span_per_latency(self) -> float:
        return self.run.span_seconds / self.latency_seconds

    @property
    def rss_per_job_kib(self) -> float | None:
        if not self.in_flight_at_rss:
            return None
        return (self.rss_at_peak_mib - self.rss_before_mib) * 1024 / self.in_flight_at_rss


@dataclass(frozen=True, slots=True)
class FairnessStats:
    run: FairnessRun
    latency_seconds: float
    limit: int
    peak_in_flight: int

    @property
    def wait_per_latency(self) -> float | None:
        return None if self.run.wait_seconds is None else self.run.wait_seconds / self.latency_seconds


@dataclass(frozen=True, slots=True)
class StormStats:
    run: JobsRun
    # The storm's length from the first Generate call (less than STORM_SECONDS if the client
    # process started late).
    storm_seconds: float
    refusals: int
    requests: int

    @property
    def refusals_per_job(self) -> float:
        return self.refusals / self.run.jobs


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    many_jobs: ManyJobsStats
    fairness: FairnessStats
    storm: StormStats
    idle: IdleFigures


# Measuring.


def _gemini_env(fake: FakeGemini) -> dict[str, str]:
    return {
        "ATELIER_PROVIDER": "gemini",
        "GEMINI_API_KEY": _API_KEY,
        "ATELIER_GEMINI_BASE_URL": fake.base_url,
    }


def _loop_lag_buckets(metrics_url: str) -> dict[float, float]:
    """The loop lag histogram's cumulative bucket counts, by upper bound (seconds; inf last)."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == _LAG_HISTOGRAM:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[float(sample.labels["le"])] = sample.value
    if not buckets:
        raise RuntimeError(f"the server's metrics have no {_LAG_HISTOGRAM}")
    return buckets


def p99_bucket_bound(before: Mapping[float, float], after: Mapping[float, float]) -> tuple[float | None, int]:
    """The upper bound of the bucket that holds the 99th percentile of what was observed between
    two reads of a histogram, and how many observations that was. Prometheus keeps counts per
    bucket, not values: the p99 is at most this bound and above the bucket below it."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(math.inf, 0.0)
    if total <= 0:
        return None, 0
    return next(bound for bound, count in counts.items() if count >= 0.99 * total), int(total)


class _PeakSampler:
    """Samples, from a thread, the calls in flight at the fake and the server's RSS; keeps the
    RSS at the sample with the most calls in flight (the later one of equals)."""

    def __init__(self, fake: FakeGemini, pid: int) -> None:
        # The server and its worker process, listed once: listing them costs more than reading them.
        self._fake, self._pids = fake, [pid, *child_pids(pid)]
        self._stop = threading.Event()
        self.in_flight = 0
        self.rss_mib = 0.0
        self._thread = threading.Thread(target=self._sample, name="bench-peak-sampler", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            in_flight = self._fake.in_flight
            if in_flight and in_flight >= self.in_flight:
                self.in_flight, self.rss_mib = in_flight, rss_mib(*self._pids)

    @contextmanager
    def running(self) -> Iterator[_PeakSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)


def _measure_many_jobs(workdir: Path) -> ManyJobsStats:
    with (
        FakeGemini(latency_seconds=MANY_JOBS_LATENCY) as fake,
        atelier_server("sqlite", workdir, label="many-jobs", env=_gemini_env(fake), metrics=True) as server,
    ):
        rss_before = process_rss_mib(server.pid)
        lag_before = _loop_lag_buckets(server.metrics_url)
        cpu_before = process_cpu_seconds(server.pid)
        own_before = process_cpu_seconds(server.pid, children=False)
        with _PeakSampler(fake, server.pid).running() as sampler:
            run = run_in_child(
                MANY_JOBS_LATENCY * 2 + _CHILD_GRACE_SECONDS, jobs_at_once_load, server.target, jobs=MANY_JOBS
            )
        cpu_after = process_cpu_seconds(server.pid)
        own_after = process_cpu_seconds(server.pid, children=False)
        lag_p99, observations = p99_bucket_bound(lag_before, _loop_lag_buckets(server.metrics_url))
        return ManyJobsStats(
            run=run,
            latency_seconds=MANY_JOBS_LATENCY,
            peak_in_flight=fake.peak_in_flight,
            last_request_seconds=max((r.received_at for r in fake.requests), default=run.began_at)
            - run.began_at,
            rss_before_mib=rss_before,
            rss_at_peak_mib=sampler.rss_mib,
            in_flight_at_rss=sampler.in_flight,
            lag_p99_seconds=lag_p99,
            lag_observations=observations,
            server_cpu_seconds=_difference(cpu_before, cpu_after),
            worker_cpu_seconds=_difference(
                _difference(own_before, cpu_before), _difference(own_after, cpu_after)
            ),
        )


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _measure_fairness(workdir: Path) -> FairnessStats:
    config = workdir / "fairness.toml"
    config.write_text(_FAIRNESS_CONFIG)
    with FakeGemini(latency_seconds=FAIRNESS_LATENCY) as fake:
        env = _gemini_env(fake) | {
            "ATELIER_CONFIG": str(config),
            "ATELIER_TOKENS": f"{_FIRST_TOKEN}:alice,{_SECOND_TOKEN}:bob",
            # The first principal's jobs need not drain: the server stops once the measure is taken.
            "ATELIER_SHUTDOWN_GRACE_SECONDS": "0",
        }
        with atelier_server("sqlite", workdir, label="fairness", env=env) as server:
            run = run_in_child(
                _CHILD_GRACE_SECONDS * 2,
                fairness_load,
                server.target,
                first_token=_FIRST_TOKEN,
                second_token=_SECOND_TOKEN,
                queued_jobs=FAIRNESS_JOBS,
            )
        return FairnessStats(
            run=run,
            latency_seconds=FAIRNESS_LATENCY,
            limit=FAIRNESS_LIMIT,
            peak_in_flight=fake.peak_in_flight,
        )


def _measure_storm(workdir: Path) -> StormStats:
    with (
        FakeGemini(latency_seconds=STORM_LATENCY) as fake,
        atelier_server("sqlite", workdir, label="storm", env=_gemini_env(fake)) as server,
    ):
        start_at = time.monotonic() + _CLIENT_START_SECONDS
        storm_until = start_at + STORM_SECONDS
        fake.storm(storm_until, retry_delay_seconds=STORM_RETRY_DELAY)
        run = run_in_child(
            _CLIENT_START_SECONDS + STORM_SECONDS + _CHILD_GRACE_SECONDS,
            jobs_at_once_load,
            server.target,
            jobs=STORM_JOBS,
            start_at=start_at,
        )
        return StormStats(
            run=run,
            storm_seconds=storm_until - run.began_at,
            refusals=fake.storm_refusals,
            requests=len(fake.requests),
        )


def measure_scheduler(workdir: Path, *, idle_seconds: float, say: Callable[[str], None]) -> SchedulerStats:
    say(f"many jobs in flight: {MANY_JOBS:,} jobs, the model answering after {MANY_JOBS_LATENCY:g} s")
    many_jobs = _measure_many_jobs(workdir)
    say(f"fairness: {FAIRNESS_JOBS:,} jobs queued on a model limited to {FAIRNESS_LIMIT}, then one more")
    fairness = _measure_fairness(workdir)
    say(f"quota storm: {STORM_JOBS} jobs, the model answering 429 for {STORM_SECONDS:g} s")
    storm = _measure_storm(workdir)
    say(
        f"idle streams: {IDLE_STREAMS:,} Progress streams on queued jobs, {idle_seconds:g} s without and with"
    )
    idle = measure_idle(workdir, streams=IDLE_STREAMS, versions=IDLE_STREAMS, seconds=idle_seconds)
    return SchedulerStats(many_jobs=many_jobs, fairness=fairness, storm=storm, idle=idle)
