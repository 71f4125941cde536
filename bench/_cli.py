"""`python -m bench`: measures the echo server, then Atelier on SQLite and on PostgreSQL, then
Tweak's overhead over google-genai alone, the server's memory as sessions add up, how an
iteration's cost grows with the tree, the scheduler with jobs that wait on a model, and Blame on
a long history of a large tree.

One server runs at a time, loaded by one client process, so that the two of them have the
machine to themselves (the target machine has 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from bench._blame import measure_blame
from bench._child import ChildFailed, run_in_child
from bench._fanout import fanout_verdicts, measure_fanout, render_fanout
from bench._iterate import measure_iterate
from bench._load import (
    CHILD_GRACE_SECONDS,
    Window,
    echo_load,
    get_version_load,
    job_shape_load,
    jobs_load,
)
from bench._memory import SESSIONS, measure_memory
from bench._report import Figures, render, to_json
from bench._scheduler import measure_scheduler
from bench._servers import ServerFailed, atelier_server, echo_server
from bench._targets import verdict_text
from bench._tweak import measure_tweak
from support.databases import postgres_unavailable_reason
from support.processes import answer_ctrl_c


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Atelier against a bare grpc.aio echo server, as ratios.",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before each measurement (1)")
    parser.add_argument("--concurrency", type=int, default=32, help="unary calls in flight (32)")
    parser.add_argument("--jobs-concurrency", type=int, default=16, help="jobs in flight (16)")
    parser.add_argument("--payload-bytes", type=int, default=64, help="echo payload size (64)")
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--no-tweak", action="store_true", help="skip the Tweak overhead measurement")
    parser.add_argument("--tweak-turns", type=int, default=20, help="Tweaks in a row, and direct turns (20)")
    parser.add_argument("--no-memory", action="store_true", help="skip the session memory measurement")
    parser.add_argument(
        "--memory-sessions",
        type=int,
        default=SESSIONS,
        help=f"sessions for the memory measurement ({SESSIONS})",
    )
    parser.add_argument("--no-iterate", action="store_true", help="skip the Iterate scaling measurement")
    parser.add_argument("--no-blame", action="store_true", help="skip the Blame measurement")
    parser.add_argument(
        "--no-scheduler",
        action="store_true",
        help="skip the rows of jobs that wait on a model (many jobs, fairness, quota storm, idle streams)",
    )
    parser.add_argument(
        "--no-fanout", action="store_true", help="skip the fan-out row (first of 8 outputs / a single job)"
    )
    parser.add_argument(
        "--only-fanout", action="store_true", help="measure the fan-out row alone (no echo, no other rows)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=5.0, help="each CPU window of the idle streams row (5)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.warmup < 0 or args.concurrency < 1 or args.jobs_concurrency < 1:
        parser.error("--seconds must be > 0, --warmup >= 0, and the concurrencies >= 1")
    if args.tweak_turns < 1 or args.memory_sessions < 4 or args.idle_seconds <= 0:
        parser.error("--tweak-turns must be >= 1, --memory-sessions >= 4 and --idle-seconds > 0")
    return args


def _say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _measure(args: argparse.Namespace, workdir: Path) -> Figures:
    load_before = _load_average()
    window = Window(warmup=args.warmup, seconds=args.seconds)
    limit = window.warmup + window.seconds + CHILD_GRACE_SECONDS

    _say(f"echo server: unary calls for {window.seconds:g} s")
    with echo_server(workdir) as server:
        echo = run_in_child(
            limit,
            echo_load,
            server.target,
            server_pid=server.pid,
            payload_bytes=args.payload_bytes,
            concurrency=args.concurrency,
            window=window,
        )
        _say(f"echo server: a job's gRPC calls (a unary call and a stream) for {window.seconds:g} s")
        job_shape = run_in_child(
            limit,
            job_shape_load,
            server.target,
            server_pid=server.pid,
            concurrency=args.jobs_concurrency,
            window=window,
        )
    figures = Figures(
        date=datetime.now().astimezone().isoformat(timespec="seconds"),
        cores=os.cpu_count() or 0,
        load_before=load_before,
        settings={
            "seconds": window.seconds,
            "warmup": window.warmup,
            "concurrency": args.concurrency,
            "jobs_concurrency": args.jobs_concurrency,
            "payload_bytes": args.payload_bytes,
            "tweak_turns": None if args.no_tweak else args.tweak_turns,
            "memory_sessions": None if args.no_memory else args.memory_sessions,
            "idle_seconds": None if args.no_scheduler else args.idle_seconds,
        },
        echo=echo,
        job_shape=job_shape,
    )

    backends = ["sqlite"]
    reason = "--no-postgres" if args.no_postgres else postgres_unavailable_reason()
    if reason is None:
        backends.append("postgres")
    else:
        figures.skipped["postgres"] = reason
    for backend in backends:
        with atelier_server(backend, workdir) as server:
            # A fresh client process for each load, so neither inherits the other's state.
            _say(f"Atelier on {backend}: GetVersion for {window.seconds:g} s")
            figures.get_version[backend] = run_in_child(
                limit,
                get_version_load,
                server.target,
                server_pid=server.pid,
                concurrency=args.concurrency,
                window=window,
            )
            _say(f"Atelier on {backend}: jobs for {window.seconds:g} s")
            figures.jobs[backend] = run_in_child(
                limit,
                jobs_load,
                server.target,
                server_pid=server.pid,
                concurrency=args.jobs_concurrency,
                window=window,
            )
    if not args.no_tweak:
        figures.tweak = measure_tweak(workdir, turns=args.tweak_turns, say=_say)
    if not args.no_memory:
        figures.memory = measure_memory(workdir, sessions=args.memory_sessions, say=_say)
    if not args.no_iterate:
        figures.iterate = measure_iterate(workdir, say=_say)
    if not args.no_scheduler:
        figures.scheduler = measure_scheduler(workdir, idle_seconds=args.idle_seconds, say=_say)
    if not args.no_fanout:
        figures.fanout = measure_fanout(workdir, say=_say)
    if not args.no_blame:
        figures.blame = measure_blame(workdir, say=_say)
    return figures


def _fanout_alone() -> None:
    """`--only-fanout`: the fan-out row and its verdict, without the rest of the run."""
    try:
        with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
            stats = measure_fanout(Path(tmp), say=_say)
    except ServerFailed as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print("\n".join(render_fanout(stats)))
    for target, value, ok in fanout_verdicts(stats):
        print(f"  {verdict_text(ok)}: {target.title} = {value:.2f} ({target.bound})")


def main(argv: list[str] | None = None) -> None:
    answer_ctrl_c()
    args = _parse(argv)
    if args.only_fanout:
        _fanout_alone()
        return
    try:
        with tempfile.TemporaryDirectory(prefix="atelier-bench-") as tmp:
            figures = _measure(args, Path(tmp))
    except (ServerFailed, ChildFailed) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    print(render(figures))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(figures), indent=2) + "\n")
        _say(f"figures written to {args.json}")
