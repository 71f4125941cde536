"""Tweak overhead: a Tweak through Atelier against the same turn sent straight with google-genai.

Both talk to one fake Gemini (support/gemini_fake/) that answers every request after a fixed
delay, in the bench's own process. Its answers differ at every request (a new file), so every
tweak changes the tree and completes. Each side runs in a client process of its own:

- Atelier: a server with the gemini provider pointed at the fake, on a fresh SQLite database.
  Generate makes version 1 (not measured), then each turn is a Tweak of the latest version
  followed with Progress; a turn's latency is from the Tweak call to its terminal event.
- direct: one google-genai chat (`client.aio.chats.create`), a first turn not measured, then
  each turn a `send_message_stream` read to its end: the streaming endpoint Atelier calls.

The server stamps every progress event (`create_time`, the same machine's wall clock), and
the fake records when each request arrives, so each Atelier turn is also split into phases.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, generation_pb2, progress_pb2

from bench._child import run_in_child
from bench._load import process_cpu_seconds
from bench._servers import atelier_server
from support.gemini_fake import FakeGemini, RecordedRequest, Reply

MODEL = "gemini-2.5-flash"
API_KEY = "bench-key"
# The fake's answer time: what a (very fast) model would take.
REPLY_DELAY_SECONDS = 0.05
# The targets: what Atelier may add to a turn, at the median.
OVERHEAD_CEILING_MS = 10.0
RATIO_CEILING = 1.2

_CALL_TIMEOUT = 30.0
_TURN_TIMEOUT = 60.0
_PROMPT = "add a note about change {index}"
_FIRST_PROMPT = "a small python project with a README"
_COMPLETED = generation_pb2.VERSION_STATE_COMPLETED
_STAGE_STARTED = progress_pb2.PROGRESS_EVENT_TYPE_STAGE_STARTED
_STAGE_DONE = progress_pb2.PROGRESS_EVENT_TYPE_STAGE_DONE


class _Model:
    """The fake's answers: a new small file at every request, after REPLY_DELAY_SECONDS.

    Runs on the fake's own thread; records when each request arrived (wall clock, ns).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self.arrivals_ns: list[int] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        arrived = time.time_ns()
        with self._lock:
            self._count += 1
            count = self._count
            self.arrivals_ns.append(arrived)
        return Reply.json_files(
            {f"notes/change_{count:04d}.md": f"# Change {count}\n\nMade by the benchmark's fake Gemini.\n"},
            summary=f"added notes/change_{count:04d}.md",
            delay_seconds=REPLY_DELAY_SECONDS,
        )

    def take_arrivals(self) -> list[int]:
        with self._lock:
            taken, self.arrivals_ns = self.arrivals_ns, []
        return taken


@dataclass(frozen=True, slots=True)
class _Event:
    type: int
    stage: int
    created_ns: int
    received_ns: int


@dataclass(frozen=True, slots=True)
class _AtelierTurn:
    started_ns: int
    tweak_returned_ns: int
    latency_ms: float
    events: tuple[_Event, ...]


@dataclass(frozen=True, slots=True)
class _AtelierRun:
    turns: tuple[_AtelierTurn, ...]
    # Turns that did not end COMPLETED (state name and message), at most a few.
    failures: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _DirectTurn:
    started_ns: int
    latency_ms: float


# The phases of an Atelier turn, in order, with what bounds them.
PHASES: tuple[tuple[str, str], ...] = (
    ("tweak", "Tweak call -> QUEUED event stamped (RPC, write transaction)"),
    ("claim", "QUEUED -> RUNNING stamped (commit, worker wake-up, claim + prepare transaction)"),
    ("start", "RUNNING -> Send stage started (claim commit, hop back to the loop)"),
    ("request", "Send started -> request at the fake (build the turn, SDK, HTTP)"),
    ("model", "request at the fake -> Receive done (50 ms delay + streaming, SDK)"),
    ("parse_merge", "Receive done -> Save started (Parse, Merge stages)"),
    ("save", "Save started -> terminal event stamped (settle transaction)"),
    ("deliver", "terminal stamped -> received by the client (commit, notify, Progress read)"),
)


@dataclass(frozen=True, slots=True)
class TweakStats:
    turns: int
    reply_delay_ms: float
    atelier_ms: tuple[float, ...]
    direct_ms: tuple[float, ...]
    # Direct: from the call to the request at the fake (google-genai building and sending it).
    direct_request_ms: tuple[float, ...]
    # Phase name (see PHASES) -> its duration in each Atelier turn.
    phases_ms: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # Bursts of Progress events per Atelier turn (receive times more than 1 ms apart).
    deliveries: tuple[int, ...] = ()
    failures: tuple[str, ...] = ()
    # CPU milliseconds the server used per Atelier turn (Generate's job spread over the turns).
    server_cpu_ms_per_turn: float | None = None


def _ms(ns: int) -> float:
    return ns / 1e6


def atelier_tweak_load(target: str, *, turns: int) -> _AtelierRun:
    """Generate (not measured), then `turns` Tweaks of the latest version, each followed to its end."""

    async def follow(
        stub: atelier_service_pb2_grpc.AtelierServiceStub, name: str
    ) -> tuple[int, str, list[_Event]]:
        state, message, events = generation_pb2.VERSION_STATE_UNSPECIFIED, "", []
        async for event in stub.Progress(pb.ProgressRequest(name=name), timeout=_TURN_TIMEOUT):
            received = time.time_ns()
            events.append(_Event(event.type, event.stage, event.create_time.ToNanoseconds(), received))
            state, message = event.state, event.message
        return state, message, events

    async def load() -> _AtelierRun:
        measured: list[_AtelierTurn] = []
        failures: list[str] = []
        async with grpc.aio.insecure_channel(target) as channel:
            stub = atelier_service_pb2_grpc.AtelierServiceStub(channel)
            first = await stub.Generate(pb.GenerateRequest(prompt=_FIRST_PROMPT), timeout=_CALL_TIMEOUT)
            state, message, _ = await follow(stub, first.name)
            if state != _COMPLETED:
                name = generation_pb2.VersionState.Name(state)
                raise RuntimeError(f"version 1 ended {name}, not COMPLETED: {message}")
            latest = first.name
            for index in range(1, turns + 1):
                started_ns, started = time.time_ns(), time.perf_counter()
                request = pb.TweakRequest(name=latest, prompt=_PROMPT.format(index=index))
                version = await stub.Tweak(request, timeout=_CALL_TIMEOUT)
                returned_ns = time.time_ns()
                state, message, events = await follow(stub, version.name)
                latency_ms = (time.perf_counter() - started) * 1e3
                if state != _COMPLETED:
                    failures.append(f"turn {index}: {generation_pb2.VersionState.Name(state)}: {message}")
                    continue
                latest = version.name
                measured.append(_AtelierTurn(started_ns, returned_ns, latency_ms, tuple(events)))
        return _AtelierRun(turns=tuple(measured), failures=tuple(failures[:5]))

    return asyncio.run(load())


def direct_chat_load(base_url: str, *, turns: int) -> tuple[_DirectTurn, ...]:
    """One google-genai chat: a first turn (not measured), then `turns` streamed turns read to the end."""
    from google import genai
    from google.genai import types
    from google.genai.client import DebugConfig

    async def load() -> tuple[_DirectTurn, ...]:
        # Configured as Atelier configures its client: one attempt per request (a failure must
        # show, not be retried away), never recording or replaying. The client is kept for the
        # whole run: Client.__del__ closes its transport.
        client = genai.Client(
            api_key=API_KEY,
            debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version="v1beta",
                timeout=int(_TURN_TIMEOUT * 1000),
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )
        try:
            chat = client.aio.chats.create(
                model=MODEL, config=types.GenerateContentConfig(response_mime_type="application/json")
            )
            measured: list[_DirectTurn] = []
            for index in range(turns + 1):
                prompt = _FIRST_PROMPT if index == 0 else _PROMPT.format(index=index)
                started_ns, started = time.time_ns(), time.perf_counter()
                chunks = 0
                async for _ in await chat.send_message_stream(prompt):
                    chunks += 1
                latency_ms = (time.perf_counter() - started) * 1e3
                if not chunks:
                    raise RuntimeError(f"turn {index} streamed no chunk")
                if index:
                    measured.append(_DirectTurn(started_ns, latency_ms))
            # Every turn must have entered the history (the SDK keeps one content per chunk).
            asked = sum(content.role == "user" for content in chat.get_history(curated=True))
            if asked != turns + 1:
                raise RuntimeError(f"the chat's history holds {asked} user turns, expected {turns + 1}")
            return tuple(measured)
        finally:
            await client.aio.aclose()

    return asyncio.run(load())


def _phases(turn: _AtelierTurn, arrival_ns: int) -> dict[str, float] | None:
    """The turn's phases in ms, from the server's event stamps and the fake's arrival time."""
    events = turn.events
    try:
        queued, running = events[0], events[1]
        send = next(e for e in events if e.type == _STAGE_STARTED and e.stage == 1)
        receive_done = next(e for e in events if e.type == _STAGE_DONE and e.stage == 2)
        save = [e for e in events if e.type == _STAGE_STARTED][-1]
        last = events[-1]
    except (IndexError, StopIteration):
        return None
    return {
        "tweak": _ms(queued.created_ns - turn.started_ns),
        "claim": _ms(running.created_ns - queued.created_ns),
        "start": _ms(send.created_ns - running.created_ns),
        "request": _ms(arrival_ns - send.created_ns),
        "model": _ms(receive_done.created_ns - arrival_ns),
        "parse_merge": _ms(save.created_ns - receive_done.created_ns),
        "save": _ms(last.created_ns - save.created_ns),
        "deliver": _ms(last.received_ns - last.created_ns),
    }


def _deliveries(turn: _AtelierTurn) -> int:
    """How many separate reads brought the turn's events: receive times more than 1 ms apart."""
    bursts, previous = 0, None
    for event in turn.events:
        if previous is None or event.received_ns - previous > 1_000_000:
            bursts += 1
        previous = event.received_ns
    return bursts


def measure_tweak(workdir: Path, *, turns: int, say: Callable[[str], None]) -> TweakStats:
    limit = 60.0 + turns * 5.0
    model = _Model()
    with FakeGemini(default=model) as fake:
        say(f"tweak overhead: {turns} turns straight through google-genai (fake Gemini, 50 ms replies)")
        direct = run_in_child(limit, direct_chat_load, fake.base_url, turns=turns)
        direct_arrivals = model.take_arrivals()[1:]
        env = {
            "ATELIER_PROVIDER": "gemini",
            "GEMINI_API_KEY": API_KEY,
            "ATELIER_GEMINI_BASE_URL": fake.base_url,
        }
        say(f"tweak overhead: {turns} Tweaks through Atelier on SQLite")
        with atelier_server("sqlite", workdir, label="tweak", env=env) as server:
            cpu_before = process_cpu_seconds(server.pid)
            run = run_in_child(limit, atelier_tweak_load, server.target, turns=turns)
            cpu_after = process_cpu_seconds(server.pid)
        atelier_arrivals = model.take_arrivals()[1:]

    direct_request = [
        _ms(arrival - turn.started_ns) for turn, arrival in zip(direct, direct_arrivals, strict=False)
    ]
    phases: dict[str, list[float]] = {name: [] for name, _ in PHASES}
    # With every turn completed, request k+1 at the fake is turn k's.
    if not run.failures and len(atelier_arrivals) == len(run.turns):
        for turn, arrival in zip(run.turns, atelier_arrivals, strict=True):
            split = _phases(turn, arrival)
            if split is not None:
                for name, value in split.items():
                    phases[name].append(value)
    cpu_per_turn = None
    if cpu_before is not None and cpu_after is not None and run.turns:
        # Includes Generate's job and the Progress calls: turns + 1 jobs in all.
        cpu_per_turn = (cpu_after - cpu_before) / (len(run.turns) + 1) * 1e3
    return TweakStats(
        turns=turns,
        reply_delay_ms=REPLY_DELAY_SECONDS * 1e3,
        atelier_ms=tuple(turn.latency_ms for turn in run.turns),
        direct_ms=tuple(turn.latency_ms for turn in direct),
        direct_request_ms=tuple(direct_request),
        phases_ms={name: tuple(values) for name, values in phases.items()},
        deliveries=tuple(_deliveries(turn) for turn in run.turns),
        failures=run.failures,
        server_cpu_ms_per_turn=cpu_per_turn,
    )
