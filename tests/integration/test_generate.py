"""Generate, Progress, ReadFile and friends through the generated stubs, against the real server."""

from __future__ import annotations

import base64
import hashlib
import threading
import time

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import generation_pb2 as gen
from atelier.v1 import progress_pb2 as prog

from tests._support import TERMINAL, Api, script

STARTED = prog.PROGRESS_EVENT_TYPE_STAGE_STARTED
DONE = prog.PROGRESS_EVENT_TYPE_STAGE_DONE


def _png(width: int = 3, height: int = 2) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + b"".join(bytes([x * 40, y * 90, 200]) for x in range(width)) for y in range(height))
    raw = b"".join(rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_generate_streams_stages_in_order_to_completed_and_files_are_readable(alice: Api) -> None:
    version = alice.generate("a python CLI that converts celsius to fahrenheit", model="offline")
    assert version.state == gen.VERSION_STATE_QUEUED
    assert version.name.endswith("/versions/1") and version.kind == gen.VERSION_KIND_GENERATE

    events = alice.progress(version.name)

    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seqs are 1..n with no gaps"
    assert all(e.version == version.name for e in events)
    assert events[0].state == gen.VERSION_STATE_QUEUED
    assert (
        events[-1].state == gen.VERSION_STATE_COMPLETED and events[-1].type == prog.PROGRESS_EVENT_TYPE_STATE
    )
    assert [e.state for e in events[:-1]].count(gen.VERSION_STATE_COMPLETED) == 0, "COMPLETED only at the end"
    stage_events = [(e.type, e.stage) for e in events if e.type in (STARTED, DONE)]
    total = events[-1].total_stages
    assert total >= 3
    assert stage_events == [(kind, k) for k in range(1, total + 1) for kind in (STARTED, DONE)]
    assert {e.total_stages for e in events if e.type in (STARTED, DONE)} == {total}

    done = alice.get(version.name)
    assert done.state == gen.VERSION_STATE_COMPLETED
    assert (done.stage, done.total_stages) == (total, total)
    assert done.last_event_seq == events[-1].seq
    paths = alice.list_files(version.name)
    assert done.file_count == len(paths) > 1 and "README.md" in paths
    produced = {p for e in events if e.type == prog.PROGRESS_EVENT_TYPE_OUTPUT for p in e.paths}
    assert produced == set(paths)
    first, readme = alice.read_file(version.name, "README.md")
    assert first.file.mime_type.startswith("text/") and first.file.size == len(readme)
    assert first.file.sha256 == hashlib.sha256(readme).hexdigest()
    assert b"celsius" in readme.lower()


def test_read_file_returns_exact_bytes_and_mime_type_for_binary_and_text(alice: Api) -> None:
    png = _png()
    big = bytes(range(256)) * 1200  # 300 KiB: several chunks
    prompt = script(
        files={"notes/hello.txt": "héllo\nworld\n"},
        binary_files={
            "logo.png": base64.b64encode(png).decode(),
            "data.bin": base64.b64encode(big).decode(),
        },
    )
    name = alice.generate(prompt).name
    assert alice.wait(name).state == gen.VERSION_STATE_COMPLETED
    assert alice.list_files(name) == ["data.bin", "logo.png", "notes/hello.txt"]

    first, data = alice.read_file(name, "logo.png")
    assert data == png and first.file.mime_type == "image/png" and first.file.size == len(png)
    first, data = alice.read_file(name, "notes/hello.txt")
    assert data == "héllo\nworld\n".encode() and first.file.mime_type == "text/plain"

    chunks = list(
        alice.stub.ReadFile(
            pb.ReadFileRequest(name=name, path="data.bin"), metadata=alice.metadata, timeout=10
        )
    )
    assert len(chunks) == 5 and all(len(c.data) <= 64 * 1024 for c in chunks)
    assert [c.offset for c in chunks] == [i * 64 * 1024 for i in range(5)]
    assert b"".join(c.data for c in chunks) == big
    assert chunks[0].HasField("file") and not chunks[1].HasField("file")


def test_progress_resumes_after_a_disconnect_with_nothing_lost_or_repeated(alice: Api) -> None:
    name = alice.generate(script(stages=3, delay=0.2, messages_per_stage=2)).name
    stream = alice.stub.Progress(pb.ProgressRequest(name=name), metadata=alice.metadata, timeout=30)
    seen = [next(stream) for _ in range(3)]
    stream.cancel()  # the client goes away mid-stream

    rest = alice.progress(name, after_seq=seen[-1].seq)
    combined = [e.seq for e in seen + rest]
    assert combined == list(range(1, len(combined) + 1))
    assert rest[-1].state == gen.VERSION_STATE_COMPLETED
    assert [e.seq for e in alice.progress(name)] == combined, "a full replay gives the same events"
    assert alice.progress(name, after_seq=combined[-1]) == [], "nothing after the terminal event"


def test_a_disconnected_client_does_not_stop_the_job(server_channel_factory: object, alice: Api) -> None:
    name = alice.generate(script(stages=2, delay=0.5)).name
    assert callable(server_channel_factory)
    with server_channel_factory() as other:
        watcher = Api(other, "alice-token")
        stream = watcher.stub.Progress(pb.ProgressRequest(name=name), metadata=watcher.metadata, timeout=30)
        next(stream)
    # The channel is closed now, with the stream open: the job goes on.
    assert alice.wait(name).state == gen.VERSION_STATE_COMPLETED


def test_many_subscribers_see_the_same_events(alice: Api) -> None:
    name = alice.generate(script(stages=3, delay=0.1)).name
    streams: list[list[prog.ProgressEvent]] = []

    def follow() -> None:
        streams.append(alice.progress(name))

    threads = [threading.Thread(target=follow) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [[e.seq for e in events] for events in streams]
    assert len(results) == 5 and all(r == results[0] for r in results) and results[0][0] == 1
    for events in streams:
        last = events[-1]
        assert (last.type, last.state) == (prog.PROGRESS_EVENT_TYPE_STATE, gen.VERSION_STATE_COMPLETED), (
            "every stream reaches the terminal event"
        )
        assert not any(e.state in TERMINAL for e in events[:-1]), "the terminal event comes last"


def test_cancel_ends_a_running_job_cancelled(alice: Api) -> None:
    name = alice.generate(script(stages=3, delay=10)).name
    deadline = time.monotonic() + 10
    while alice.get(name).state != gen.VERSION_STATE_RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    alice.stub.CancelVersion(pb.CancelVersionRequest(name=name), metadata=alice.metadata, timeout=10)
    events = alice.progress(name, timeout=10)
    assert events[-1].state == gen.VERSION_STATE_CANCELLED
    version = alice.get(name)
    assert version.state == gen.VERSION_STATE_CANCELLED and version.file_count == 0
    assert version.error.code == grpc.StatusCode.CANCELLED.value[0]
    # Said as a person reads it: the user asked for it.
    assert (version.message, version.error.message) == ("Cancelled by the user", "cancelled by the user")
    # Cancelled stays cancelled.
    time.sleep(0.5)
    assert alice.get(name).state == gen.VERSION_STATE_CANCELLED


def test_a_repeated_request_id_starts_no_second_job(alice: Api) -> None:
    first = alice.generate("a haiku about rain", model="offline", request_id="req-1")
    again = alice.generate("a haiku about rain", model="offline", request_id="req-1")
    assert again.name == first.name
    generations = alice.stub.ListGenerations(
        pb.ListGenerationsRequest(page_size=1000), metadata=alice.metadata
    )
    assert sum(g.prompt == "a haiku about rain" for g in generations.generations) == 1
    versions = alice.stub.ListVersions(
        pb.ListVersionsRequest(parent=first.name.rsplit("/versions/", 1)[0]), metadata=alice.metadata
    )
    assert [v.name for v in versions.versions] == [first.name]


def test_provider_failures_end_failed_with_a_reason(alice: Api) -> None:
    failing = alice.generate(
        script(
            stages=2, fail={"code": "UNAVAILABLE", "reason": "UPSTREAM_DOWN", "message": "the model is down"}
        )
    )
    version = alice.wait(failing.name)
    assert version.state == gen.VERSION_STATE_FAILED
    assert version.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "the model is down" in version.error.message
    assert alice.progress(failing.name)[-1].error.message == version.error.message

    crashing = alice.wait(alice.generate(script(crash="boom")).name)
    assert crashing.state == gen.VERSION_STATE_FAILED
    assert crashing.error.code == grpc.StatusCode.INTERNAL.value[0] and "boom" in crashing.error.message


def test_list_generations_pages_newest_first(alice: Api, bob: Api) -> None:
    names = [bob.generate(f"page test {i}", model="offline").name.split("/versions/")[0] for i in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = bob.stub.ListGenerations(
            pb.ListGenerationsRequest(page_size=2, page_token=token), metadata=bob.metadata
        )
        assert len(page.generations) <= 2
        seen.extend(g.name for g in page.generations if g.prompt.startswith("page test"))
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(names))
    for name in names:
        bob.wait(name + "/versions/1")


def test_list_models_names_the_configured_models_and_the_default(alice: Api) -> None:
    response = alice.stub.ListModels(pb.ListModelsRequest(), metadata=alice.metadata)
    assert {(m.name, m.provider) for m in response.models} == {
        ("scripted", "scripted"),
        ("offline", "offline"),
    }
    assert response.default_model == "scripted"
    assert [m.name for m in response.models if m.default] == ["scripted"]


def test_generation_and_version_views(alice: Api) -> None:
    version = alice.wait(alice.generate("a go web server", model="offline").name)
    generation_name = version.name.split("/versions/")[0]
    generation = alice.stub.GetGeneration(
        pb.GetGenerationRequest(name=generation_name), metadata=alice.metadata
    )
    assert generation.prompt == "a go web server" and generation.model == "offline"
    assert generation.latest_version == version.name and generation.version_count == 1
    assert version.etag and version.complete_time.seconds > 0 and version.state in TERMINAL
