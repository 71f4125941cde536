"""Fan-out: how soon does a fan-out of 8 show its first output, against one job alone?

One server on SQLite, its gemini provider pointed at the Gemini fake (in this process, on its own
thread) answering every request after a fixed latency. A single Generate is followed to its
terminal event, a few times; then a Generate with `count` 8 is followed on its batch's one
Progress stream, to its first output's terminal event and to its last. The outputs run at once
(they hold no session between them, and the default settings put no limit on the model), so the
first should come about when a single job would: the target is the ratio of the two.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2

from bench._servers import atelier_server
from bench._targets import Target, Verdict, judge
from support.gemini_fake import FakeGemini

FAN_OUT = 8
LATENCY_SECONDS = 1.0
SINGLE_RUNS = 3
FANOUT_RUNS = 3
# "About 1x": scheduling eight jobs may add a little, never another model call's worth.
RATIO_CEILING = 1.25
FANOUT_TARGET = Target(
    "fanout.first_output_ratio",
    f"fan-out of {FAN_OUT}: first output / a single job (fake latency {LATENCY_SECONDS:g} s)",
    ceiling=RATIO_CEILING,
)
_TERMINAL = {
    generation_pb2.VERSION_STATE_COMPLETED,
    generation_pb2.VERSION_STATE_FAILED,
    generation_pb2.VERSION_STATE_CANCELLED,
    generation_pb2.VERSION_STATE_NEEDS_REVIEW,
}


@dataclass(frozen=True, slots=True)
class FanoutStats:
    latency_seconds: float
    outputs: int
    # Generate → terminal event, one job alone (median of SINGLE_RUNS).
    single_seconds: float
    # Generate → the batch stream's first terminal event, and its last (medians of FANOUT_RUNS).
    first_output_seconds: float
    all_outputs_seconds: float
    completed: int
    failed: int

    @property
    def ratio(self) -> float:
        return self.first_output_seconds / self.single_seconds


def _single(stub: atelier_service_pb2_grpc.AtelierServiceStub) -> tuple[float, bool]:
    started = time.perf_counter()
    version = stub.Generate(pb.GenerateRequest(prompt="a one-file tool"), timeout=30)
    for event in stub.Progress(pb.ProgressRequest(name=version.name), timeout=60):
        if event.state in _TERMINAL:
            return time.perf_counter() - started, event.state == generation_pb2.VERSION_STATE_COMPLETED
    raise RuntimeError(f"{version.name}: its stream ended before its terminal event")


def _fan_out(stub: atelier_service_pb2_grpc.AtelierServiceStub) -> tuple[float, float, int, int]:
    started = time.perf_counter()
    first = stub.Generate(pb.GenerateRequest(prompt="views of a tool", count=FAN_OUT), timeout=30)
    first_output: float | None = None
    counts = None
    for event in stub.Progress(pb.ProgressRequest(name=first.batch), timeout=60):
        if event.state in _TERMINAL and first_output is None:
            first_output = time.perf_counter() - started
        counts = event.batch_counts
    if first_output is None or counts is None:
        raise RuntimeError(f"{first.batch}: no output ended")
    return first_output, time.perf_counter() - started, counts.completed, counts.failed


def measure_fanout(workdir: Path, *, say: Callable[[str], None]) -> FanoutStats:
    say(f"fan-out: {FAN_OUT} outputs against one job, the fake answering after {LATENCY_SECONDS:g} s")
    with FakeGemini(latency_seconds=LATENCY_SECONDS) as fake:
        env = {
            "ATELIER_PROVIDER": "gemini",
            "GEMINI_API_KEY": "bench-key",
            "ATELIER_GEMINI_BASE_URL": fake.base_url,
        }
        with (
            atelier_server("sqlite", workdir, label="fanout", env=env) as server,
            grpc.insecure_channel(server.target) as channel,
        ):
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
            _single(stub)  # warm-up: the first job loads the provider's client
            singles = [_single(stub) for _ in range(SINGLE_RUNS)]
            fans = [_fan_out(stub) for _ in range(FANOUT_RUNS)]
    if not all(ok for _, ok in singles):
        raise RuntimeError("fan-out: a single job did not complete")
    return FanoutStats(
        latency_seconds=LATENCY_SECONDS,
        outputs=FAN_OUT,
        single_seconds=statistics.median(seconds for seconds, _ in singles),
        first_output_seconds=statistics.median(fan[0] for fan in fans),
        all_outputs_seconds=statistics.median(fan[1] for fan in fans),
        completed=sum(fan[2] for fan in fans),
        failed=sum(fan[3] for fan in fans),
    )


def fanout_verdicts(stats: FanoutStats) -> list[Verdict]:
    return [judge(FANOUT_TARGET, stats.ratio)]


def render_fanout(stats: FanoutStats) -> list[str]:
    return [
        f"  Fan-out of {stats.outputs} (Gemini fake, {stats.latency_seconds:g} s latency, SQLite)",
        f"    a single job, Generate to COMPLETED             {stats.single_seconds * 1000:>8.0f} ms",
        f"    fan-out, Generate to its first output           {stats.first_output_seconds * 1000:>8.0f} ms",
        f"    fan-out, Generate to its last output            {stats.all_outputs_seconds * 1000:>8.0f} ms",
        f"    first output / single job                       {stats.ratio:>8.2f}x "
        f"(target {FANOUT_TARGET.bound})",
        f"    outputs over {FANOUT_RUNS} fan-outs: {stats.completed} completed, {stats.failed} failed",
    ]


def fanout_json(stats: FanoutStats) -> dict[str, float | int]:
    return {
        "outputs": stats.outputs,
        "latency_seconds": stats.latency_seconds,
        "single_ms": round(stats.single_seconds * 1000, 1),
        "first_output_ms": round(stats.first_output_seconds * 1000, 1),
        "all_outputs_ms": round(stats.all_outputs_seconds * 1000, 1),
        "ratio": round(stats.ratio, 3),
        "completed": stats.completed,
        "failed": stats.failed,
    }
