"""Uploads and merges are versions no model made: Regenerate refuses them, and Tweak and Iterate
of them build on their files without losing any (issue: Regenerate of a Merge lost `theirs`)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, error_details


def _upload(api: Api, files: dict[str, bytes]) -> gen.Version:
    def messages() -> Iterator[pb.UploadTreeRequest]:
        yield pb.UploadTreeRequest(description="two files")
        for path, data in files.items():
            yield pb.UploadTreeRequest(file=file_pb2.File(path=path), data=data)

    version: gen.Version = api.stub.UploadTree(messages(), metadata=api.metadata, timeout=30)
    return version


def _files(api: Api, name: str) -> dict[str, bytes]:
    return {path: api.read_file(name, path)[1] for path in api.list_files(name)}


def _tweak(api: Api, name: str, prompt: str) -> gen.Version:
    request = pb.TweakRequest(name=name, prompt=prompt, model="offline")
    return api.wait(api.stub.Tweak(request, metadata=api.metadata, timeout=10).name)


def _iterate(api: Api, parent: str, prompt: str) -> gen.Version:
    request = pb.IterateRequest(parent=parent, prompt=prompt, model="offline")
    return api.wait(api.stub.Iterate(request, metadata=api.metadata, timeout=10).name)


def _versions(api: Api, version: gen.Version) -> list[str]:
    generation = version.name.split("/versions/")[0]
    listed = api.stub.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=api.metadata)
    return [v.name for v in listed.versions]


def _branch(api: Api, version: gen.Version) -> list[tuple[int, str]]:
    """The turns of the version's branch of the conversation: (role, the version that added it)."""
    session = version.name.split("/versions/")[0] + "/session"
    turns = api.stub.ListTurns(
        pb.ListTurnsRequest(parent=session, version=version.name), metadata=api.metadata
    ).turns
    return [(turn.role, turn.version) for turn in turns]


@pytest.fixture
def merged(alice: Api) -> tuple[gen.Version, gen.Version, gen.Version, gen.Version]:
    """The issue's reproduction: upload v1; tweak it (ours, v2); iterate it (theirs, v3); merge v4."""
    v1 = _upload(alice, {"a.txt": b"a\n", "b.txt": b"b\n"})
    v2 = _tweak(alice, v1.name, 'change file "a.txt" to say "ours"')
    v3 = _iterate(alice, v1.name, 'change file "b.txt" to say "theirs"')
    assert (v2.state, v3.state) == (gen.VERSION_STATE_COMPLETED, gen.VERSION_STATE_COMPLETED)
    response = alice.stub.Merge(pb.MergeRequest(ours=v2.name, theirs=v3.name), metadata=alice.metadata)
    assert not response.conflicts
    v4 = response.version
    files = _files(alice, v4.name)
    assert b"ours" in files["a.txt"] and b"theirs" in files["b.txt"]
    return v1, v2, v3, v4


def test_regenerate_of_a_merge_or_an_upload_is_refused_and_writes_nothing(
    alice: Api, merged: tuple[gen.Version, gen.Version, gen.Version, gen.Version]
) -> None:
    v1, _, _, v4 = merged
    before = _versions(alice, v4)
    for version, kind, instead in [
        (v4, "MERGE", "Merge v2 and v3 again"),
        (v1, "UPLOAD", "Upload the files"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            alice.stub.Regenerate(
                pb.RegenerateRequest(name=version.name), metadata=alice.metadata, timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info, _ = error_details(refused.value)
        assert info.reason == "NOT_REGENERATABLE"  # type: ignore[attr-defined]
        assert info.metadata["kind"] == kind  # type: ignore[attr-defined]
        assert instead in (refused.value.details() or "")
    assert _versions(alice, v4) == before, "a refused Regenerate creates no version"
    assert b"theirs" in _files(alice, v4.name)["b.txt"]


def test_tweak_of_a_merge_continues_the_conversation_of_its_ours_side_and_keeps_both_changes(
    alice: Api, merged: tuple[gen.Version, gen.Version, gen.Version, gen.Version]
) -> None:
    _, v2, _, v4 = merged
    assert v4.turn == v2.turn == 1
    assert _branch(alice, v4) == _branch(alice, v2), "a merge stays on ours' branch and adds no turn"
    v5 = _tweak(alice, v4.name, "add file notes.md")
    assert v5.state == gen.VERSION_STATE_COMPLETED, v5.error.message
    assert (v5.parent, v5.turn) == (v4.name, 2)
    assert _branch(alice, v5) == [*_branch(alice, v2), (1, v5.name), (2, v5.name)]
    files = _files(alice, v5.name)
    assert set(files) == {"a.txt", "b.txt", "notes.md"}
    assert b"ours" in files["a.txt"] and b"theirs" in files["b.txt"]


def test_tweak_of_an_upload_starts_the_conversation_with_the_uploaded_files(
    alice: Api, merged: tuple[gen.Version, gen.Version, gen.Version, gen.Version]
) -> None:
    v1, v2, _, _ = merged
    assert (v1.turn, _branch(alice, v1)) == (0, []), "an upload holds no exchange with a model"
    assert v2.turn == 1 and _branch(alice, v2) == [(1, v2.name), (2, v2.name)]
    assert _files(alice, v2.name)["b.txt"] == b"b\n", "the file the tweak did not touch is kept"


def test_iterate_works_on_a_merge_and_on_an_upload(
    alice: Api, merged: tuple[gen.Version, gen.Version, gen.Version, gen.Version]
) -> None:
    v1, _, _, v4 = merged
    for parent in (v4, v1):
        child = _iterate(alice, parent.name, "add file extra.txt")
        assert child.state == gen.VERSION_STATE_COMPLETED, child.error.message
        assert set(_files(alice, child.name)) == {*_files(alice, parent.name), "extra.txt"}
