"""The figures of one run: the table people read, the verdicts, and the JSON machines read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench._load import CallStats, CpuUse, JobStats

BACKEND_TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
# Above this 1-minute load average something else was competing for the cores.
_BUSY_LOAD = 0.5


@dataclass(frozen=True, slots=True)
class Target:
    """A floor for one ratio to the echo server's rpc/s."""

    key: str
    title: str
    floor: float


# The targets apply to the default setup (SQLite); PostgreSQL's figures are for comparison.
GET_VERSION_TARGET = Target("get_version.sqlite", "GetVersion (SQLite) / echo", 0.5)
JOBS_TARGET = Target("jobs.sqlite", "COMPLETED jobs/s (SQLite) / echo", 0.1)


@dataclass(slots=True)
class Figures:
    date: str
    cores: int
    # The 1-minute load average before the run: anything else busy on the machine skews every figure.
    load_before: float | None
    settings: dict[str, Any]
    echo: CallStats
    get_version: dict[str, CallStats] = field(default_factory=dict)
    jobs: dict[str, JobStats] = field(default_factory=dict)
    # Backend → why it was not measured.
    skipped: dict[str, str] = field(default_factory=dict)

    def ratio(self, rate: float) -> float:
        return rate / self.echo.rate if self.echo.rate else 0.0

    def verdicts(self) -> list[tuple[Target, float | None, bool]]:
        """Each target with its measured ratio (None if not measured) and whether it is met."""
        measured = {
            GET_VERSION_TARGET: self.get_version.get("sqlite"),
            JOBS_TARGET: self.jobs.get("sqlite"),
        }
        result: list[tuple[Target, float | None, bool]] = []
        for target, stats in measured.items():
            ratio = None if stats is None else self.ratio(stats.rate)
            result.append((target, ratio, ratio is not None and ratio >= target.floor))
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
        "  (CPU: cores busy in the server / in the client during the window; 1.00 is one core)",
        "",
        f"  {'measurement':<36} {'rate':>14} {'vs echo':>8} {'target':>8} {'result':>6}  {'CPU':>11}",
    ]

    def row(title: str, rate: str, ratio: float | None, target: Target | None, cpu: CpuUse) -> None:
        verdict = ""
        floor = ""
        if target is not None and ratio is not None:
            floor = f">= {target.floor:g}"
            verdict = "PASS" if ratio >= target.floor else "FAIL"
        shown = "-" if ratio is None else f"{ratio:.3f}"
        lines.append(f"  {title:<36} {rate:>14} {shown:>8} {floor:>8} {verdict:>6}  {_cpu(cpu):>11}")

    row(
        f"echo unary ({s['payload_bytes']} B)", f"{figures.echo.rate:,.0f} rpc/s", 1.0, None, figures.echo.cpu
    )
    for backend, stats in figures.get_version.items():
        target = GET_VERSION_TARGET if backend == "sqlite" else None
        title = f"GetVersion, {BACKEND_TITLES[backend]}"
        row(title, f"{stats.rate:,.0f} rpc/s", figures.ratio(stats.rate), target, stats.cpu)
    for backend, jobs in figures.jobs.items():
        target = JOBS_TARGET if backend == "sqlite" else None
        title = f"Generate -> COMPLETED, {BACKEND_TITLES[backend]}"
        row(title, f"{jobs.rate:,.1f} jobs/s", figures.ratio(jobs.rate), target, jobs.cpu)

    if figures.jobs:
        header = "Progress event latency (receive - create_time)"
        lines += ["", f"  {header:<51} {'events':>8} {'p50 ms':>8} {'p99 ms':>8}"]
        for backend, jobs in figures.jobs.items():
            p50, p99 = percentile(jobs.latencies_ms, 50), percentile(jobs.latencies_ms, 99)
            title = BACKEND_TITLES[backend]
            lines.append(f"  {title:<51} {len(jobs.latencies_ms):>8} {_ms(p50):>8} {_ms(p99):>8}")

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

    missed = [target.title for target, _, ok in figures.verdicts() if not ok]
    lines.append("")
    if missed:
        lines.append(f"  TARGETS MISSED: {'; '.join(missed)} (a measurement: the exit code stays 0)")
    else:
        lines.append("  all targets met")
    return "\n".join(lines)


def _problems(figures: Figures) -> list[str]:
    problems: list[str] = []
    calls = {"echo": figures.echo} | {f"GetVersion {b}": c for b, c in figures.get_version.items()}
    for title, stats in calls.items():
        if stats.errors:
            problems.append(f"{title}: {stats.errors} failed calls, first: {stats.first_error}")
    for backend, jobs in figures.jobs.items():
        for outcome, count in sorted(jobs.failures.items()):
            problems.append(f"jobs {backend}: {count} ended {outcome}")
        if jobs.unfinished:
            problems.append(f"jobs {backend}: {jobs.unfinished} still running after the drain")
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
        "get_version": {b: _calls_json(figures, s) for b, s in figures.get_version.items()},
        "jobs": {
            backend: {
                "jobs_per_s": round(jobs.rate, 2),
                "ratio_to_echo": round(figures.ratio(jobs.rate), 5),
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
                "ratio": None if ratio is None else round(ratio, 5),
                "met": ok,
            }
            for target, ratio, ok in figures.verdicts()
        ],
        "skipped": figures.skipped,
        "problems": _problems(figures),
    }
