"""Iterate merges the model's changes onto the parent's tree; versions can be diffed, exported,
uploaded and merged. Losing a user's files is the worst bug this product can have."""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Iterator

import grpc
import pytest
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, tree_pb2
from atelier.v1 import generation_pb2 as gen

from tests._support import Api, error_details, script


def _iterate(api: Api, parent: str, prompt: str, **fields: object) -> gen.Version:
    request = pb.IterateRequest(parent=parent, prompt=prompt, **fields)  # type: ignore[arg-type]
    version: gen.Version = api.stub.Iterate(request, metadata=api.metadata, timeout=10)
    return version


def _files(api: Api, name: str) -> dict[str, bytes]:
    return {path: api.read_file(name, path)[1] for path in api.list_files(name)}


def _upload(
    api: Api, files: dict[str, bytes], description: str = "my project", **first: object
) -> gen.Version:
    def messages() -> Iterator[pb.UploadTreeRequest]:
        yield pb.UploadTreeRequest(description=description, **first)  # type: ignore[arg-type]
        for path, data in files.items():
            yield pb.UploadTreeRequest(file=file_pb2.File(path=path))
            for start in range(0, max(len(data), 1), 40_000):
                yield pb.UploadTreeRequest(data=data[start : start + 40_000])

    version: gen.Version = api.stub.UploadTree(messages(), metadata=api.metadata, timeout=30)
    return version


APP = {f"app/module_{i}.py": f"def f{i}():\n    return {i}\n".encode() for i in range(12)} | {
    "README.md": b"# App\n",
    "pyproject.toml": b"[project]\nname = 'app'\n",
}


def test_an_uploaded_tree_is_version_1_and_iterate_keeps_every_untouched_file(alice: Api) -> None:
    big = bytes(range(256)) * 400  # 100 KiB, several upload and export chunks
    v1 = _upload(alice, {**APP, "assets/blob.bin": big})
    assert v1.state == gen.VERSION_STATE_COMPLETED and v1.kind == gen.VERSION_KIND_UPLOAD
    assert v1.file_count == 15 and v1.added_count == 15
    assert _files(alice, v1.name) == {**APP, "assets/blob.bin": big}

    v2 = alice.wait(_iterate(alice, v1.name, "add file app/schemas/project.py", model="offline").name)
    assert v2.state == gen.VERSION_STATE_COMPLETED, v2.error.message
    assert v2.kind == gen.VERSION_KIND_ITERATE and v2.parent == v1.name
    assert (v2.file_count, v2.added_count, v2.modified_count, v2.deleted_count) == (16, 1, 0, 0)
    after = _files(alice, v2.name)
    assert {path: after[path] for path in [*APP, "assets/blob.bin"]} == {**APP, "assets/blob.bin": big}
    assert "app/schemas/project.py" in after

    # Export streams the whole tree in chunks no bigger than 64 KiB.
    exported: dict[str, bytearray] = {}
    current = ""
    for message in alice.stub.ExportTree(pb.ExportTreeRequest(name=v2.name), metadata=alice.metadata):
        assert len(message.data) <= 64 * 1024
        if message.HasField("file"):
            current = message.file.path
            exported[current] = bytearray()
        assert message.offset == len(exported[current])
        exported[current].extend(message.data)
    assert {path: bytes(data) for path, data in exported.items()} == after


def test_diff_lists_added_removed_and_modified_paths_with_text_diffs(alice: Api) -> None:
    v1 = _upload(alice, {"a.txt": b"one\ntwo\n", "b.txt": b"bee\n", "logo.png": b"\x89PNG\r\n\x1a\n..."})
    v2 = alice.wait(
        _iterate(
            alice,
            v1.name,
            'replace "two" with "three" in a.txt; delete b.txt; add file c.md',
            model="offline",
        ).name
    )
    assert v2.state == gen.VERSION_STATE_COMPLETED, v2.error.message
    response = alice.stub.Diff(
        pb.DiffRequest(base=v1.name, target=v2.name, include_text_diffs=True), metadata=alice.metadata
    )
    changes = {f.path: f for f in response.files}
    assert {p: f.change for p, f in changes.items()} == {
        "a.txt": tree_pb2.FILE_CHANGE_MODIFIED,
        "b.txt": tree_pb2.FILE_CHANGE_REMOVED,
        "c.md": tree_pb2.FILE_CHANGE_ADDED,
    }
    assert "-two" in changes["a.txt"].unified_diff and "+three" in changes["a.txt"].unified_diff
    assert changes["a.txt"].base.sha256 == hashlib.sha256(b"one\ntwo\n").hexdigest()
    assert not changes["b.txt"].HasField("target") and not changes["c.md"].HasField("base")
    assert (v2.added_count, v2.modified_count, v2.deleted_count) == (1, 1, 1)


def test_concurrent_iterates_from_one_parent_are_siblings_with_their_own_changes(alice: Api) -> None:
    v1 = _upload(alice, APP)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        names = list(
            pool.map(
                lambda i: _iterate(alice, v1.name, f"add file notes/{i}.md", model="offline").name, range(20)
            )
        )
    versions = [alice.wait(name, timeout=120) for name in names]
    assert len({v.number for v in versions}) == 20
    for index, version in enumerate(versions):
        assert version.state == gen.VERSION_STATE_COMPLETED and version.parent == v1.name
        assert set(alice.list_files(version.name)) == set(APP) | {f"notes/{index}.md"}, (
            "no lost update, no mixing"
        )
    listed = alice.stub.ListVersions(
        pb.ListVersionsRequest(parent=v1.name.split("/versions/")[0], page_size=100), metadata=alice.metadata
    )
    assert [v.parent for v in listed.versions] == [""] + [v1.name] * 20


def test_iterate_refuses_invalid_paths_and_holds_back_mass_deletion(alice: Api) -> None:
    v1 = _upload(alice, APP | {"notes.txt": b"x"})
    bad = alice.wait(
        _iterate(
            alice,
            v1.name,
            script(files={"../evil.txt": "x", "NOTES.TXT": "y", "a\\b.txt": "z", "/abs.txt": "w"}),
            model="scripted",
        ).name
    )
    assert bad.state == gen.VERSION_STATE_FAILED and bad.error.message
    for path in ("../evil.txt", "NOTES.TXT", "a\\\\b.txt", "/abs.txt"):
        assert path in bad.error.message, path
    assert bad.file_count == 0 and _files(alice, v1.name) == APP | {"notes.txt": b"x"}

    doomed = [path for path in APP if path.startswith("app/")]
    held = alice.wait(_iterate(alice, v1.name, script(deletions=doomed), model="scripted").name)
    assert held.state == gen.VERSION_STATE_NEEDS_REVIEW, held.error.message
    assert held.deleted_count == 12 and "review" in held.message.lower()
    asked = alice.wait(_iterate(alice, v1.name, "delete " + "; delete ".join(doomed), model="offline").name)
    assert asked.state == gen.VERSION_STATE_COMPLETED and asked.file_count == 3


def test_merge_follows_three_way_rules(alice: Api) -> None:
    base = _upload(alice, {"shared.txt": b"base\n", "keep.txt": b"k\n", "gone.txt": b"g\n"})
    ours = alice.wait(
        _iterate(
            alice, base.name, 'add file ours.txt; replace "base" with "ours" in shared.txt', model="offline"
        ).name
    )
    theirs = alice.wait(
        _iterate(
            alice,
            base.name,
            'add file theirs.txt; delete gone.txt; replace "base" with "theirs" in shared.txt',
            model="offline",
        ).name
    )
    conflicted = alice.stub.Merge(
        pb.MergeRequest(ours=ours.name, theirs=theirs.name), metadata=alice.metadata
    )
    assert not conflicted.HasField("version")
    assert [(c.path, c.kind) for c in conflicted.conflicts] == [
        ("shared.txt", tree_pb2.CONFLICT_KIND_BOTH_CHANGED)
    ]
    conflict = conflicted.conflicts[0]
    assert conflict.base.sha256 == hashlib.sha256(b"base\n").hexdigest()
    generation = base.name.split("/versions/")[0]
    before = alice.stub.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=alice.metadata)

    merged = alice.stub.Merge(
        pb.MergeRequest(ours=ours.name, theirs=theirs.name, strategy=tree_pb2.MERGE_STRATEGY_THEIRS),
        metadata=alice.metadata,
    ).version
    assert merged.state == gen.VERSION_STATE_COMPLETED and merged.kind == gen.VERSION_KIND_MERGE
    assert (merged.parent, merged.merge_parent) == (ours.name, theirs.name)
    files = _files(alice, merged.name)
    assert set(files) == {"shared.txt", "keep.txt", "ours.txt", "theirs.txt"}
    assert files["shared.txt"] == _files(alice, theirs.name)["shared.txt"]
    after = alice.stub.ListVersions(pb.ListVersionsRequest(parent=generation), metadata=alice.metadata)
    assert len(after.versions) == len(before.versions) + 1, "a conflicted merge wrote nothing"


def test_bad_tree_requests_get_clear_statuses(alice: Api) -> None:
    v1 = _upload(alice, {"a.txt": b"a"})
    for call, code, reason in [
        (lambda: _upload(alice, {}), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_UPLOAD"),
        (lambda: _upload(alice, {"../x": b"x"}), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CHANGES"),
        (lambda: _iterate(alice, v1.name, ""), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_PROMPT"),
        (lambda: _iterate(alice, v1.name, "x", etag='W/"0"'), grpc.StatusCode.ABORTED, "ETAG_MISMATCH"),
        (
            lambda: alice.stub.Merge(pb.MergeRequest(ours=v1.name, theirs=v1.name), metadata=alice.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "SAME_VERSION",
        ),
        (
            lambda: alice.stub.Diff(pb.DiffRequest(base=v1.name, target="nope"), metadata=alice.metadata),
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_NAME",
        ),
    ]:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == code, caught.value.details()
        assert error_details(caught.value)[0].reason == reason  # type: ignore[attr-defined]
