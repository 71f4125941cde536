"""The figures of one run: the table people read, the verdicts, and the JSON machines read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._blame import BlameStats, blame_json, blame_verdicts, render_blame
from bench._fanout import FanoutStats, fanout_json, fanout_verdicts, render_fanout
from bench._iterate import IterateStats, iterate_json, iterate_verdicts, render_iterate
from bench._load import JOB_SHAPE_EVENTS, CallStats, CpuUse, JobStats
from bench._memory import GROWTH_CEILING_MB, MemoryStats
from bench._scheduler import SchedulerStats
from bench._scheduler_report import render_scheduler, scheduler_json, scheduler_problems, scheduler_verdicts
from bench._targets import Target, Verdict, judge, verdict_text
from bench._tweak import OVERHEAD_CEILING_MS, PHASES, RATIO_CEILING, TweakStats

BACKEND_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# Above this 1-minute load average something else was competing for the cores.
_BUSY_LOAD = 0.5


# The targets apply to the default setup (SQLite); PostgreSQL's figures are for comparison.
GET_VERSION_TARGET = Target("get_version.sqlite", "GetVersion (SQLite) / echo", floor=0.5)
# A job is measured against its own gRPC calls on the echo server, not against one unary call:
# a durable job cannot cost less than the calls that carry it.
JOBS_TARGET = Target("jobs.sqlite", "COMPLETED jobs/s (SQLite) / a job's gRPC calls on echo", floor=0.2)
TWEAK_OVERHEAD_TARGET = Target(
    "tweak.overhead_p50_ms", "Tweak p50 - direct google-genai p50 (ms)", ceiling=OVERHEAD_CEILING_MS
)
TWEAK_RATIO_TARGET = Target("tweak.ratio_p50", "Tweak p50 / direct google-genai p50", ceiling=RATIO_CEILING)
MEMORY_TARGET = Target(
    "memory.rss_growth_mib",
    "server RSS growth from 1/4 to all sessions touched (MiB)",
    ceiling=GROWTH_CEILING_MB,
)


@dataclass(slots=True)
class Figures:
    date: str
    cores: int
    # The 1-minute load average before the run: anything else busy on the machine skews every figure.
    load_before: float | None
    settings: dict[str, Any]
    echo: CallStats
    # A job's gRPC calls alone, on the echo server: the most jobs/s gRPC in Python allows.
    job_shape: CallStats
    get_version: dict[str, CallStats] = field(default_factory=dict)
    jobs: dict[str, JobStats] = field(default_factory=dict)
    # Backend → why it was not measured.
    skipped: dict[str, str] = field(default_factory=dict)
    tweak: TweakStats | None = None
    memory: MemoryStats | None = None
    iterate: IterateStats | None = None
    scheduler: SchedulerStats | None = None
    fanout: FanoutStats | None = None
    blame: BlameStats | None = None

    def ratio(self, rate: float) -> float:
        return rate / self.echo.rate if self.echo.rate else 0.0

    def shape_ratio(self, rate: float) -> float:
        """A jobs/s rate over what a job's gRPC calls alone reach on the echo server."""
        return rate / self.job_shape.rate if self.job_shape.rate else 0.0


def tweak_overhead(stats: TweakStats) -> tuple[float | None, float | None]:
    """(Atelier p50 - direct p50 in ms, Atelier p50 / direct p50); None where a side is missing."""
    atelier, direct = percentile(stats.atelier_ms, 50), percentile(stats.direct_ms, 50)
    if atelier is None or direct is None or direct <= 0:
        return None, None
    return atelier - direct, atelier / direct


def verdicts(figures: Figures) -> list[Verdict]:
    """Every target of the run, with the figure it is judged on (None if it was not measured)
    and whether it is met; the table, the JSON and TARGETS MISSED all read this."""
    get_version, jobs = figures.get_version.get("sqlite"), figures.jobs.get("sqlite")
    result = [
        judge(GET_VERSION_TARGET, None if get_version is None else figures.ratio(get_version.rate)),
        judge(JOBS_TARGET, None if jobs is None else figures.shape_ratio(jobs.rate)),
    ]
    if figures.tweak is not None:
        overhead, ratio = tweak_overhead(figures.tweak)
        result += [judge(TWEAK_OVERHEAD_TARGET, overhead), judge(TWEAK_RATIO_TARGET, ratio)]
    if figures.memory is not None:
        # Two conditions: under the ceiling, and levelling off (MemoryStats.flat).
        result.append((MEMORY_TARGET, figures.memory.growth_mb(), figures.memory.flat()))
    if figures.scheduler is not None:
        result += scheduler_verdicts(figures.scheduler)
    if figures.fanout is not None:
        result += fanout_verdicts(figures.fanout)
    if figures.blame is not None:
        result += blame_verdicts(figures.blame)
    return result


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile: an observed value, never an interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cpu(cpu: CpuUse) -> str:
    server = "?" if cpu.server is None else f"{cpu.server:.2f}"
    return f"{server} / {cpu.client:.2f}"


def render(figures: Figures) -> str:
    s = figures.settings
    load = "unknown" if figures.load_before is None else f"{figures.load_before:.2f}"
    lines = [
        f"Atelier benchmark, {figures.date}, {figures.cores} cores, load average before the run {load}",
        f"  {s['seconds']:g} s per measurement after {s['warmup']:g} s of warm-up; one grpc.aio client",
        f"  process with {s['concurrency']} unary calls or {s['jobs_concurrency']} jobs in flight",
        "",
        "  (CPU: cores busy in the server / in the client during the window; 1.00 is one core;",
        "  GetVersion's target is a ratio to echo unary, the jobs' a ratio to a job's calls on echo)",
        "",
        f"  {'measurement':<36} {'rate':>14} {'vs echo':>8} {'vs job':>8} {'target':>8} {'result':>6}"
        f"  {'CPU':>11}",
    ]
    judged = {target.key: (target, ok) for target, _, ok in verdicts(figures)}

    def row(title: str, rate: str, ratios: tuple[float, float | None], key: str, cpu: CpuUse) -> None:
        unary, job = ratios
        target, ok = judged.get(key, (None, False))
        bound, verdict = ("", "") if target is None else (target.bound, verdict_text(ok))
        shown = "" if job is None else f"{job:.3f}"
        lines.append(
            f"  {title:<36} {rate:>14} {unary:>8.3f} {shown:>8} {bound:>8} {verdict:>6}  {_cpu(cpu):>11}"
        )

    echo, shape = figures.echo, figures.job_shape
    row(f"echo unary ({s['payload_bytes']} B)", f"{echo.rate:,.0f} rpc/s", (1.0, None), "", echo.cpu)
    row(
        f"echo, a job's calls (unary + {JOB_SHAPE_EVENTS})",
        f"{shape.rate:,.0f} jobs/s",
        (figures.ratio(shape.rate), 1.0),
        "",
        shape.cpu,
    )
    for backend, stats in figures.get_version.items():
        title = f"GetVersion, {BACKEND_TITLES[backend]}"
        row(
            title,
            f"{stats.rate:,.0f} rpc/s",
            (figures.ratio(stats.rate), None),
            f"get_version.{backend}",
            stats.cpu,
        )
    for backend, jobs in figures.jobs.items():
        title = f"Generate -> COMPLETED, {BACKEND_TITLES[backend]}"
        ratios = (figures.ratio(jobs.rate), figures.shape_ratio(jobs.rate))
        row(title, f"{jobs.rate:,.1f} jobs/s", ratios, f"jobs.{backend}", jobs.cpu)

    if figures.jobs:
        header = "Progress event latency (receive - create_time)"
        lines += ["", f"  {header:<51} {'events':>8} {'p50 ms':>8} {'p99 ms':>8}"]
        for backend, jobs in figures.jobs.items():
            p50, p99 = percentile(jobs.latencies_ms, 50), percentile(jobs.latencies_ms, 99)
            title = BACKEND_TITLES[backend]
            lines.append(f"  {title:<51} {len(jobs.latencies_ms):>8} {_ms(p50):>8} {_ms(p99):>8}")

    if figures.tweak is not None:
        lines += ["", *_render_tweak(figures.tweak)]
    if figures.memory is not None:
        lines += ["", *_render_memory(figures.memory)]
    if figures.iterate is not None:
        lines += render_iterate(figures.iterate).splitlines()
    if figures.scheduler is not None:
        lines += ["", *render_scheduler(figures.scheduler)]
    if figures.fanout is not None:
        lines += ["", *render_fanout(figures.fanout)]
    if figures.blame is not None:
        lines += ["", *render_blame(figures.blame)]

    problems = _problems(figures)
    lines += ["", "  problems: none" if not problems else "  problems:"]
    lines += [f"    - {problem}" for problem in problems]
    for backend, reason in figures.skipped.items():
        first_line = reason.strip().splitlines()[0] if reason.strip() else "no reason given"
        lines.append(f"  skipped {BACKEND_TITLES[backend]}: {first_line}")
    if figures.load_before is not None and figures.load_before > _BUSY_LOAD:
        lines.append(
            f"  note: the load average was {figures.load_before:.2f} before the run: other work shared "
            "the cores, so every rate may be low"
        )

    missed = [target.title for target, _, ok in verdicts(figures) if not ok]
    if figures.iterate is not None:
        missed += [title for title, ok in iterate_verdicts(figures.iterate) if not ok]
    lines.append("")
    if missed:
        lines.append(f"  TARGETS MISSED: {'; '.join(missed)} (a measurement: the exit code stays 0)")
    else:
        lines.append("  all targets met")
    return "\n".join(lines)


def _problems(figures: Figures) -> list[str]:
    problems: list[str] = []
    calls = {"echo": figures.echo, "echo, a job's calls": figures.job_shape}
    calls |= {f"GetVersion {b}": c for b, c in figures.get_version.items()}
    for title, stats in calls.items():
        if stats.errors:
            problems.append(f"{title}: {stats.errors} failed calls, first: {stats.first_error}")
    for backend, jobs in figures.jobs.items():
        for outcome, count in sorted(jobs.failures.items()):
            problems.append(f"jobs {backend}: {count} ended {outcome}")
        if jobs.unfinished:
            problems.append(f"jobs {backend}: {jobs.unfinished} still running after the drain")
    if figures.tweak is not None:
        problems += [f"tweak: {failure}" for failure in figures.tweak.failures]
        if figures.tweak.failures:
            problems.append("tweak: the phases are not shown when a turn failed")
    if figures.memory is not None and figures.memory.errors:
        memory = figures.memory
        problems.append(f"memory: {memory.errors} failed touches, first: {memory.first_error}")
    if figures.scheduler is not None:
        problems += scheduler_problems(figures.scheduler)
    return problems


def _cpu_json(cpu: CpuUse) -> dict[str, float | None]:
    return {
        "server_cores": None if cpu.server is None else round(cpu.server, 3),
        "client_cores": round(cpu.client, 3),
    }


def _calls_json(figures: Figures, stats: CallStats) -> dict[str, Any]:
    return {
        "rpc_per_s": round(stats.rate, 1),
        "ratio_to_echo": round(figures.ratio(stats.rate), 4),
        "calls": stats.calls,
        "errors": stats.errors,
        "cpu": _cpu_json(stats.cpu),
    }


def to_json(figures: Figures) -> dict[str, Any]:
    return {
        "date": figures.date,
        "cores": figures.cores,
        "load_before": figures.load_before,
        "settings": figures.settings,
        "echo": _calls_json(figures, figures.echo),
        "job_shape": _calls_json(figures, figures.job_shape) | {"stream_messages": JOB_SHAPE_EVENTS},
        "get_version": {b: _calls_json(figures, s) for b, s in figures.get_version.items()},
        "jobs": {
            backend: {
                "jobs_per_s": round(jobs.rate, 2),
                "ratio_to_echo": round(figures.ratio(jobs.rate), 5),
                "ratio_to_job_calls": round(figures.shape_ratio(jobs.rate), 5),
                "completed": jobs.completed,
                "failures": jobs.failures,
                "unfinished": jobs.unfinished,
                "cpu": _cpu_json(jobs.cpu),
                "progress_latency_ms": {
                    "events": len(jobs.latencies_ms),
                    "p50": percentile(jobs.latencies_ms, 50),
                    "p99": percentile(jobs.latencies_ms, 99),
                },
            }
            for backend, jobs in figures.jobs.items()
        },
        "targets": [
            {
                "name": target.key,
                "floor": target.floor,
                "ceiling": target.ceiling,
                "value": None if value is None or math.isinf(value) else round(value, 5),
                "met": ok,
            }
            for target, value, ok in verdicts(figures)
        ],
        "tweak": None if figures.tweak is None else _tweak_json(figures.tweak),
        "memory": None if figures.memory is None else _memory_json(figures.memory),
        "iterate": None if figures.iterate is None else iterate_json(figures.iterate),
        "scheduler": None if figures.scheduler is None else scheduler_json(figures.scheduler),
        "fanout": None if figures.fanout is None else fanout_json(figures.fanout),
        "blame": None if figures.blame is None else blame_json(figures.blame),
        "skipped": figures.skipped,
        "problems": _problems(figures),
    }


def _render_tweak(stats: TweakStats) -> list[str]:
    overhead, ratio = tweak_overhead(stats)
    lines = [
        f"  Tweak overhead: {stats.turns} turns in a row, a fake Gemini answering each after "
        f"{stats.reply_delay_ms:g} ms (SQLite)",
        f"  {'':<60} {'turns':>6} {'p50 ms':>8} {'p90 ms':>8}",
    ]
    for name, values in (
        ("direct: google-genai chat, send_message_stream to its end", stats.direct_ms),
        ("Atelier: Tweak call -> terminal Progress event", stats.atelier_ms),
    ):
        p50, p90 = percentile(values, 50), percentile(values, 90)
        lines.append(f"  {name:<60} {len(values):>6} {_ms(p50):>8} {_ms(p90):>8}")
    if overhead is not None and ratio is not None:
        ok_overhead = TWEAK_OVERHEAD_TARGET.met(overhead)
        ok_ratio = TWEAK_RATIO_TARGET.met(ratio)
        lines += [
            f"  {'overhead: Atelier p50 - direct p50':<40} {overhead:>8.1f} ms   "
            f"target {TWEAK_OVERHEAD_TARGET.bound} ms   {verdict_text(ok_overhead)}",
            f"  {'ratio: Atelier p50 / direct p50':<40} {ratio:>8.2f} x    "
            f"target {TWEAK_RATIO_TARGET.bound} x    {verdict_text(ok_ratio)}",
        ]
    if any(stats.phases_ms.values()):
        cpu = stats.server_cpu_ms_per_turn
        cpu_note = "" if cpu is None else f"; the server used {cpu:.0f} ms of CPU per turn"
        lines.append(f"  where an Atelier turn's time goes (p50 of each phase, ms{cpu_note}):")
        total = 0.0
        for name, description in PHASES:
            p50 = percentile(stats.phases_ms.get(name, ()), 50)
            total += p50 or 0.0
            lines.append(f"    {_ms(p50):>7}  {name:<12} {description}")
        lines.append(f"    {total:>7.1f}  (the sum of the phases' p50s)")
    request = percentile(stats.direct_request_ms, 50)
    if request is not None:
        lines.append(
            f"  direct: call -> request at the fake, p50 {request:.1f} ms "
            "(google-genai building the request; grows with the history)"
        )
    deliveries = percentile([float(d) for d in stats.deliveries], 50)
    if deliveries is not None:
        lines.append(f"  Progress messages per Atelier turn arrive in bursts: p50 {deliveries:.0f} bursts")
    return lines


def _render_memory(stats: MemoryStats) -> list[str]:
    lines = [
        f"  Session memory: {stats.sessions:,} sessions, each touched by GetSession + GetVersion (SQLite)"
    ]
    lines.append(
        "  " + f"{'sessions touched':<22}" + "".join(f"{touched:>10,}" for touched, _ in stats.samples)
    )
    lines.append("  " + f"{'server VmRSS, MiB':<22}" + "".join(f"{rss:>10.1f}" for _, rss in stats.samples))
    growth, last = stats.growth_mb(), stats.last_step_mb()
    if growth is not None and last is not None:
        quarter = stats.samples[1][0]
        lines += [
            f"  growth from {quarter:,} to {stats.sessions:,} sessions touched: {growth:+.1f} MiB, "
            f"last quarter {last:+.1f} MiB   {verdict_text(stats.flat())}",
            f"  (target: under {GROWTH_CEILING_MB:g} MiB, and levelling off: "
            f"under {GROWTH_CEILING_MB / 3:.1f} MiB in the last quarter)",
        ]
    rate = stats.sessions / stats.touch_seconds if stats.touch_seconds else 0.0
    lines.append(
        f"  (written in {stats.populate_seconds:.1f} s before the server started; "
        f"touched in {stats.touch_seconds:.1f} s, {rate:,.0f} sessions/s)"
    )
    return lines


def _round(values: Sequence[float]) -> list[float]:
    return [round(value, 2) for value in values]


def _tweak_json(stats: TweakStats) -> dict[str, Any]:
    return {
        "turns": stats.turns,
        "reply_delay_ms": stats.reply_delay_ms,
        "atelier_ms": {
            "p50": percentile(stats.atelier_ms, 50),
            "p90": percentile(stats.atelier_ms, 90),
            "turns": _round(stats.atelier_ms),
        },
        "direct_ms": {
            "p50": percentile(stats.direct_ms, 50),
            "p90": percentile(stats.direct_ms, 90),
            "turns": _round(stats.direct_ms),
        },
        "direct_request_ms_p50": percentile(stats.direct_request_ms, 50),
        "phases_ms_p50": {name: percentile(values, 50) for name, values in stats.phases_ms.items()},
        "server_cpu_ms_per_turn": stats.server_cpu_ms_per_turn,
        "failures": list(stats.failures),
    }


def _memory_json(stats: MemoryStats) -> dict[str, Any]:
    return {
        "sessions": stats.sessions,
        "rss_mib": [{"touched": touched, "rss": round(rss, 2)} for touched, rss in stats.samples],
        "growth_mib": stats.growth_mb(),
        "last_quarter_mib": stats.last_step_mb(),
        "errors": stats.errors,
        "populate_seconds": round(stats.populate_seconds, 2),
        "touch_seconds": round(stats.touch_seconds, 2),
    }
