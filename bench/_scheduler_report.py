"""The scheduler's rows of `make bench` (bench/_scheduler.py): their targets, the one function that
judges them, and how they are printed and written as JSON."""

from __future__ import annotations

import math
from typing import Any

from bench._idle import IdleFigures
from bench._scheduler import (
    FAIRNESS_JOBS,
    MANY_JOBS,
    STORM_LATENCY,
    STORM_RETRY_DELAY,
    FairnessStats,
    ManyJobsStats,
    SchedulerStats,
    StormStats,
)
from bench._scheduler_load import JobsRun
from bench._targets import Target, Verdict, judge, verdict_text

SPAN_TARGET = Target(
    "scheduler.many_jobs.span_per_latency",
    f"{MANY_JOBS:,} jobs: first submission to last terminal event / model latency",
    ceiling=2.0,
)
SPAN_GOAL = 1.2
PEAK_TARGET = Target(
    "scheduler.many_jobs.peak_in_flight", f"{MANY_JOBS:,} jobs: peak model calls in flight", floor=900
)
LAG_TARGET = Target(
    "scheduler.many_jobs.loop_lag_p99_ms",
    f"{MANY_JOBS:,} jobs: event loop lag p99 (ms, a bucket bound)",
    ceiling=50,
)
FAIRNESS_TARGET = Target(
    "scheduler.fairness.wait_per_latency",
    f"fairness: the other principal's wait behind {FAIRNESS_JOBS:,} jobs / model latency",
    ceiling=2.0,
)
STORM_TARGET = Target(
    "scheduler.storm.requests_per_job", "quota storm: requests made during the storm / jobs", ceiling=1.5
)
IDLE_TARGET = Target(
    "scheduler.idle.server_cores", "idle streams: server CPU with the streams open (cores)", ceiling=0.05
)


def _lag_ms(stats: ManyJobsStats) -> float | None:
    return None if stats.lag_p99_seconds is None else stats.lag_p99_seconds * 1000


def scheduler_verdicts(stats: SchedulerStats) -> list[Verdict]:
    many = stats.many_jobs
    return [
        judge(SPAN_TARGET, many.span_per_latency),
        judge(PEAK_TARGET, many.peak_in_flight),
        judge(LAG_TARGET, _lag_ms(many)),
        judge(FAIRNESS_TARGET, stats.fairness.wait_per_latency),
        judge(STORM_TARGET, stats.storm.refusals_per_job),
        judge(IDLE_TARGET, stats.idle.with_streams),
    ]


def _outcomes(run: JobsRun) -> str:
    return ", ".join(f"{count:,} {outcome}" for outcome, count in sorted(run.outcomes.items()))


def scheduler_problems(stats: SchedulerStats) -> list[str]:
    problems: list[str] = []
    for title, run in (("many jobs", stats.many_jobs.run), ("quota storm", stats.storm.run)):
        if run.outcomes.get("COMPLETED", 0) != run.jobs:
            first = f"; first RPC error: {run.first_error}" if run.first_error else ""
            problems.append(f"{title}: of {run.jobs:,} jobs, {_outcomes(run)}{first}")
    fair = stats.fairness
    if fair.run.outcome != "COMPLETED":
        problems.append(f"fairness: the other principal's job ended {fair.run.outcome}")
    if fair.peak_in_flight > fair.limit:
        problems.append(f"fairness: {fair.peak_in_flight} calls in flight on a model limited to {fair.limit}")
    if stats.idle.not_queued:
        problems.append(f"idle streams: {stats.idle.not_queued} versions were not QUEUED when followed")
    return problems


class _Lines:
    """The scheduler section's lines: a judged figure (from scheduler_verdicts), a figure for
    information, or a note."""

    def __init__(self, stats: SchedulerStats) -> None:
        self._judged = {target.key: ok for target, _, ok in scheduler_verdicts(stats)}
        self.lines: list[str] = []

    def note(self, *texts: str) -> None:
        self.lines += [f"  {text}" for text in texts]

    def judged(self, label: str, shown: str, target: Target, unit: str = "") -> None:
        bound, verdict = f"{target.bound}{unit}", verdict_text(self._judged[target.key])
        self.lines.append(f"    {label:<52} {shown:>14}   target {bound:<9} {verdict}")

    def info(self, label: str, shown: str, note: str = "") -> None:
        self.lines.append(f"    {label:<52} {shown:>14}   {note}".rstrip())


def _render_many_jobs(out: _Lines, many: ManyJobsStats) -> None:
    run = many.run
    out.note(
        f"many jobs in flight: {run.jobs:,} Generate calls at once, each job followed by its Progress",
        f"stream; the model answers after {many.latency_seconds:g} s; default settings",
    )
    out.judged("(last terminal event - first call) / latency", f"{many.span_per_latency:.2f} x", SPAN_TARGET)
    out.judged("peak model calls in flight, at the fake", f"{many.peak_in_flight:,}", PEAK_TARGET)
    lag = _lag_ms(many)
    lag_shown = "-" if lag is None else ("> 2,500 ms" if math.isinf(lag) else f"<= {lag:g} ms")
    out.judged("event loop lag p99 (a bucket's upper bound)", lag_shown, LAG_TARGET, " ms")
    rss = many.rss_per_job_kib
    out.info(
        "server RSS per job in flight",
        "-" if rss is None else f"{rss:,.1f} KiB",
        f"{many.rss_before_mib:.0f} -> {many.rss_at_peak_mib:.0f} MiB at {many.in_flight_at_rss:,} in flight",
    )
    server_cpu = "?" if many.server_cpu_seconds is None else f"{many.server_cpu_seconds:.1f}"
    if many.worker_cpu_seconds is not None:
        server_cpu += f" (its Gemini worker process {many.worker_cpu_seconds:.1f})"
    out.note(
        f"  (the goal is {SPAN_GOAL:g} x; {run.span_seconds:.1f} s in all: the last Generate answered at "
        f"{run.submit_seconds:.1f} s,",
        f"  the last model call arrived at {many.last_request_seconds:.1f} s; {_outcomes(run)};",
        f"  CPU: server {server_cpu} s, client {run.client_cpu_seconds:.1f} s; the lag's p99 is from "
        f"{many.lag_observations:,} observations)",
    )


def _render_fairness(out: _Lines, fair: FairnessStats) -> None:
    run = fair.run
    out.note(
        f"fairness: one principal queues {run.queued_jobs:,} jobs (in {run.queue_seconds:.1f} s) on a model",
        f"limited to {fair.limit} calls of {fair.latency_seconds:g} s, then another principal submits one;",
        "its wait is its RUNNING event's create_time - its Generate call",
    )
    wait, ratio = run.wait_seconds, fair.wait_per_latency
    out.judged(
        "the other principal's wait / model latency",
        "-" if wait is None or ratio is None else f"{wait:.2f} s, {ratio:.2f} x",
        FAIRNESS_TARGET,
    )
    out.note(
        f"  (its job ended {run.end_seconds:.2f} s after its Generate call, {run.outcome};",
        f"  at most {fair.peak_in_flight} calls were in flight at the fake)",
    )


def _render_storm(out: _Lines, storm: StormStats) -> None:
    run = storm.run
    out.note(
        f"quota storm: {run.jobs} jobs at once; the model answers 429 (retryDelay {STORM_RETRY_DELAY:g} s)",
        f"for {storm.storm_seconds:.1f} s from the first call, then after {STORM_LATENCY:g} s",
    )
    out.judged(
        "requests during the storm (all refused) / jobs",
        f"{storm.refusals} / {run.jobs} = {storm.refusals_per_job:.2f}",
        STORM_TARGET,
    )
    out.note(f"  ({_outcomes(run)} after {run.span_seconds:.1f} s; {storm.requests} requests in all)")


def _render_idle(out: _Lines, idle: IdleFigures) -> None:
    out.note(
        f"idle streams: {idle.streams:,} Progress streams on {idle.versions:,} QUEUED versions, behind",
        f"a job that holds the scripted model (max_concurrent 1); server CPU over {idle.seconds:g} s",
    )
    out.judged("server CPU with the streams open (cores)", f"{idle.with_streams:.3f}", IDLE_TARGET)
    out.info("server CPU without them (cores)", f"{idle.without_streams:.3f}", "(the same versions queued)")


def render_scheduler(stats: SchedulerStats) -> list[str]:
    out = _Lines(stats)
    out.note("Jobs that wait on models: SQLite, the gemini provider, a fake Gemini in the bench's process")
    _render_many_jobs(out, stats.many_jobs)
    _render_fairness(out, stats.fairness)
    _render_storm(out, stats.storm)
    _render_idle(out, stats.idle)
    return out.lines


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or math.isinf(value) else round(value, digits)


def scheduler_json(stats: SchedulerStats) -> dict[str, Any]:
    many, fairness, storm, idle = stats.many_jobs, stats.fairness, stats.storm, stats.idle
    return {
        "many_jobs": {
            "jobs": many.run.jobs,
            "latency_seconds": many.latency_seconds,
            "span_seconds": round(many.run.span_seconds, 3),
            "submit_seconds": round(many.run.submit_seconds, 3),
            "span_per_latency": round(many.span_per_latency, 4),
            "peak_in_flight": many.peak_in_flight,
            "last_request_seconds": round(many.last_request_seconds, 3),
            "rss_before_mib": round(many.rss_before_mib, 2),
            "rss_at_peak_mib": round(many.rss_at_peak_mib, 2),
            "in_flight_at_rss": many.in_flight_at_rss,
            "rss_per_job_kib": _round(many.rss_per_job_kib, 2),
            # A bucket's upper bound; null above the last bucket (2.5 s) or without observations.
            "loop_lag_p99_bucket_seconds": _round(many.lag_p99_seconds, 4),
            "loop_lag_observations": many.lag_observations,
            "server_cpu_seconds": _round(many.server_cpu_seconds, 2),
            "worker_cpu_seconds": _round(many.worker_cpu_seconds, 2),
            "outcomes": many.run.outcomes,
        },
        "fairness": {
            "queued_jobs": fairness.run.queued_jobs,
            "limit": fairness.limit,
            "latency_seconds": fairness.latency_seconds,
            "queue_seconds": round(fairness.run.queue_seconds, 3),
            "wait_seconds": _round(fairness.run.wait_seconds, 4),
            "end_seconds": round(fairness.run.end_seconds, 4),
            "wait_per_latency": _round(fairness.wait_per_latency, 4),
            "outcome": fairness.run.outcome,
            "peak_in_flight": fairness.peak_in_flight,
        },
        "storm": {
            "jobs": storm.run.jobs,
            "storm_seconds": round(storm.storm_seconds, 3),
            "refusals": storm.refusals,
            "requests": storm.requests,
            "refusals_per_job": round(storm.refusals_per_job, 4),
            "span_seconds": round(storm.run.span_seconds, 3),
            "outcomes": storm.run.outcomes,
        },
        "idle": {
            "streams": idle.streams,
            "versions": idle.versions,
            "seconds": idle.seconds,
            "server_cores_with_streams": round(idle.with_streams, 4),
            "server_cores_without_streams": round(idle.without_streams, 4),
            "not_queued": idle.not_queued,
        },
    }
