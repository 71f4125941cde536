"""Progress survives a server crash: the SDK reconnects from the last event, missing and repeating none."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from atelier import AsyncAtelierClient, AtelierClient, ProgressEvent, ProgressEventType, VersionState

from tests._client_support import TOKEN, client_server, free_port
from tests._support import ServerProcess


def _start_again_soon(server: ServerProcess, outcome: list[BaseException | None]) -> threading.Thread:
    def start() -> None:
        time.sleep(0.5)  # meanwhile the client finds nobody there, and backs off
        try:
            server.start()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=start)
    thread.start()
    return thread


def _follow_async(target: str, name: str, events: list[ProgressEvent]) -> threading.Thread:
    """The async client follows the same version meanwhile, in a thread with its own event loop."""

    async def follow() -> None:
        async with AsyncAtelierClient(target, token=TOKEN) as client:
            async for event in client.progress(name, timeout=60):
                events.append(event)

    thread = threading.Thread(target=asyncio.run, args=(follow(),))
    thread.start()
    return thread


def test_progress_resumes_across_a_server_restart_on_the_same_port(tmp_path: Path) -> None:
    port = free_port()  # chosen up front: the new server must come back on the same address
    outcome: list[BaseException | None] = []
    restart: threading.Thread | None = None
    events: list[ProgressEvent] = []
    async_events: list[ProgressEvent] = []
    with (
        client_server(tmp_path, ATELIER_LISTEN=f"127.0.0.1:{port}") as server,
        AtelierClient(f"127.0.0.1:{port}", token=TOKEN) as client,
    ):
        name = client.generate(json.dumps({"stages": 3, "delay": 1.0}), model="scripted").name
        follower = _follow_async(f"127.0.0.1:{port}", name, async_events)
        for event in client.progress(name, timeout=60):
            events.append(event)
            if restart is None and event.type == ProgressEventType.STAGE_STARTED and event.stage == 2:
                server.kill()  # SIGKILL mid-stream: no goodbye, the stream just breaks
                restart = _start_again_soon(server, outcome)
        assert restart is not None
        restart.join()
        follower.join(60)
        assert outcome == [None], outcome
        replay = list(client.progress(name))
        final = client.get(name)

    seqs = [event.seq for event in events]
    assert seqs == list(range(1, len(events) + 1)), seqs  # contiguous: nothing missed, nothing twice
    assert events[-1].terminal and events[-1].state == VersionState.COMPLETED
    assert final.state == VersionState.COMPLETED and final.last_event_seq == events[-1].seq
    assert any("Requeued" in event.message for event in events)  # the new server took the job over
    assert [(e.seq, e.message) for e in replay] == [(e.seq, e.message) for e in events]
    assert async_events == events
    assert server.log().count("Atelier listening on") == 2
