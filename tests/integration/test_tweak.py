"""Tweak and Regenerate continue the stored conversation: turns, branches and merged trees."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, session_pb2
from atelier.v1 import generation_pb2 as gen
from atelier.v1 import progress_pb2 as prog

from support.databases import fresh_database
from tests._support import Api, ServerProcess, error_details, script
from tests.integration.conftest import SERVER_ENV

PROMPT = "a python CLI that converts celsius to fahrenheit"


def _tweak(api: Api, name: str, prompt: str, **fields: object) -> gen.Version:
    request = pb.TweakRequest(name=name, prompt=prompt, **fields)  # type: ignore[arg-type]
    version: gen.Version = api.stub.Tweak(request, metadata=api.metadata, timeout=10)
    return version


def _files(api: Api, name: str) -> dict[str, bytes]:
    return {path: api.read_file(name, path)[1] for path in api.list_files(name)}


def _turns(api: Api, session: str, version: str = "") -> list[session_pb2.Turn]:
    response = api.stub.ListTurns(
        pb.ListTurnsRequest(parent=session, version=version, page_size=1000), metadata=api.metadata
    )
    return list(response.turns)


def test_a_tweak_continues_the_session_and_keeps_untouched_files(alice: Api) -> None:
    v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
    before = _files(alice, v1.name)
    session = v1.name.split("/versions/")[0] + "/session"

    queued = _tweak(alice, v1.name, 'add file docs/notes.md with content "Remember the freezing point."')
    assert queued.kind == gen.VERSION_KIND_TWEAK and queued.parent == v1.name and queued.turn == 2
    events = alice.progress(queued.name)
    v2 = alice.get(queued.name)

    assert v2.state == gen.VERSION_STATE_COMPLETED, v2.error.message
    after = _files(alice, v2.name)
    assert set(after) == set(before) | {"docs/notes.md"}
    assert all(after[path] == data for path, data in before.items()), "untouched files are byte-identical"
    assert b"freezing point" in after["docs/notes.md"]
    assert _files(alice, v1.name) == before, "the tweaked version is unchanged"
    titles = [e.message for e in events if e.type == prog.PROGRESS_EVENT_TYPE_STAGE_STARTED]
    assert any(t.startswith("Merge") for t in titles) and titles[-1].startswith("Save")
    assert v2.total_stages == len(titles)

    conversation = alice.stub.GetSession(pb.GetSessionRequest(name=session), metadata=alice.metadata)
    assert conversation.turn_count == 2
    turns = _turns(alice, session)
    assert [t.role for t in turns] == [session_pb2.TURN_ROLE_USER, session_pb2.TURN_ROLE_MODEL] * 2
    assert turns[0].parts[0].text == PROMPT and "freezing point" in turns[2].parts[0].text
    assert turns[2].parent == turns[1].name and turns[2].version == v2.name
    assert [t.number for t in _turns(alice, session, v2.name)] == [1, 2, 3, 4]

    # A second tweak of the latest version builds on the first.
    v3 = alice.wait(_tweak(alice, v2.name, "delete docs/notes.md").name)
    assert v3.turn == 3 and set(_files(alice, v3.name)) == set(before)


def test_tweaking_an_earlier_version_forks_the_conversation(alice: Api) -> None:
    v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
    session = v1.name.split("/versions/")[0] + "/session"
    v2 = alice.wait(_tweak(alice, v1.name, "add file a.txt").name)
    fork = alice.wait(_tweak(alice, v1.name, "add file b.txt").name)
    assert fork.state == gen.VERSION_STATE_COMPLETED and fork.parent == v1.name and fork.turn == 2
    assert "a.txt" not in alice.list_files(fork.name) and "b.txt" in alice.list_files(fork.name)
    assert "a.txt" in alice.list_files(v2.name) and "b.txt" not in alice.list_files(v2.name)
    assert [t.number for t in _turns(alice, session, fork.name)] == [1, 2, 5, 6]
    assert [t.number for t in _turns(alice, session, v2.name)] == [1, 2, 3, 4]


def test_concurrent_tweaks_of_one_session_never_interleave(alice: Api) -> None:
    v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
    session = v1.name.split("/versions/")[0] + "/session"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        names = list(pool.map(lambda i: _tweak(alice, v1.name, f"add file notes/{i}.md").name, range(8)))
    versions = [alice.wait(name) for name in names]
    assert all(v.state == gen.VERSION_STATE_COMPLETED for v in versions)
    for version in versions:
        branch = [t.number for t in _turns(alice, session, version.name)]
        assert branch[:2] == [1, 2] and branch[3] == branch[2] + 1, (
            "a tweak's user and model turns are adjacent"
        )
    assert alice.stub.GetSession(pb.GetSessionRequest(name=session), metadata=alice.metadata).turn_count == 9


def test_a_queued_tweak_starts_as_soon_as_its_sessions_running_job_ends(backend: str, tmp_path: Path) -> None:
    # Polls every 60 s: a tweak queued behind its session's running job must be started when
    # that job ends (its worker looks for it), well before a poll would find it.
    env = {**SERVER_ENV, "ATELIER_PROGRESS_POLL_SECONDS": "60"}
    with fresh_database(backend, tmp_path) as url:
        server = ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=env).start()
        try:
            with server.channel() as channel:
                alice = Api(channel, "alice-token")
                v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
                with concurrent.futures.ThreadPoolExecutor(4) as pool:
                    names = list(
                        pool.map(lambda i: _tweak(alice, v1.name, f"add file notes/{i}.md").name, range(4))
                    )
                versions = [alice.wait(name, timeout=30) for name in names]
        finally:
            server.kill()
    assert [v.state for v in versions] == [gen.VERSION_STATE_COMPLETED] * 4


def test_a_tweak_with_attachments_of_a_tree_no_job_made(alice: Api) -> None:
    # An uploaded tree was made by no job, so the tweak's job reads it from the database, and
    # the attachment's contents must still be the attachment's.
    def messages() -> Iterator[pb.UploadTreeRequest]:
        yield pb.UploadTreeRequest(description="uploaded")
        yield pb.UploadTreeRequest(file=file_pb2.File(path="app.py"))
        yield pb.UploadTreeRequest(data=b"print('hi')\n")

    uploaded = alice.stub.UploadTree(messages(), metadata=alice.metadata, timeout=10)
    logo = file_pb2.Attachment(name="logo.png", mime_type="image/png", data=b"\x89PNG\r\n\x1a\n-not-really")
    tweak = _tweak(alice, uploaded.name, "add file notes.md", model="offline", attachments=[logo])
    done = alice.wait(tweak.name)
    assert done.state == gen.VERSION_STATE_COMPLETED, done.error.message
    assert {"app.py", "notes.md"} <= set(alice.list_files(done.name))


def test_tweak_refusals(alice: Api) -> None:
    running = alice.generate(script(stages=1, delay=3)).name
    call = functools.partial(_tweak, alice, running, "more")
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "VERSION_NOT_READY"  # type: ignore[attr-defined]
    alice.stub.CancelVersion(pb.CancelVersionRequest(name=running), metadata=alice.metadata)
    alice.wait(running)
    with pytest.raises(grpc.RpcError) as caught:
        call()  # a CANCELLED version cannot be refined either
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    done = alice.wait(alice.generate(PROMPT, model="offline").name)
    with pytest.raises(grpc.RpcError) as caught:
        _tweak(alice, done.name, "add file x.md", etag='W/"1"')
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert error_details(caught.value)[0].reason == "ETAG_MISMATCH"  # type: ignore[attr-defined]
    with pytest.raises(grpc.RpcError) as caught:
        _tweak(alice, done.name, "")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    generation = done.name.split("/versions/")[0]
    listed = alice.stub.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=alice.metadata)
    assert [v.number for v in listed.versions] == [1], "refused tweaks store nothing"

    first = _tweak(alice, done.name, "add file y.md", etag=done.etag, request_id="tweak-once")
    again = _tweak(alice, done.name, "add file y.md", etag=done.etag, request_id="tweak-once")
    assert again.name == first.name
    alice.wait(first.name)


def test_regenerate_makes_a_sibling_attempt_on_a_new_branch(alice: Api) -> None:
    v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
    session = v1.name.split("/versions/")[0] + "/session"
    again = alice.stub.Regenerate(pb.RegenerateRequest(name=v1.name), metadata=alice.metadata)
    assert again.kind == gen.VERSION_KIND_REGENERATE and again.parent == "" and again.prompt == PROMPT
    done = alice.wait(again.name)
    assert done.state == gen.VERSION_STATE_COMPLETED and done.turn == 1
    assert _files(alice, done.name) == _files(alice, v1.name), "the offline provider is deterministic"
    assert [t.number for t in _turns(alice, session, done.name)] == [3, 4], "a new branch from the start"

    tweak = alice.wait(_tweak(alice, v1.name, "add file z.md").name)
    regenerated = alice.wait(
        alice.stub.Regenerate(pb.RegenerateRequest(name=tweak.name), metadata=alice.metadata).name
    )
    assert regenerated.parent == v1.name and regenerated.turn == 2
    assert [t.number for t in _turns(alice, session, regenerated.name)][:2] == [1, 2]


def test_sessions_are_private(alice: Api, bob: Api) -> None:
    v1 = alice.wait(alice.generate(PROMPT, model="offline").name)
    session = v1.name.split("/versions/")[0] + "/session"
    for call in (
        lambda: bob.stub.GetSession(pb.GetSessionRequest(name=session), metadata=bob.metadata),
        lambda: bob.stub.ListTurns(pb.ListTurnsRequest(parent=session), metadata=bob.metadata),
        lambda: _tweak(bob, v1.name, "add file evil.txt"),
        lambda: bob.stub.Regenerate(pb.RegenerateRequest(name=v1.name), metadata=bob.metadata),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
